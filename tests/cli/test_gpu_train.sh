#!/usr/bin/env bash
# The ringtrain binary trains with device: cuda: on the emulated device in CI (the same command
# runs unchanged on GPUs). Two ranks, context parallel over the NCCL communicator, bf16: the
# loss falls, the run says which device it used, the progress line and metrics.jsonl carry the
# peak device memory and MFU, and the staged-MPI communicator trains too. Catches a CUDA path
# that is built but never reached from the command line, a silent CPU fallback, and metrics
# that report host memory for a GPU run. Skipped (77) by a binary without a GPU backend.
set -u
source "$(dirname "$0")/../lib.sh"
"$RINGTRAIN_BIN" --version | grep -q "GPU backend: none" && { echo "no GPU backend in this build"; exit 77; }
cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

first_last() { grep '"loss"' "$1/metrics.jsonl" | sed -E 's/.*"loss": ([^,]+),.*/\1/' | sed -n '1p;$p' | tr '\n' ' '; }

expect_exit 0 "device cuda, bf16" mpirun -np 2 "$RINGTRAIN_BIN" train "$cfg" --set device=cuda --set train.precision=bf16 \
  --set parallel.cp=2 --set train.seq_len=128 --set train.steps=30 --set log.every=10 --set log.peak_tflops=989 \
  --set run.out_dir="$tmp/nccl"
grep -Eq "mem [0-9]+ MiB device" "$OUT" || { cat "$OUT"; fail "no device memory on the progress line"; }
grep -Eq "mfu [0-9.]+%" "$OUT" || { cat "$OUT"; fail "no MFU on the progress line"; }
grep -q '"peak_device_mib"' "$tmp/nccl/metrics.jsonl" || fail "metrics.jsonl lacks peak_device_mib"
read -r first last <<<"$(first_last "$tmp/nccl")"
awk -v f="$first" -v l="$last" 'BEGIN { exit !(l < 0.8 * f) }' || fail "device run: loss $first -> $last"
echo "cuda/nccl bf16: loss $first -> $last"

expect_exit 0 "device cuda, fp32" mpirun -np 2 "$RINGTRAIN_BIN" train "$cfg" --set device=cuda --set parallel.tp=2 \
  --set parallel.device_comm=staged --set train.steps=5 --set log.every=5 --set run.out_dir="$tmp/staged"
pass
