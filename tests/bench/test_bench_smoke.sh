#!/usr/bin/env bash
# Every benchmark program runs at a tiny size and its own correctness check holds: benchmarks
# are not tests, but one that stopped running (or started printing wrong numbers) should fail
# here rather than on the day someone needs its table. Sizes are minimal; nothing is timed.
set -u
source "$(dirname "$0")/../lib.sh"

bench=./bench
# max_err (last column) of each table row at most $2.
errors_below() {
  awk -v bound="$2" -v what="$1" '
    $1 ~ /^[0-9]+$/ && NF >= 11 { rows++; if ($NF + 0 > bound) { print what ": max_err " $NF " above " bound; bad = 1 } }
    END { if (rows == 0) { print what ": no table rows"; bad = 1 } exit bad }' "$OUT" || { cat "$OUT" >&2; fail "$1"; }
}

# fp32 CPU flash attention against the double reference: a few ulps of the outputs' size.
expect_exit 0 "ceiling: OpenBLAS sgemm" "$bench/attention/bench_attention" --seq 128,192 --heads 2 --dim 32 --reps 1
errors_below "bench_attention cpu" 1e-5
expect_exit 0 "^packed " "$bench/attention/bench_attention" --seq "" --packed 1024 --heads 2 --dim 32 --reps 1
# bf16 inputs and outputs on the emulated device (or a real one): half an ulp of bf16 at |out| < 1.
if grep -q "^RINGTRAIN_GPU:STRING=off" CMakeCache.txt; then
  expect_exit 0 "nothing to run on cuda" "$bench/attention/bench_attention" --device cuda
else
  expect_exit 0 "ceiling: " "$bench/attention/bench_attention" --device cuda --seq 128 --dim 64 --heads 2 --tokens 128 --reps 1
  errors_below "bench_attention cuda" 4e-3
fi
expect_exit 2 "unknown option --nope" "$bench/attention/bench_attention" --nope 1

expect_exit 0 '"what":"attention".*"max_err"' "$bench/steps/bench_steps_attention_time" --seq 256 --heads 2 --dim 32 --reps 1 --warmup 0
expect_exit 0 '"what":"ring".*"exchanges"' mpirun -np 2 "$bench/steps/bench_steps_ring_time" --seq 512 --reps 1
expect_exit 0 '"world":2' mpirun -np 2 "$bench/steps/bench_steps_step_time" --config "$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml" \
  --set parallel.cp=2 --warmup 0 --steps 1
expect_exit 0 "zigzag" "$bench/bench_cp_balance" --seq 2048 --samples 4
pass
