#!/usr/bin/env bash
# data.format: megatron against an independent writer: Python (struct, nothing of ours) writes a
# Megatron-LM indexed dataset pair (MMIDIDX .idx + .bin, laid out as Megatron-LM's
# indexed_dataset.py defines it: one document of two sequences, an empty document, uint16 and
# int32 tokens) and the same tokens and documents as a ringtrain token file. Checks
#  - ringtrain reads the pair as the same corpus: its vocabulary (largest token + 1), and
#    packed-document training (data.packing: documents, whose samples start at document starts
#    and stop at document ends) gives the very same losses as on the token file, at 1 rank and at
#    cp 2 x dp 2 on 4 ranks, for the uint16 and the int32 pair;
#  - damaged indexes (bad magic, version, dtype code, sequence counts beyond the index, lengths
#    overrunning the .bin, a document index out of range, negative tokens) are input errors
#    naming the file: exit 2 on every rank, nothing hangs.
# Catches: off-by-one document starts, the sentinel entry taken for a document, the dtype code
# misread (uint16 tokens read as int32), header fields trusted without checks.
set -uo pipefail
bin="${RINGTRAIN_BIN:?RINGTRAIN_BIN must name the ringtrain binary}"
src="${RINGTRAIN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
tmp="$(mktemp -d)"
trap '[[ -n "${KEEP_TMP:-}" ]] || rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
source "$src/scripts/lib/common.sh"
rt_mpi_env
export OPENBLAS_NUM_THREADS=1

python3 - "$tmp" <<'PYEOF' || fail "writing the pairs"
import random, struct, sys
d = sys.argv[1]
rng = random.Random(7)
# Documents of 1..3 sequences each; document 3 is empty (two equal entries in the index).
docs = [[[rng.randrange(300) for _ in range(rng.randrange(20, 90))] for _ in range(rng.randrange(1, 4))]
        for _ in range(12)]
docs[3] = []
docs[0] = [[rng.randrange(300) for _ in range(50)], [rng.randrange(300) for _ in range(40)]]

def megatron(prefix, code, fmt, size, docs, magic=b"MMIDIDX\x00\x00", version=1, extra_seqs=0, bin_cut=0,
             doc_shift=0, tokens_override=None):
    seqs = [s for doc in docs for s in doc]
    flat = [t for s in seqs for t in s] if tokens_override is None else tokens_override
    lengths, pointers, at = [], [], 0
    for s in seqs:
        lengths.append(len(s)); pointers.append(at); at += len(s) * size
    doc_idx, n = [0], 0
    for doc in docs:
        n += len(doc); doc_idx.append(n)
    doc_idx[-1] += doc_shift
    with open(prefix + ".idx", "wb") as f:
        f.write(magic + struct.pack("<Q", version) + struct.pack("<B", code))
        f.write(struct.pack("<Q", len(seqs) + extra_seqs) + struct.pack("<Q", len(doc_idx)))
        f.write(struct.pack(f"<{len(lengths)}i", *lengths))
        f.write(struct.pack(f"<{len(pointers)}q", *pointers))
        f.write(struct.pack(f"<{len(doc_idx)}q", *doc_idx))
    body = struct.pack(f"<{len(flat)}{fmt}", *flat)
    with open(prefix + ".bin", "wb") as f:
        f.write(body[:len(body) - bin_cut])

def ringtrain(path, docs):
    flat, starts = [], []
    for doc in docs:
        toks = [t for s in doc for t in s]
        if toks:
            starts.append(len(flat)); flat.extend(toks)
    body = struct.pack(f"<{len(flat)}H", *flat)
    with open(path, "wb") as f:
        f.write(b"RTTOKENS" + struct.pack("<IIQIIQ", 2, 2, len(flat), max(flat) + 1, 0, len(starts)) + bytes(24))
        f.write(body + bytes(-(64 + len(body)) % 8) + struct.pack(f"<{len(starts)}Q", *starts))
    return len(flat), max(flat) + 1

