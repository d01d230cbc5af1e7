#!/usr/bin/env bash
# Training works end to end: on a generated text file and on the passkey task, a small model's
# loss ends well below where it started, within a bounded number of steps (under a minute).
# Catches a broken gradient path, an optimizer that does not step, a schedule stuck at zero.
set -u
source "$(dirname "$0")/../lib.sh"
cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# first and last logged loss of a run's metrics.jsonl
losses() { grep '"loss"' "$1/metrics.jsonl" | sed -E 's/.*"loss": ([^,]+),.*/\1/' | sed -n '1p;$p' | tr '\n' ' '; }
check_drop() {  # dir, factor: last < factor * first
  read -r first last <<<"$(losses "$1")"
  awk -v f="$first" -v l="$last" -v k="$2" 'BEGIN { exit !(l < k * f) }' ||
    fail "$1: loss went from $first to $last, not below $2 x start"
  echo "$1: loss $first -> $last"
}

# Text with structure a model can learn: sentences from a small grammar.
for i in $(seq 1 400); do
  echo "the cat sat on the mat. the dog ran to the park. a bird sang in the tree number $((i % 7))."
done > "$tmp/corpus.txt"
expect_exit 0 "tokens" "$RINGTRAIN_BIN" prepare-text "$tmp/corpus.txt" --out "$tmp/corpus.bin" --val-fraction 0.1
expect_exit 0 "eval_loss" "$RINGTRAIN_BIN" train "$cfg" --set data.task=text --set data.train="$tmp/corpus.bin" \
  --set data.val="$tmp/corpus.val.bin" --set train.seq_len=64 --set train.steps=60 --set run.out_dir="$tmp/text" \
  --set log.every=1
check_drop "$tmp/text" 0.4

expect_exit 0 "accuracy" mpirun -np 2 "$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=2 --set train.seq_len=128 \
  --set train.steps=40 --set run.out_dir="$tmp/passkey" --set log.every=1
check_drop "$tmp/passkey" 0.6
pass
