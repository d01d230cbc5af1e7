#!/usr/bin/env bash
# `ringtrain import` against the real transformers (PyPI, scripts/ml-venv): transformers builds
# and saves small random Llama and Mistral models (tests/hf/hf_models.py: GQA groups 1 and 4,
# tied and untied, rope_scaling none/linear/llama3/yarn, one file and sharded, fp32/bf16/fp16,
# a sliding window, a transformers-4 config.json); each is imported and
#  - `ringtrain eval` on a fixed window gives transformers' loss (float64) within kF32, at one
#    rank and at (cp 2, tp 2) (and one case on the CUDA backend when the binary has one): catches a weight read into the wrong place or dtype, a config key
#    read wrong (rope type or parameter, eps, GQA, tie, window), a checkpoint a layout cannot load;
#  - the same model evaluated without its rope scaling gives another loss: the window is long
#    enough for the scaling to matter, so the check above is not blind to it;
#  - export(import(x)) holds x's tensors bit for bit (bf16/fp16 values exactly), and the exported
#    directory gives the same loss in transformers (export writes rope_scaling);
#  - what ringtrain cannot represent is one input error naming the key or tensor, exit 2: biases,
#    an unknown rope type, another architecture, a damaged safetensors file, a shard the index
#    does not match.
source "$(dirname "$0")/../checkpoint/lib.sh"
cd "$W" || exit 1
HFPY=$("$SRC/scripts/ml-venv") || fail "scripts/ml-venv"
M="$SRC/tests/hf/hf_models.py"
"$HFPY" "$M" make models 2>&1 | grep -v "Writing model shards" || fail "transformers could not build the models"

eval_loss() {  # eval_loss CASE [extra ringtrain args...]: ringtrain's loss of the window
  local c=$1
  shift
  "$@" "$BIN" eval "models/$c.yaml" --checkpoint "models/$c.h5" --data models/window.bin --set train.seq_len=64 \
    --set train.eval_batches=1 --set log.progress=never "${EXTRA[@]}" > "eval_$c.log" 2>&1 ||
    { cat "eval_$c.log" >&2; return 1; }
  grep '^{"eval_loss"' "eval_$c.log" | $PY -c 'import json, sys; print(json.loads(sys.stdin.read())["eval_loss"])'
}

# ringtrain's side first, then every comparison in one Python process (torch loads once).
: > checks.txt
for c in $(cat models/cases.txt); do
  echo "== $c"
  "$BIN" import "models/$c" "models/$c.h5" || fail "import $c"
  $PY - "models/$c.h5" <<'PYEOF' || fail "$c: the import is not a step-0 checkpoint with zero moments"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert int(f.attrs["step"]) == 0 and int(f.attrs["tokens_seen"]) == 0
    for g in ("optimizer/exp_avg", "optimizer/exp_avg_sq"):
        assert sorted(f[g].keys()) == sorted(f["model"].keys()), g
        assert all(not np.any(f[g][n][...]) for n in f[g].keys()), g + " is not zero"
PYEOF
  EXTRA=()
  l1=$(eval_loss "$c") || fail "eval $c at one rank"
  EXTRA=(--set parallel.cp=2 --set parallel.tp=2)
  l4=$(eval_loss "$c" $MPI -np 4) || fail "eval $c at cp 2 x tp 2"
  echo "loss models/$c models/window.bin $l1 1 rank" >> checks.txt
  echo "loss models/$c models/window.bin $l4 cp 2 x tp 2" >> checks.txt
  if [ "$c" = mistral_g4_yarn_window_bf16 ] && ! "$BIN" --version | grep -q "GPU backend: none"; then
    EXTRA=(--set device=cuda)  # the CUDA backend (the emulated device in CI): yarn, window, GQA
    lg=$(eval_loss "$c") || fail "eval $c on the CUDA backend"
    echo "loss models/$c models/window.bin $lg device cuda" >> checks.txt
  fi
  if grep -q "rope_scaling: [lly]" "models/$c.yaml"; then
    EXTRA=(--set model.rope_scaling=none)
    l0=$(eval_loss "$c") || fail "eval $c without scaling"
    [ "$l0" != "$l1" ] || fail "$c: the loss does not change without the rope scaling ($l0)"
    echo "  without its rope scaling the loss is $l0 (with: $l1)"
  fi
  "$BIN" export "models/$c.h5" "exp_$c" > /dev/null || fail "export $c"
  echo "same models/$c exp_$c" >> checks.txt
  echo "loss exp_$c models/window.bin $l1 exported, 1 rank" >> checks.txt
