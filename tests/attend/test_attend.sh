#!/usr/bin/env bash
# `ringtrain attend` (issue 26) end to end on a briefly trained model:
#  - the HDF5 file reads back with h5py: every full row sums to one, every pooled row of blocks
#    to the pool size, a key span's mass equals the row summed over it, the retrieval table
#    ranks every head; catches a file layout the plot script and users cannot read;
#  - one rank, ring cp = 2 and 4, Ulysses cp = 2, tp = 2 write the same maps (fp32 layout
#    tolerance), and so does the CUDA backend (ring cp = 2) when the binary has one (the
#    emulated device in CI); catches a gather that misplaces a rank's rows, blocks or heads;
#  - --data --sample with data.packing: documents keeps the window's documents masked apart
#    (a row reads nothing before its document's start, on 2 ranks);
#  - bad input is one line and exit 2: a row, layer or head out of range, a pool size that
#    does not divide the length, a prompt longer than train.seq_len, two prompt sources;
#  - scripts/plot-attention draws the file.
set -u
source "$(dirname "$0")/../lib.sh"
cfg="$RINGTRAIN_SOURCE_DIR/configs/demo.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
common=(--set train.seq_len=64 --set data.passkey_digits=2 --set parallel.cp=1 --set checkpoint.dir="$tmp/ckpt")
expect_exit 0 "step 6/6" "$RINGTRAIN_BIN" train "$cfg" "${common[@]}" --set train.steps=6 --set train.eval_every=0 \
  --set log.every=1 --set run.out_dir="$tmp/train"
ask=(--checkpoint "$tmp/ckpt" --needle --length 60 --depth 0.3 --rows last,needle,0,17,31 --spans 30:45 --pool 5)

run_attend() {  # name, ranks, extra args...
  local name=$1 np=$2; shift 2
  expect_exit 0 '"summary": "attend"' mpirun -np "$np" "$RINGTRAIN_BIN" attend "$cfg" "${common[@]}" "${ask[@]}" \
    --out "$tmp/$name.h5" "$@"
}
run_attend one 1
run_attend ring2 2 --set parallel.cp=2
run_attend ring4 4 --set parallel.cp=4
run_attend ulysses2 2 --set parallel.cp=2 --set parallel.cp_mode=ulysses
run_attend tp2 2 --set parallel.tp=2
grep -q '"retrieval_heads"' "$OUT" || fail "no retrieval heads in: $(cat "$OUT")"
layouts="ring2 ring4 ulysses2 tp2"
if ! "$RINGTRAIN_BIN" --version | grep -q "GPU backend: none"; then
  run_attend cuda2 2 --set parallel.cp=2 --set device=cuda
  layouts="$layouts cuda2"
fi

/usr/bin/python3 - "$tmp" $layouts <<'PY' || fail "HDF5 contents"
import sys, h5py, numpy as np
tmp = sys.argv[1]
ref = h5py.File(f"{tmp}/one.h5", "r")
L, pool = int(ref.attrs["length"]), int(ref.attrs["pool"])
assert L == 60 and pool == 5, (L, pool)
rows_at = list(ref["row_positions"][:])
assert rows_at[:1] == [59] and {0, 17, 31} <= set(rows_at), rows_at
names = ref.attrs["span_names"].decode().split(",")
lo, hi = ref["span_bounds"][names.index("needle")]
assert names[-1] == "30:45" and list(ref["span_bounds"][-1]) == [30, 45], names
for l in ("layer_00", "layer_01"):
    for h in range(8):
        g = ref[f"{l}/head_{h:02d}"]
        assert g.attrs["layout"].decode().startswith("cp 1"), g.attrs["layout"]
        rows, pooled = g["rows"][:], g["pooled"][:]
        assert rows.shape == (len(rows_at), L) and pooled.shape == (L // pool, L // pool)
        # 1e-5: tests/tolerance.h's kF32 (fp32 probabilities, sums of at most 60 terms)
        assert np.allclose(rows.sum(1), 1, atol=1e-5), rows.sum(1)
        assert np.allclose(pooled.sum(1), pool, rtol=1e-5), pooled.sum(1)
        for i, r in enumerate(rows_at):  # causal: nothing after the row
            assert rows[i, r + 1:].max(initial=0) == 0
            assert abs(g["span_mass"][names.index("needle"), r] - rows[i, lo:hi].sum()) < 1e-5
assert len(ref["retrieval/score"]) == 16 and np.all(np.diff(ref["retrieval/needle_mass"][:]) <= 0)
for name in sys.argv[2:]:
    got = h5py.File(f"{tmp}/{name}.h5", "r")
    for l in ("layer_00", "layer_01"):
        for h in range(8):
            for d in ("rows", "pooled", "entropy", "mean_distance", "span_mass"):
                a, b = got[f"{l}/head_{h:02d}/{d}"][:], ref[f"{l}/head_{h:02d}/{d}"][:]
                assert np.allclose(a, b, atol=1e-6, rtol=1e-5), (name, l, h, d, np.abs(a - b).max())
print("h5 ok")
PY

# Packed documents: a token file with a document index, a window that crosses a boundary.
for i in 1 2 3; do printf 'Document number %d talks about apples and pears and more.\n\n' "$i"; done > docs.txt
expect_exit 0 "3 documents" "$RINGTRAIN_BIN" prepare-text docs.txt --out docs.bin --doc-separator '\n\n+'
expect_exit 0 '"summary": "attend"' mpirun -np 2 "$RINGTRAIN_BIN" attend "$cfg" "${common[@]}" --set parallel.cp=2 \
  --set data.packing=documents --checkpoint "$tmp/ckpt" --data docs.bin --sample 0 --rows 10,63 --pool 8 --out docs.h5
/usr/bin/python3 - <<'PY' || fail "document masks in docs.h5"
import h5py, numpy as np
f = h5py.File("docs.h5", "r")
d = f["documents"][:]
start = int(np.argmax(d == d[63]))
assert 0 < start < 63, d
for l in ("layer_00", "layer_01"):
    for h in range(8):
        r = f[f"{l}/head_{h:02d}/rows"][:]
        assert np.allclose(r.sum(1), 1, atol=1e-5) and r[1, :start].max() == 0, (l, h, start)
assert "document 1" in f.attrs["span_names"].decode()
PY

# Bad input: one line, exit 2.
bad() {  # pattern, args...
  local pattern=$1; shift
  expect_exit 2 "$pattern" "$RINGTRAIN_BIN" attend "$cfg" "${common[@]}" --checkpoint "$tmp/ckpt" "$@"
  [ "$(grep -c . "$OUT")" = 1 ] || fail "more than one line for '$pattern': $(cat "$OUT")"
}
bad "row 60 is out of range" --needle --length 60 --rows 60
bad "layer 2 is out of range" --needle --length 60 --layers 0,2
bad "head 8 is out of range" --needle --length 60 --heads 8
bad "pool: 7 does not divide the prompt length 60" --needle --length 60 --pool 7
bad "more than the config's train.seq_len 64" --text "$(printf 'x%.0s' $(seq 70))"
bad "exactly one prompt" --text "hello" --needle
bad "spans: 50:70 is not inside the prompt of 60 tokens" --needle --length 60 --spans 50:70

"$RINGTRAIN_SOURCE_DIR/scripts/plot-attention" "$tmp/one.h5" --out "$tmp/plots" > "$OUT" 2>&1 || { cat "$OUT"; fail "plot-attention"; }
ls "$tmp"/plots/*.png > /dev/null 2>&1 || fail "plot-attention wrote no PNG"
pass
