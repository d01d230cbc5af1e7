#!/usr/bin/env bash
# checkpoint.init_from (issue 23): a new run from a checkpoint's weights.
#  - a run at another layout (tp 2 instead of cp 2) starts from exactly the checkpoint's weights:
#    with lr 0 its evaluation equals `eval --checkpoint` of the checkpoint (and differs from
#    the untrained model's), at step 0 with a fresh optimizer (its first step is step 1);
#  - RoPE (rope_theta, rope_scaling) and the sliding window may change: the run starts;
#  - any other model difference is refused before training, exit 2, naming both values;
#  - a preempted init_from run resumes from its own checkpoint, not from init_from again.
source "$(dirname "$0")/lib.sh"
cd "$W" || exit 1
json_field() { $PY -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

echo "== train 4 steps at cp 2, save"
$MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.cp=2 --set train.steps=4 \
  --set checkpoint.dir=A --set run.out_dir=rA > trainA.log 2>&1 || { cat trainA.log; fail "train A"; }
ea=$("$BIN" eval "$CFG" "${TINY[@]}" --checkpoint A/step-000004.h5 2>&1 | grep '^{"eval_loss"')
e0=$("$BIN" eval "$CFG" "${TINY[@]}" 2>/dev/null | grep '^{"eval_loss"')
[ -n "$ea" ] && [ -n "$e0" ] || fail "eval printed no result"

echo "== init_from at tp 2 with lr 0: the checkpoint's evaluation"
$MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.tp=2 --set train.steps=1 --set train.lr=0 \
  --set train.min_lr=0 --set train.warmup_steps=0 --set train.schedule=constant \
  --set checkpoint.init_from=A/step-000004.h5 --set run.out_dir=rB > trainB.log 2>&1 || { cat trainB.log; fail "init_from run"; }
grep -q "loaded checkpoint A/step-000004.h5 (step 4, weights," trainB.log || { cat trainB.log; fail "did not load A's weights"; }
eb=$(grep '^{"eval_loss"' trainB.log)
[ "$(json_field "$eb" step)" = 1 ] || fail "the init_from run did not start at step 0: $eb"
$PY - "$(json_field "$ea" eval_loss)" "$(json_field "$eb" eval_loss)" "$(json_field "$e0" eval_loss)" <<'PYEOF' || fail "init_from evaluation"
import sys
a, b, fresh = map(float, sys.argv[1:])
tol = 1e-5 + 1e-5 * abs(a)  # kF32 (tests/tolerance.h): another layout sums in another order
print(f"checkpoint eval {a:.6f}, init_from run (tp 2, lr 0) {b:.6f}, |diff| {abs(a - b):.1e}; untrained {fresh:.6f}")
sys.exit(0 if abs(a - b) <= tol and abs(fresh - a) > 100 * tol else 1)
PYEOF

echo "== RoPE and the window may change"
$MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.cp=2 --set train.steps=1 --set model.rope_theta=500000 \
  --set model.rope_scaling=yarn --set model.rope_factor=4 --set model.rope_original_max_position_embeddings=32 \
  --set model.sliding_window=16 --set checkpoint.init_from=A --set run.out_dir=rC > trainC.log 2>&1 ||
  { cat trainC.log; fail "init_from with a RoPE change"; }
grep -q "loaded checkpoint A/step-000004.h5" trainC.log || fail "init_from A (a directory) did not load its newest"
echo "ok: rope_theta, yarn and a window over A's weights"

echo "== other model differences are refused, naming both values"
expect_error 2 "model.d_model is 64 in the checkpoint but 96 in this config" \
  "$BIN" train "$CFG" "${TINY[@]}" --set model.d_model=96 --set checkpoint.init_from=A/step-000004.h5
expect_error 2 "model.n_kv_heads is 2 in the checkpoint but 4 in this config" \
  "$BIN" train "$CFG" "${TINY[@]}" --set model.n_kv_heads=4 --set checkpoint.init_from=A/step-000004.h5
expect_error 2 "model.norm_eps is 1e-05 in the checkpoint but 1e-06 in this config" \
  "$BIN" train "$CFG" "${TINY[@]}" --set model.norm_eps=1e-6 --set checkpoint.init_from=A/step-000004.h5
expect_error 2 "checkpoint.init_from = nowhere.h5 .* does not exist" \
  "$BIN" train "$CFG" "${TINY[@]}" --set checkpoint.init_from=nowhere.h5

echo "== a preempted init_from run resumes from its own checkpoint"
"$BIN" train "$CFG" "${TINY[@]}" --set train.steps=2 --set checkpoint.init_from=A/step-000004.h5 \
  --set checkpoint.dir=D --set run.out_dir=rD > trainD.log 2>&1 || { cat trainD.log; fail "init_from run D"; }
"$BIN" train "$CFG" "${TINY[@]}" --set train.steps=3 --set checkpoint.init_from=A/step-000004.h5 \
  --set checkpoint.dir=D --set checkpoint.resume=auto --set run.out_dir=rD2 > trainD2.log 2>&1 || { cat trainD2.log; fail "resume D"; }
grep -q "loaded checkpoint D/step-000002.h5 (step 2, weights, moments and train state" trainD2.log ||
  { cat trainD2.log; fail "resume did not take the run's own checkpoint"; }
echo "PASS"