done
"$HFPY" "$M" check checks.txt 2>&1 | grep -v "Loading weights"
[ "${PIPESTATUS[0]}" = 0 ] || fail "ringtrain and transformers disagree (above)"

echo "== train from an imported model: init_from at cp 2 with a RoPE change, lr 0: its evaluation is the import's"
c=llama_g4_llama3_fp32_sharded
EXTRA=(--set parallel.cp=2 --set model.rope_theta=1000000)
lr=$(eval_loss "$c" $MPI -np 2) || fail "eval of the import with the new rope_theta"
$MPI -np 2 "$BIN" train "models/$c.yaml" --set checkpoint.init_from="models/$c.h5" --set data.task=text \
  --set data.train=models/window.bin --set data.val=models/window.bin --set train.seq_len=64 --set train.steps=1 --set train.eval_batches=1 \
  --set train.lr=0 --set train.min_lr=0 --set train.warmup_steps=0 --set log.progress=never --set run.out_dir=rI \
  "${EXTRA[@]}" > trainI.log 2>&1 || { cat trainI.log; fail "init_from an imported model"; }
li=$(grep '^{"eval_loss"' trainI.log | $PY -c 'import json, sys; print(json.loads(sys.stdin.read())["eval_loss"])')
[ "$li" = "$lr" ] || fail "init_from run's evaluation $li differs from the import's $lr"
echo "ok: init_from models/$c.h5 at cp 2 with rope_theta 1e6: eval $li, as eval of the import"

echo "== a trained checkpoint with rope_scaling yarn, exported, gives ringtrain's loss in transformers"
$MPI -np 2 "$BIN" train "models/$c.yaml" --set checkpoint.init_from="models/$c.h5" --set data.task=text \
  --set data.train=models/window.bin --set data.val=models/window.bin --set train.seq_len=64 --set train.steps=3 \
  --set train.lr=1e-3 --set train.warmup_steps=0 --set log.progress=never --set run.out_dir=rJ --set checkpoint.dir=J \
  --set parallel.cp=2 --set model.rope_scaling=yarn --set model.rope_factor=2 \
  --set model.rope_original_max_position_embeddings=32 > trainJ.log 2>&1 || { cat trainJ.log; fail "training with yarn"; }
"$BIN" export J "exp_J" > /dev/null || fail "export J"
grep -q '"rope_type": "yarn"' exp_J/config.json || fail "the export's config.json lacks the yarn scaling"
lj=$("$BIN" eval "models/$c.yaml" --checkpoint J --data models/window.bin --set train.seq_len=64 --set train.eval_batches=1 \
  --set log.progress=never --set model.rope_scaling=yarn --set model.rope_factor=2 \
  --set model.rope_original_max_position_embeddings=32 2>&1 | grep '^{"eval_loss"' |
  $PY -c 'import json, sys; print(json.loads(sys.stdin.read())["eval_loss"])') || fail "eval J"
"$HFPY" "$M" loss exp_J models/window.bin "$lj" 2>&1 | grep -v "Loading weights"
[ "${PIPESTATUS[0]}" = 0 ] || fail "transformers' loss of the trained yarn export differs from ringtrain's"

