#!/usr/bin/env bash
# TensorBoard event files read back with TensorBoard's own reader (EventAccumulator):
#  - every number of every metrics.jsonl line (train steps and evals) is a scalar of the event
#    file, at the same step, with the same float32 value; the resolved config is a text summary
#    at step 0. Catches: wrong protobuf field numbers or wire types, a bad CRC-32C or framing
#    (the reader drops everything after a bad record), a metric logged to one place only.
#  - on 2 ranks only rank 0 writes an event file.
#  - the run ends with the summary JSON line and then the final eval JSON line (the last line).
set -u
source "$(dirname "$0")/lib.sh"
PY=$(venv_python) || exit 1
cd "$W" || exit 1

"$BIN" train "$CFG" --set train.seq_len=128 --set train.steps=5 --set log.every=1 --set log.tensorboard=true \
  --set train.eval_every=2 --set run.out_dir=r1 > r1.log 2>&1 || { cat r1.log; fail "training run"; }
"$PY" "$HERE/tb_check.py" r1 --min-steps 5 --config-text "seq_len: 128" || { cat r1.log; fail "event file check"; }
[ "$(ls r1/tb | wc -l)" = 1 ] || fail "expected one event file: $(ls r1/tb)"
grep -q '"eval_loss"' r1/metrics.jsonl || fail "no eval line in metrics.jsonl"

tail -1 r1.log | grep -q '^{"eval_loss": ' || { tail -3 r1.log; fail "the final eval JSON line is not the last line"; }
tail -2 r1.log | head -1 | grep -q '^{"summary": {"steps": 5, ' || { tail -3 r1.log; fail "no summary JSON line before it"; }
"$PY" - r1.log r1/summary.json <<'PY' || fail "summary JSON"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
s = json.loads(lines[-2])["summary"]
for k in ["steps", "tokens", "wall_s", "tokens_per_s", "peak_host_mib", "rss_peak_mib", "train_loss", "eval_loss",
          "metrics", "tensorboard"]:
    assert k in s, "summary lacks " + k
assert s["tokens"] == 5 * 2 * 128, s["tokens"]  # steps * micro_batch * seq_len (dp 1, grad_accum 1)
assert json.load(open(sys.argv[2])) == s, "summary.json differs from the summary line"
last = json.loads(lines[-1])
assert abs(last["eval_loss"] - s["eval_loss"]) < 1e-5, (last, s)
print("ok: summary", {k: s[k] for k in ["steps", "tokens", "tokens_per_s", "train_loss", "eval_loss"]})
PY

echo "== 2 ranks (cp 2): one event file, from rank 0"
mpirun --oversubscribe -np 2 "$BIN" train "$CFG" --set train.seq_len=128 --set train.steps=3 --set parallel.cp=2 \
  --set log.tensorboard=true --set run.out_dir=r2 > r2.log 2>&1 || { cat r2.log; fail "2-rank run"; }
[ "$(ls r2/tb | wc -l)" = 1 ] || fail "expected one event file on 2 ranks: $(ls r2/tb)"
"$PY" "$HERE/tb_check.py" r2 --min-steps 3 --config-text "cp: 2" || fail "2-rank event file check"

echo "== a resumed run: its SessionLog START makes TensorBoard drop the older run's later steps"
# Run 1 trains 4 steps (checkpoints at 2 and 4); run 2 resumes from step 2 into the same
# out_dir and trains steps 3-4 again: one value per step remains, run 2's (its elapsed_s).
"$BIN" train "$CFG" --set train.steps=4 --set log.tensorboard=true --set checkpoint.dir=ck --set checkpoint.every=2 \
  --set run.out_dir=r4 > r4a.log 2>&1 || { cat r4a.log; fail "run 1 of the resume"; }
"$BIN" train "$CFG" --set train.steps=4 --set log.tensorboard=true --set checkpoint.dir=ck --set checkpoint.every=2 \
  --set checkpoint.resume=ck/step-000002.h5 --set run.out_dir=r4 > r4b.log 2>&1 || { cat r4b.log; fail "run 2 of the resume"; }
grep -q "loaded checkpoint ck/step-000002.h5" r4b.log || { cat r4b.log; fail "run 2 did not resume from step 2"; }
[ "$(ls r4/tb | wc -l)" = 2 ] || fail "expected two event files: $(ls r4/tb)"
"$PY" "$HERE/tb_check.py" r4 --min-steps 6 || fail "event files of a resumed run"

echo "== MFU with log.peak_tflops: in metrics.jsonl, the event file and the summary"
"$BIN" train "$CFG" --set train.steps=2 --set log.tensorboard=true --set log.peak_tflops=0.01 \
  --set run.out_dir=r3 > r3.log 2>&1 || { cat r3.log; fail "run with peak_tflops"; }
grep -q '"mfu": ' r3/metrics.jsonl || fail "no mfu in metrics.jsonl"
grep -q '| mfu [0-9.]*% |' r3.log || { cat r3.log; fail "no mfu on the step line"; }
grep -q '"summary": {.*"mfu": ' r3.log || fail "no mfu in the summary"
"$PY" "$HERE/tb_check.py" r3 --min-steps 2 || fail "event file with mfu"
pass
