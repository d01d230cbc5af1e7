#!/usr/bin/env bash
# Whole-program error behaviour: bad input ends every rank with one clear line and exit 2;
# a rank that fails while the others wait in a collective ends the whole job within seconds.
set -u
source "$(dirname "$0")/../lib.sh"

cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# Unknown key with a suggestion, printed once (rank 0) although 4 ranks parse it.
expect_exit 2 "unknown key" mpirun -np 4 "$RINGTRAIN_BIN" train "$cfg" --set train.lrr=1
[ "$(grep -c 'ringtrain: error' "$OUT")" = 1 ] || fail "the config error was printed $(grep -c 'ringtrain: error' "$OUT") times"
grep -q "did you mean" "$OUT" || fail "no suggestion: $(cat "$OUT")"
# World size must equal dp*cp*tp.
expect_exit 2 "dp\*cp\*tp" mpirun -np 2 "$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=4 --set train.seq_len=128
# seq_len not divisible by 2*cp (zigzag).
expect_exit 2 "seq_len" "$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=3 --set train.seq_len=128
# Ulysses degree must divide the heads.
expect_exit 2 "ulysses" mpirun -np 8 "$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=8 --set parallel.cp_mode=ulysses --set train.seq_len=128
# tp must divide the kv heads.
expect_exit 2 "n_kv_heads" mpirun -np 4 "$RINGTRAIN_BIN" train "$cfg" --set parallel.tp=4 --set train.seq_len=128
# An unknown ZeRO level is a config error (once, although 2 ranks parse it); a level that
# shards nothing (dp x cp = 1) runs with one warning.
expect_exit 2 "parallel.zero = '4' is not allowed" mpirun -np 2 "$RINGTRAIN_BIN" train "$cfg" --set parallel.zero=4
[ "$(grep -c 'ringtrain: error' "$OUT")" = 1 ] || fail "the zero error was printed $(grep -c 'ringtrain: error' "$OUT") times"
expect_exit 0 "shards nothing" mpirun -np 2 "$RINGTRAIN_BIN" train "$cfg" --set parallel.tp=2 --set parallel.zero=2 \
  --set train.seq_len=128 --set train.steps=1 --set train.eval_batches=1 --set run.out_dir="$tmp/zero" --set checkpoint.dir=
[ "$(grep -c 'shards nothing' "$OUT")" = 1 ] || fail "the zero warning was printed $(grep -c 'shards nothing' "$OUT") times"
# device: cuda without a CUDA backend is refused, never silently run on the CPU; with one (the
# emulated device in CI) the same command is accepted.
if "$RINGTRAIN_BIN" --version | grep -q "GPU backend: none"; then
  expect_exit 2 "built without the GPU layer" "$RINGTRAIN_BIN" train "$cfg" --set device=cuda --set train.seq_len=128
else
  "$RINGTRAIN_BIN" train "$cfg" --set device=cuda --set train.seq_len=128 --dry-run > /dev/null ||
    fail "device: cuda refused by a binary with a GPU backend"
fi
# Missing config file, unknown subcommand, unknown flag.
expect_exit 2 "nope.yaml" "$RINGTRAIN_BIN" train "$tmp/nope.yaml"
expect_exit 2 "trian" "$RINGTRAIN_BIN" trian "$cfg"
expect_exit 2 "--frobnicate" "$RINGTRAIN_BIN" train "$cfg" --frobnicate
# Bad token file: wrong magic.
printf 'not a token file at all, just text that is long enough' > "$tmp/bad.bin"
expect_exit 2 "bad.bin" "$RINGTRAIN_BIN" train "$cfg" --set data.task=text --set data.train="$tmp/bad.bin" --set train.seq_len=16
grep -q "Traceback\|terminate called\|Segmentation" "$OUT" && fail "stack trace in: $(cat "$OUT")"

# Help, version, config dump and dry run succeed.
expect_exit 0 "ringtrain train" "$RINGTRAIN_BIN" --help
expect_exit 0 "^ringtrain [0-9]+\.[0-9]+" "$RINGTRAIN_BIN" --version
expect_exit 0 "seq_len: 128" "$RINGTRAIN_BIN" config "$cfg" --set train.seq_len=128
expect_exit 0 "rank 3: dp 1 cp 1 tp 0 host [^ ]+ local rank 3 gpu 3" mpirun -np 4 "$RINGTRAIN_BIN" train "$cfg" --dry-run --set parallel.dp=2 --set parallel.cp=2 --set train.seq_len=128
grep -q "memory per rank" "$OUT" || fail "dry run without a memory estimate"

# A fault on one rank while the others wait in a collective ends the job quickly.
start=$(date +%s)
RINGTRAIN_TEST_FAIL_RANK=1 expect_exit nonzero "injected failure" timeout 60 mpirun -np 4 "$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=4 --set train.seq_len=128
took=$(( $(date +%s) - start ))
[ "$took" -le 15 ] || fail "the job took ${took}s to end after one rank failed"
grep -q "(rank 1)" "$OUT" || fail "the error does not name the rank: $(cat "$OUT")"
pass
