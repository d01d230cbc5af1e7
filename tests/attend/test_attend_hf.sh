#!/usr/bin/env bash
# `ringtrain attend` against Hugging Face transformers: a briefly trained model (GQA, 2
# layers) is exported (`ringtrain export`) and run in transformers with eager attention and
# output_attentions=True on the same prompt; the rows and the pooled map ringtrain computed on
# 2 ranks (ring) equal transformers' attention weights (tests/attend/hf_attention.py). Catches
# a RoPE, scale or GQA convention that differs from the one the exported model is read with.
# Needs the venv of scripts/ml-venv (PyPI torch and transformers); skipped (77) without it.
set -u
source "$(dirname "$0")/../lib.sh"
cfg="$RINGTRAIN_SOURCE_DIR/configs/demo.yaml"
PY=$("$RINGTRAIN_SOURCE_DIR/scripts/ml-venv" 2>/dev/null | tail -1) || { echo "SKIP: no ml venv (scripts/ml-venv)"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
common=(--set train.seq_len=64 --set data.passkey_digits=2 --set parallel.cp=1 --set checkpoint.dir="$tmp/ckpt")
expect_exit 0 "step 8/8" "$RINGTRAIN_BIN" train "$cfg" "${common[@]}" --set train.steps=8 --set train.eval_every=0 \
  --set log.every=1 --set run.out_dir="$tmp/train"
expect_exit 0 '"summary": "attend"' mpirun -np 2 "$RINGTRAIN_BIN" attend "$cfg" "${common[@]}" --set parallel.cp=2 \
  --checkpoint "$tmp/ckpt" --text "The pass key is 42. Remember it. What is the pass key? 42" --rows 0,9,30,last \
  --pool 1 --out "$tmp/attention.h5"
expect_exit 0 "" "$RINGTRAIN_BIN" export "$tmp/ckpt" "$tmp/hf"
/usr/bin/python3 "$RINGTRAIN_SOURCE_DIR/tests/attend/hf_attention.py" --npz "$tmp/attention.h5" "$tmp/attention.npz" ||
  fail "reading attention.h5"
"$PY" "$RINGTRAIN_SOURCE_DIR/tests/attend/hf_attention.py" "$tmp/hf" "$tmp/attention.npz" || fail "attention differs from transformers"
pass
