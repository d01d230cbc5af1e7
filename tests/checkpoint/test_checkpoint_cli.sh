#!/usr/bin/env bash
# Checkpoints through the command line:
#  - N + resume + N steps (resume: PATH and resume: auto) give the same losses as 2N straight;
#  - checkpoint.keep keeps the newest K, `latest` names the last save, a *.partial leftover is
#    never loaded and is deleted by the next save;
#  - h5py reads the file (global tensors, attributes); `inspect` lists every tensor;
#  - `export` writes a safetensors file whose tensors equal the checkpoint's, and a config.json;
#  - `eval --checkpoint` gives the same loss on another layout as the training's final eval;
#  - damaged files: a flipped byte (checksum error naming the dataset), a truncated file, a
#    missing tensor, a shape mismatch, a wrong version, another model: exit 2 with the reason.
source "$(dirname "$0")/lib.sh"
cd "$W" || exit 1

echo "== straight run: 6 steps on (dp,cp,tp) = (1,2,1), a checkpoint every step"
$MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.cp=2 --set train.steps=6 \
  --set checkpoint.dir=A --set checkpoint.every=1 --set checkpoint.keep=10 --set run.out_dir=rA > trainA.log 2>&1 ||
  { cat trainA.log; fail "straight run"; }
[ "$(cat A/latest)" = "step-000006.h5" ] || fail "latest is '$(cat A/latest)'"
[ "$(ls A/*.h5 | wc -l)" = 6 ] || fail "expected 6 checkpoints: $(ls A)"
[ ! -e A/LOCK ] || fail "lock file left behind"

echo "== resume: PATH from step 3"
$MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.cp=2 --set train.steps=6 \
  --set checkpoint.dir=B --set checkpoint.resume=A/step-000003.h5 --set run.out_dir=rB > trainB.log 2>&1 ||
  { cat trainB.log; fail "resume from PATH"; }
grep -q "loaded checkpoint A/step-000003.h5" trainB.log || fail "did not load step 3"
diff <(losses rA 4) <(losses rB 4) || fail "losses after resume: PATH differ from the straight run"
echo "ok: steps 4-6 identical: $(losses rB 4 | tr '\n' ' ')"

echo "== resume: auto with a .partial leftover (and keep = 2)"
mkdir C && cp A/step-000003.h5 C/ && echo step-000003.h5 > C/latest
head -c 1000 A/step-000005.h5 > C/step-000005.h5.partial
$MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.cp=2 --set train.steps=6 \
  --set checkpoint.dir=C --set checkpoint.every=1 --set checkpoint.keep=2 --set checkpoint.resume=auto \
  --set run.out_dir=rC > trainC.log 2>&1 || { cat trainC.log; fail "resume auto"; }
grep -q "loaded checkpoint C/step-000003.h5" trainC.log || { cat trainC.log; fail "auto did not pick step 3"; }
diff <(losses rA 4) <(losses rC 4) || fail "losses after resume: auto differ from the straight run"
[ "$(cd C && ls)" = "$(printf 'latest\nstep-000005.h5\nstep-000006.h5')" ] || fail "keep/partial cleanup: $(ls C)"
echo "ok: resumed at 3, identical losses, kept $(cd C && ls *.h5 | tr '\n' ' ')"

echo "== h5py, inspect, export"
$TOOL check A/step-000006.h5 || fail "h5py check"
"$BIN" inspect A > inspect.txt 2>&1 || { cat inspect.txt; fail "inspect"; }
grep -q "^step *6" inspect.txt && grep -q "mesh *dp 1 x cp 2 x tp 1" inspect.txt &&
  grep -q "^optimizer/exp_avg_sq/model.norm.weight  float32  \[64\]  sum .* crc32 [0-9a-f]\{8\}" inspect.txt &&
  grep -q "^  seq_len: 128" inspect.txt || { cat inspect.txt; fail "inspect output"; }
echo "ok: inspect lists $(grep -c crc32 inspect.txt) tensors"
"$BIN" export A/step-000006.h5 hf > export.log 2>&1 || { cat export.log; fail "export"; }
$TOOL export hf A/step-000006.h5 || fail "export check"

echo "== export against the PyTorch reference (tests/reference) on one window of text"
$PY -c 'import sys; sys.stdout.write(("The quick brown fox jumps over the lazy dog. " * 4)[:128])' > window.txt
"$BIN" prepare-text window.txt --out window.bin > /dev/null || fail "prepare-text"
ew=$("$BIN" eval "$CFG" "${TINY[@]}" --checkpoint A/step-000006.h5 --data window.bin 2>&1 | grep '^{"eval_loss"')
[ -n "$ew" ] || fail "eval --data printed no result"
$PY "$SRC/tests/checkpoint/export_reference.py" hf window.bin \
  "$($PY -c 'import json, sys; print(json.loads(sys.argv[1])["eval_loss"])' "$ew")" || fail "export reference"

