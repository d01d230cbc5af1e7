#!/usr/bin/env bash
# `ringtrain plan` and `train --dry-run` are one accounting: the plan of a config at N GPUs
# prints the same memory as the single-process dry run of that config, and as the full-world
# dry run under mpirun (which also checks the plan's parameter counts against the model it
# registers; a mismatch aborts it). --max-context names a length that fits and one step more
# that does not. Bad input (an unknown GPU kind, a GPU count cp*tp does not divide, no --gpus, a
# model that fits at no length) is one line and exit 2. Catches a second memory formula creeping back into
# the dry run and a plan that only works for the config's own world size.
set -u
source "$(dirname "$0")/../lib.sh"

src="$RINGTRAIN_SOURCE_DIR"
tiny="$src/configs/test-tiny.yaml"
memory() { sed -n '/^layout:/,$p' "$OUT"; }

# The 350M recipe (cp 4 x tp 2, bf16, device cuda) on one process: the dry run plans it as an
# H100 job, as `plan --gpus 8` does.
expect_exit 0 "planned on one process" "$RINGTRAIN_BIN" train "$src/configs/llama-350m-16k.yaml" --dry-run
dry=$(memory)
expect_exit 0 "fits: yes" "$RINGTRAIN_BIN" plan "$src/configs/llama-350m-16k.yaml" --gpus 8
[ "$dry" = "$(memory)" ] || fail "dry run and plan differ:
$dry
---
$(cat "$OUT")"
grep -q "parameters: 343983104 global" "$OUT" || fail "the 350M model is not 343983104 parameters: $(cat "$OUT")"
grep -q "bf16 weight copies  *328.1" "$OUT" || fail "no bf16 weight copies on an H100: $(cat "$OUT")"

# The full world under mpirun (CPU, ZeRO-1, hybrid cp) against the plan at the same size.
set_args=(--set parallel.cp=4 --set parallel.cp_mode=hybrid --set parallel.ulysses_degree=2 --set parallel.zero1=true
          --set train.seq_len=128)
expect_exit 0 "rank 7: dp 1 cp 3 tp 0" mpirun -np 8 "$RINGTRAIN_BIN" train "$tiny" --dry-run --set parallel.dp=2 "${set_args[@]}"
dry=$(memory)
expect_exit 0 "fits: host memory" "$RINGTRAIN_BIN" plan "$tiny" --gpus 8 --gpu cpu "${set_args[@]}"
[ "$dry" = "$(memory)" ] || fail "full-world dry run and plan differ:
$dry
---
$(cat "$OUT")"
grep -q "AdamW moments.*(ZeRO-1 shard)" "$OUT" || fail "no ZeRO-1 shard: $(cat "$OUT")"

# A layout far beyond this machine, planned here: 1024 GPUs of a 350M model at cp 64.
expect_exit 0 "1024 ranks = dp 8 x cp 64 x tp 2" "$RINGTRAIN_BIN" plan "$src/configs/llama-350m-16k.yaml" --gpus 1024 \
  --gpu h200 --set parallel.cp=64 --set train.seq_len=131072

# --max-context: the length it names fits, one step (2 * cp = 16 here) more does not.
eight="$src/configs/llama3-8b-128k.yaml"
expect_exit 0 "^max context: seq_len [0-9]+ \(multiples of 16 tried\)" "$RINGTRAIN_BIN" plan "$eight" --gpus 64 --max-context \
  --set parallel.sequence_parallel=false
longest=$(sed -n 's/^max context: seq_len \([0-9]*\) .*/\1/p' "$OUT")
grep -q "fits: yes" "$OUT" || fail "--max-context's own length does not fit: $(cat "$OUT")"
expect_exit 0 "fits: NO" "$RINGTRAIN_BIN" plan "$eight" --gpus 64 --set parallel.sequence_parallel=false \
  --set train.seq_len=$((longest + 16))

# Bad input: one line, exit 2.
expect_exit 2 "does not fit on the h100 at any length" "$RINGTRAIN_BIN" plan "$eight" --gpus 1 --max-context \
  --set parallel.cp=1 --set parallel.tp=1 --set parallel.sequence_parallel=false
expect_exit 2 "--max-context needs a GPU kind" "$RINGTRAIN_BIN" plan "$eight" --gpus 64 --max-context --gpu cpu
expect_exit 2 "unknown GPU kind 'h10'.*did you mean 'h100'" "$RINGTRAIN_BIN" plan "$tiny" --gpus 1 --gpu h10
expect_exit 2 "cp x tp = 4 x 2 = 8 does not divide it" "$RINGTRAIN_BIN" plan "$src/configs/llama-350m-16k.yaml" --gpus 12
expect_exit 2 "missing --gpus N" "$RINGTRAIN_BIN" plan "$tiny"
expect_exit 2 "--gpus expects an integer" "$RINGTRAIN_BIN" plan "$tiny" --gpus 0
for cmd in "plan $tiny --gpus 1 --gpu h10" "plan $src/configs/llama-350m-16k.yaml --gpus 12" \
           "plan $eight --gpus 1 --max-context --set parallel.cp=1 --set parallel.tp=1 --set parallel.sequence_parallel=false"; do
  "$RINGTRAIN_BIN" $cmd > "$OUT" 2>&1
  [ "$(wc -l < "$OUT")" = 1 ] || fail "not one line: $(cat "$OUT")"
done
pass
