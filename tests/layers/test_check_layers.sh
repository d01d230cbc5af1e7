#!/usr/bin/env bash
# The layer check (scripts/check-layers) passes on the tree and fails on a planted include:
# one going up (the kernel layer including the trainer) and one going beside (config
# including the GPU layer). Catches a check that finds no files, or never fails.
set -u
SRC=${RINGTRAIN_SOURCE_DIR:?ctest sets RINGTRAIN_SOURCE_DIR}
fail() { echo "FAIL: $*"; exit 1; }

out=$("$SRC/scripts/check-layers" "$SRC") || fail "the tree itself: $out"
echo "$out"

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cp -r "$SRC/src" "$SRC/kernels" "$SRC/parallel" "$SRC/data" "$T/"
echo '#include "src/train/trainer.h"' >> "$T/kernels/cpu/gemm.cpp"
out=$("$SRC/scripts/check-layers" "$T") && fail "an upward include passed"
echo "$out" | grep -q '^kernels/cpu/gemm.cpp:[0-9]*: layer kernels (floor 2) includes src/train/trainer.h, layer train (floor 7) above it$' ||
  fail "upward include not named: $out"
sed -i '$d' "$T/kernels/cpu/gemm.cpp"
echo '#include "src/device/gpu.h"' >> "$T/src/config/config.cpp"
out=$("$SRC/scripts/check-layers" "$T") && fail "an include beside passed"
echo "$out" | grep -q '^src/config/config.cpp:[0-9]*: layer config (floor 1) includes src/device/gpu.h, layer device (floor 1) beside it$' ||
  fail "include beside not named: $out"
echo "ok: planted includes are refused with the file and line"
