#!/usr/bin/env bash
# The run log names the CPU kernels' path once, on rank 0: the ISA (RINGTRAIN_CPU_ISA forces a
# narrower one), the attention tiles and the caches they came from, the GEMM library
# (RINGTRAIN_CPU_GEMM=openblas picks OpenBLAS). A name that is neither is one error line and
# exit 2 on every rank, before any training.
set -u
source "$(dirname "$0")/../lib.sh"
cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {
  mpirun --oversubscribe --bind-to none -np 2 "$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=2 \
    --set train.steps=1 --set run.out_dir="$tmp/out" 2>&1
}
out=$(run) || fail "run failed: $out"
[ "$(grep -c '^cpu kernels: ' <<<"$out")" -eq 1 ] || fail "not one 'cpu kernels:' line: $out"
grep -Eq '^cpu kernels: (avx512|avx2|generic) .*attention tiles [0-9]+x[0-9]+ masked.*gemm (onednn|openblas)$' \
  <<<"$out" || fail "the line lacks the path, tiles or GEMM library: $(grep '^cpu kernels' <<<"$out")"
out=$(RINGTRAIN_CPU_ISA=generic run) || fail "generic run failed: $out"
grep -q '^cpu kernels: generic ' <<<"$out" || fail "RINGTRAIN_CPU_ISA=generic not in the log: $out"
out=$(RINGTRAIN_CPU_ISA=avx3 run); rc=$?
[ $rc -eq 2 ] || fail "RINGTRAIN_CPU_ISA=avx3: exit $rc, expected 2: $out"
[ "$(grep -c "ringtrain: error: RINGTRAIN_CPU_ISA='avx3'" <<<"$out")" -eq 1 ] || fail "not one error line: $out"
out=$(RINGTRAIN_CPU_GEMM=mkl run); rc=$?
[ $rc -eq 2 ] || fail "RINGTRAIN_CPU_GEMM=mkl: exit $rc, expected 2: $out"
grep -q "ringtrain: error: RINGTRAIN_CPU_GEMM='mkl'" <<<"$out" || fail "no error line for RINGTRAIN_CPU_GEMM=mkl: $out"
out=$(RINGTRAIN_CPU_GEMM=openblas run) || fail "openblas run failed: $out"
grep -q '^cpu kernels: .*gemm openblas$' <<<"$out" || fail "RINGTRAIN_CPU_GEMM=openblas not in the log: $out"
pass