echo "== what ringtrain cannot represent: exit 2 naming the key or tensor"
base=models/llama_g1_none_fp32
edit() {  # edit DIR PYTHON-STATEMENT-ON-cfg: a copy of $base with config.json changed
  rm -rf "$1" && cp -r "$base" "$1"
  $PY -c "import json, sys; p = sys.argv[1] + '/config.json'; cfg = json.load(open(p)); $2; json.dump(cfg, open(p, 'w'))" "$1"
}
edit bias 'cfg["attention_bias"] = True'
expect_error 2 '"attention_bias" = true' "$BIN" import bias out.h5
edit mlpbias 'cfg["mlp_bias"] = True'
expect_error 2 '"mlp_bias" = true' "$BIN" import mlpbias out.h5
edit dyn 'cfg["rope_parameters"] = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}'
expect_error 2 'rope_parameters.rope_type "dynamic" is not supported' "$BIN" import dyn out.h5
edit yarnm 'cfg["rope_parameters"] = {"rope_type": "yarn", "factor": 2.0, "mscale": 0.7, "original_max_position_embeddings": 64}'
expect_error 2 'rope_parameters.mscale is not supported with rope_type yarn' "$BIN" import yarnm out.h5
edit gpt2 'cfg["model_type"] = "gpt2"; cfg["architectures"] = ["GPT2LMHeadModel"]'
expect_error 2 '"model_type" = "gpt2" is not supported' "$BIN" import gpt2 out.h5
edit qwen 'cfg["architectures"] = ["Qwen2ForCausalLM"]'
expect_error 2 '"architectures" names "Qwen2ForCausalLM"' "$BIN" import qwen out.h5
edit act 'cfg["hidden_act"] = "gelu"'
expect_error 2 '"hidden_act" = "gelu"' "$BIN" import act out.h5
edit hd 'cfg["head_dim"] = 32'
expect_error 2 '"head_dim" = 32 is not hidden_size / num_attention_heads' "$BIN" import hd out.h5
edit noheads 'del cfg["num_attention_heads"]'
expect_error 2 'missing key "num_attention_heads"' "$BIN" import noheads out.h5
edit wide 'cfg["intermediate_size"] = 512'
expect_error 2 'mlp.gate_proj.weight in .* has shape \[256, 128\]' "$BIN" import wide out.h5
# a bias tensor in the weights (the config says none)
rm -rf tbias && cp -r "$base" tbias
"$HFPY" -c '
import sys, torch
from safetensors.torch import load_file, save_file
p = sys.argv[1] + "/model.safetensors"
t = load_file(p)
t["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(128)
save_file(t, p, metadata={"format": "pt"})' tbias
expect_error 2 'holds model.layers.0.self_attn.q_proj.bias, .* (biases are not supported)' "$BIN" import tbias out.h5
# damaged safetensors: a header length beyond the file, and a tensor whose offsets overrun the data
rm -rf dmg && cp -r "$base" dmg
$PY -c 'import sys; p = sys.argv[1] + "/model.safetensors"; b = bytearray(open(p, "rb").read()); b[0:8] = (10**9).to_bytes(8, "little"); open(p, "wb").write(b)' dmg
expect_error 2 'model.safetensors: header of 1000000000 bytes overruns the file' "$BIN" import dmg out.h5
rm -rf trunc && cp -r "$base" trunc
$PY -c 'import os, sys; p = sys.argv[1] + "/model.safetensors"; os.truncate(p, os.path.getsize(p) - 4)' trunc
expect_error 2 'data_offsets \[.*\] outside the' "$BIN" import trunc out.h5
# a sharded index naming a shard for a tensor that another shard holds
sh=models/llama_g4_llama3_fp32_sharded
rm -rf idx && cp -r "$sh" idx
$PY -c '
import json, sys
p = sys.argv[1] + "/model.safetensors.index.json"
j = json.load(open(p))
j["weight_map"]["model.norm.weight"] = "model-00001-of-00010.safetensors" if j["weight_map"]["model.norm.weight"] != "model-00001-of-00010.safetensors" else "model-00002-of-00010.safetensors"
json.dump(j, open(p, "w"))' idx
expect_error 2 'holds model.norm.weight, which .*index.json places in' "$BIN" import idx out.h5
echo "PASS"