n, vocab = ringtrain(d + "/ref.bin", docs)
megatron(d + "/u16", 8, "H", 2, docs)
megatron(d + "/i32", 4, "i", 4, docs)
megatron(d + "/bad_magic", 8, "H", 2, docs, magic=b"MMIDIDY\x00\x00")
megatron(d + "/bad_version", 8, "H", 2, docs, version=2)
megatron(d + "/bad_dtype", 7, "f", 4, docs)
megatron(d + "/unknown_dtype", 99, "H", 2, docs)
megatron(d + "/seq_overrun", 8, "H", 2, docs, extra_seqs=1000)
megatron(d + "/bin_short", 8, "H", 2, docs, bin_cut=6)
megatron(d + "/doc_overrun", 8, "H", 2, docs, doc_shift=5)
flat = [t for doc in docs for s in doc for t in s]
megatron(d + "/negative", 4, "i", 4, docs, tokens_override=flat[:10] + [-3] + flat[11:])
open(d + "/expect", "w").write(f"{n} {vocab}\n")
PYEOF
read -r n vocab < "$tmp/expect"

train() {  # train NP OUT DATA FORMAT [--set ...]: a few packed-document steps
  local np=$1 out=$2 data=$3 format=$4; shift 4
  mpirun --oversubscribe --bind-to none -np "$np" "$bin" train "$src/configs/test-tiny.yaml" --set data.task=text \
    --set data.train="$data" --set data.format="$format" --set data.packing=documents --set model.vocab_size=320 \
    --set train.seq_len=64 --set train.micro_batch=2 --set train.steps=4 --set train.eval_batches=1 \
    --set log.every=1 --set run.out_dir="$out" --set log.progress=never --set checkpoint.dir= "$@"
}
losses() { grep -o '"loss": [-0-9.e]*' "$1/metrics.jsonl"; }

for layout in "1" "4 --set parallel.cp=2 --set parallel.dp=2"; do
  set -- $layout
  np=$1; shift
  train "$np" "$tmp/ref$np" "$tmp/ref.bin" ringtrain "$@" > "$tmp/ref$np.log" 2>&1 || { cat "$tmp/ref$np.log"; fail "training on the token file"; }
  for kind in u16 i32; do
    train "$np" "$tmp/$kind$np" "$tmp/$kind" megatron "$@" > "$tmp/$kind$np.log" 2>&1 ||
      { cat "$tmp/$kind$np.log"; fail "training on the $kind Megatron pair ($np ranks)"; }
    if [[ $np == 1 ]]; then  # the vocabulary is the largest token + 1: one less is refused
      train 1 "$tmp/v$kind" "$tmp/$kind" megatron --set model.vocab_size=$((vocab - 1)) > "$tmp/v$kind.log" 2>&1
      grep -q "vocabulary mismatch.*$tmp/$kind.*token ids up to $((vocab - 1))" "$tmp/v$kind.log" ||
        { cat "$tmp/v$kind.log"; fail "$kind: vocabulary $vocab not found"; }
    fi
    [[ -n "$(losses "$tmp/ref$np")" && "$(losses "$tmp/ref$np")" == "$(losses "$tmp/$kind$np")" ]] ||
      { paste <(losses "$tmp/ref$np") <(losses "$tmp/$kind$np"); fail "$kind ($np ranks): losses differ from the token file's"; }
  done
  echo "ok: $np rank(s): the uint16 and int32 pairs train exactly as the token file ($n tokens, vocab $vocab, 11 documents)"
done

check_error() {  # check_error NAME PATTERN: exit 2, one message naming the file and the problem
  local name=$1 pattern=$2
  timeout 120 bash -c "$(declare -f train); train 2 '$tmp/e_$name' '$tmp/$name' megatron --set parallel.cp=2" \
    > "$tmp/$name.log" 2>&1
  local rc=$?
  [[ $rc -eq 2 ]] || { cat "$tmp/$name.log"; fail "$name: exit $rc, not 2"; }
  grep -q "$tmp/$name\.\(idx\|bin\).*$pattern" "$tmp/$name.log" || { cat "$tmp/$name.log"; fail "$name: message"; }
  echo "ok: $name: exit 2, $(grep -m1 'ringtrain: error' "$tmp/$name.log")"
}
export bin src
check_error bad_magic "wrong magic"
check_error bad_version "version 2"
check_error bad_dtype "dtype code 7 (float32)"
check_error unknown_dtype "dtype code 99"
check_error seq_overrun "sequences and"
check_error bin_short "has $((2 * n - 6)) bytes"
check_error doc_overrun "document entry"
check_error negative "is negative"
train 1 "$tmp/missing" "$tmp/nothere" megatron > "$tmp/missing.log" 2>&1
[[ $? -eq 2 ]] && grep -q "nothere.bin does not exist" "$tmp/missing.log" || { cat "$tmp/missing.log"; fail "missing pair"; }
echo "ok: a missing pair: $(grep -m1 'ringtrain: error' "$tmp/missing.log")"
echo "PASS"
