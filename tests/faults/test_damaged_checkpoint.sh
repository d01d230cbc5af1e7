#!/usr/bin/env bash
# Damaged checkpoints and the two file formats.
#  1. A new checkpoint uses HDF5's 1.8+ format (superblock version >= 2: every piece of metadata
#     checksummed) and fixed-length string attributes (no global heap), and h5py reads it.
#  2. A checkpoint of the old format (superblock 0, variable-length strings), as written before,
#     still inspects and resumes training.
#  3. Every damaged file that crashed or hung libhdf5 under the fuzzer (old format, and one in
#     the 1.8+ format with links in a fractal heap; tests/fuzz/regress/fuzz_checkpoint/) ends
#     `ringtrain inspect` with exit 2 and a message naming the file, within seconds.
#  4. A byte flipped in the metadata of a new checkpoint: exit 2, a checksum error.
# Catches: a writer that falls back to the old format or to variable-length strings, a reader
# that refuses old checkpoints, a reader that lets libhdf5 read past its buffers or loop forever
# on a damaged heap (the fuzz replay proves no crash; this proves the clear message and exit 2).
set -u
source "$(dirname "$0")/../lib.sh"
export OPENBLAS_NUM_THREADS=1
W=$(mktemp -d /tmp/rt_faults_damaged.XXXXXX); trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
REG="$RINGTRAIN_SOURCE_DIR/tests/fuzz/regress/fuzz_checkpoint"
# The old file's model (tests/fuzz/regress/fuzz_checkpoint/legacy-format-step1.h5).
RUN=("$RINGTRAIN_BIN" train "$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml" --set model.vocab_size=128
  --set model.d_model=8 --set model.n_layers=1 --set model.n_heads=2 --set model.n_kv_heads=1
  --set train.seq_len=64)

echo "== 1. a new checkpoint: 1.8+ format, fixed-length strings"
expect_exit 0 "" "${RUN[@]}" --set train.steps=1 --set checkpoint.dir=D --set run.out_dir=r1
new=D/step-000001.h5
sb=$(od -An -tu1 -j8 -N1 "$new" | tr -d ' ')
[ "$sb" -ge 2 ] || fail "$new has superblock version $sb, wanted >= 2 (the 1.8+ format)"
PY=/usr/bin/python3  # the Debian python3-h5py (scripts/lib/common.sh installs it)
if $PY -c "import h5py" 2>/dev/null; then
  $PY - "$new" <<'PY' || fail "h5py does not read $new as expected"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    for k in ("format", "mesh_cp_mode", "config"):
        t = h5py.h5a.open(f.id, k.encode()).get_type()
        assert not t.is_variable_str(), k + " is a variable-length string"
    assert f.attrs["format"] == b"ringtrain-checkpoint", f.attrs["format"]
    assert f["model/model.embed_tokens.weight"].shape == (128, 8)
PY
else
  echo "(h5py missing: attribute types not checked)"
fi
expect_exit 0 "model +vocab_size 128, d_model 8" "$RINGTRAIN_BIN" inspect "$new"

echo "== 2. the old format still loads"
old="$REG/legacy-format-step1.h5"
[ "$(od -An -tu1 -j8 -N1 "$old" | tr -d ' ')" = 0 ] || fail "$old is not of the old format"
expect_exit 0 "model +vocab_size 128, d_model 8" "$RINGTRAIN_BIN" inspect "$old"
expect_exit 0 "loaded checkpoint .*legacy-format-step1.h5" "${RUN[@]}" --set train.steps=2 \
  --set checkpoint.resume="$old" --set checkpoint.dir=E --set run.out_dir=r2
[ -f E/step-000002.h5 ] || fail "no checkpoint written after resuming the old file"

echo "== 3. damaged files the fuzzer found: exit 2 with a message"
n=0
for f in "$REG"/*.h5; do
  [ "$f" = "$old" ] && continue
  timeout 60 "$RINGTRAIN_BIN" inspect "$f" > out.txt 2>&1
  rc=$?
  [ $rc = 124 ] && fail "inspect $(basename "$f") hangs"
  [ $rc = 2 ] || { cat out.txt; fail "inspect $(basename "$f"): exit $rc, wanted 2"; }
  grep -q "ringtrain: error: checkpoint .*$(basename "$f")" out.txt ||
    { cat out.txt; fail "inspect $(basename "$f"): the message does not name the file"; }
  echo "  $(basename "$f"): $(grep -m1 'ringtrain: error' out.txt | sed 's/.*\.h5//' | cut -c1-90)"
  n=$((n + 1))
done
[ $n -ge 5 ] || fail "only $n damaged files found in $REG"

echo "== 4. a flipped byte in the new format's metadata"
# The root group's object header: the first "OHDR" after the superblock.
off=$(grep -abo OHDR "$new" | head -1 | cut -d: -f1)
[ -n "$off" ] || fail "no object header found in $new"
cp "$new" flipped.h5
printf '\x5a' | dd of=flipped.h5 bs=1 seek=$((off + 20)) conv=notrunc status=none
timeout 60 "$RINGTRAIN_BIN" inspect flipped.h5 > out.txt 2>&1
rc=$?
[ $rc = 2 ] || { cat out.txt; fail "a flipped metadata byte: exit $rc, wanted 2"; }
grep -q "checksum" out.txt || { cat out.txt; fail "a flipped metadata byte is not reported as a checksum error"; }
grep -m1 "ringtrain: error" out.txt | cut -c1-160
pass