echo "== a sliding-window model exports as Mistral (same window), against the PyTorch reference"
$MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.cp=2 --set train.steps=2 --set model.sliding_window=16 \
  --set checkpoint.dir=W --set run.out_dir=rW > trainW.log 2>&1 || { cat trainW.log; fail "windowed run"; }
"$BIN" export W/step-000002.h5 hfw > exportw.log 2>&1 || { cat exportw.log; fail "windowed export"; }
$TOOL export hfw W/step-000002.h5 || fail "windowed export check"
eww=$("$BIN" eval "$CFG" "${TINY[@]}" --set model.sliding_window=16 --checkpoint W/step-000002.h5 --data window.bin 2>&1 |
  grep '^{"eval_loss"')
[ -n "$eww" ] || fail "windowed eval --data printed no result"
$PY "$SRC/tests/checkpoint/export_reference.py" hfw window.bin \
  "$($PY -c 'import json, sys; print(json.loads(sys.argv[1])["eval_loss"])' "$eww")" || fail "windowed export reference"

echo "== both exports in the real transformers (PyPI, scripts/ml-venv): the same loss"
HFPY=$("$SRC/scripts/ml-venv") || fail "scripts/ml-venv"
"$HFPY" "$SRC/tests/checkpoint/hf_loss.py" hf window.bin \
  "$($PY -c 'import json, sys; print(json.loads(sys.argv[1])["eval_loss"])' "$ew")" || fail "transformers: Llama export"
"$HFPY" "$SRC/tests/checkpoint/hf_loss.py" hfw window.bin \
  "$($PY -c 'import json, sys; print(json.loads(sys.argv[1])["eval_loss"])' "$eww")" || fail "transformers: Mistral export"

echo "== eval --checkpoint on other layouts = the training's final eval"
final=$(grep '^{"eval_loss"' trainA.log)
e1=$($MPI -np 1 "$BIN" eval "$CFG" "${TINY[@]}" --checkpoint A/step-000006.h5 2>&1 | grep '^{"eval_loss"')
e2=$($MPI -np 2 "$BIN" eval "$CFG" "${TINY[@]}" --set parallel.tp=2 --checkpoint A 2>&1 | grep '^{"eval_loss"')
$PY - "$final" "$e1" "$e2" <<'EOF' || fail "eval losses differ"
import json, sys
ref, a, b = (json.loads(s)["eval_loss"] for s in sys.argv[1:])
assert abs(a - ref) <= 1e-5 * abs(ref) + 1e-6 and abs(b - ref) <= 1e-5 * abs(ref) + 1e-6, (ref, a, b)
print(f"ok: train final eval {ref}, eval np1 {a}, eval tp2 {b}")
EOF

echo "== damaged checkpoints: exit 2 naming what is wrong"
EV=("$BIN" eval "$CFG" "${TINY[@]}")
cp A/step-000006.h5 flip.h5 && $TOOL flip flip.h5 model/model.layers.1.mlp.up_proj.weight > /dev/null
expect_error 2 "checksum error in dataset model/model.layers.1.mlp.up_proj.weight of flip.h5" \
  $MPI -np 2 "${EV[@]}" --set parallel.tp=2 --checkpoint flip.h5
cp A/step-000006.h5 flipm.h5 && $TOOL flip flipm.h5 optimizer/exp_avg/model.norm.weight > /dev/null
expect_error 2 "checksum error in dataset optimizer/exp_avg/model.norm.weight of flipm.h5" \
  $MPI -np 2 "$BIN" train "$CFG" "${TINY[@]}" --set parallel.dp=2 --set parallel.zero1=true \
  --set train.steps=8 --set checkpoint.resume=flipm.h5 --set run.out_dir=rF
head -c 800000 A/step-000006.h5 > trunc.h5
expect_error 2 "checkpoint trunc.h5 .*truncated" "${EV[@]}" --checkpoint trunc.h5
cp A/step-000006.h5 missing.h5 && $TOOL delete missing.h5 model/model.layers.0.self_attn.k_proj.weight
expect_error 2 "tensor model/model.layers.0.self_attn.k_proj.weight is missing" "${EV[@]}" --checkpoint missing.h5
cp A/step-000006.h5 shape.h5 && $TOOL reshape shape.h5 optimizer/exp_avg_sq/model.layers.1.self_attn.o_proj.weight
expect_error 2 "shape mismatch for tensor optimizer/exp_avg_sq/model.layers.1.self_attn.o_proj.weight: the file has \[65, 64\], the model needs \[64, 64\]" \
  "$BIN" train "$CFG" "${TINY[@]}" --set train.steps=8 --set checkpoint.resume=shape.h5 --set run.out_dir=rS
cp A/step-000006.h5 version.h5 && $TOOL version version.h5 99
expect_error 2 "has format version 99; this build reads version 1" "${EV[@]}" --checkpoint version.h5
expect_error 2 "written for a different model: model.d_model is 64 in the checkpoint but 128 in the config" \
  "${EV[@]}" --set model.d_model=128 --checkpoint A/step-000006.h5
expect_error 2 "no valid checkpoint in directory" "${EV[@]}" --checkpoint hf
echo "PASS"
