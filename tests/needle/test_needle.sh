#!/usr/bin/env bash
# `ringtrain eval --needle`. Trains a small passkey model for a short while (cp=2 on
# 2 ranks, seq_len 64, a 1-digit key anywhere in synthetic filler: ~150 steps reach ~100%),
# then sweeps lengths x depths from its checkpoint and checks:
#  - with cross-rank attention, every cell is high, including those whose needle lies wholly
#    on the other cp rank than the question;
#  - with --no-cross-rank the same far cells drop to about chance (1 in 10), while cells whose
#    needle is on the question's own rank stay found: the control really cuts cross-rank
#    attention and nothing else. Catches a sweep that does not shard the prompt in the zigzag
#    layout, or a model that never sees other ranks' keys;
#  - cp=1, cp=2 ring, cp=2 Ulysses and cp=4 ring give the same accuracy and the same greedy
#    answers (fingerprint) cell by cell. Catches layout-dependent prompts or positions;
#  - bad input: a length not divisible by 2*cp, a depth outside [0, 1] (exit 2); a length
#    beyond the trained context (a warning naming it, exit 0);
#  - needle.jsonl holds the cells and summary, and scripts/plot-needle draws it.
set -u
source "$(dirname "$0")/../lib.sh"
cfg="$RINGTRAIN_SOURCE_DIR/configs/demo.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"  # no data/corpus here: the haystack is synthetic filler, as in training
common=(--set train.seq_len=64 --set data.passkey_digits=1 --set data.passkey_min_depth=0
  --set data.passkey_max_depth=1 --set checkpoint.dir="$tmp/ckpt")
sweep=(--needle --lengths 32,64 --depths 0,0.25,0.5,0.75,1 --samples 20)

expect_exit 0 "accuracy" mpirun -np 2 "$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=2 "${common[@]}" \
  --set train.steps=150 --set train.eval_every=0 --set log.every=50 --set run.out_dir="$tmp/train"
grep -E '"accuracy"' "$OUT" | tail -1

run_sweep() {  # name, ranks, extra args...
  local name=$1 np=$2; shift 2
  expect_exit 0 '"summary": "needle"' mpirun -np "$np" "$RINGTRAIN_BIN" eval "$cfg" "${common[@]}" \
    --set run.out_dir="$tmp/$name" "${sweep[@]}" "$@"
  [ "$(grep -c '"length"' "$tmp/$name/needle.jsonl")" = 10 ] || fail "$name: needle.jsonl lacks its 10 cells"
  grep -q '"summary": "needle"' "$tmp/$name/needle.jsonl" || fail "$name: needle.jsonl lacks the summary"
}
run_sweep cp2 2 --set parallel.cp=2
run_sweep cp2-nocross 2 --set parallel.cp=2 --no-cross-rank
run_sweep cp1 1 --set parallel.cp=1
run_sweep cp2-ulysses 2 --set parallel.cp=2 --set parallel.cp_mode=ulysses
run_sweep cp4 4 --set parallel.cp=4

python3 - "$tmp" <<'PY' || fail "needle sweep checks (above)"
import json, sys
tmp = sys.argv[1]
def cells(name):
    out = {}
    for line in open(f"{tmp}/{name}/needle.jsonl"):
        r = json.loads(line)
        if "length" in r:
            out[(r["length"], r["depth"])] = r
    return out
cross, nocross = cells("cp2"), cells("cp2-nocross")
bad = []
far = [k for k, r in cross.items() if r["needle_on_answer_rank"] == 0]
near = [k for k, r in cross.items() if r["needle_on_answer_rank"] == r["samples"]]
print(f"cells with the needle on the other rank: {sorted(far)}; on the question's rank: {sorted(near)}")
if len(far) < 3: bad.append(f"only {len(far)} cells with the needle wholly on the other rank")
for k, r in sorted(cross.items()):
    print(f"length {k[0]} depth {k[1]}: cross {r['accuracy']:.2f}  no-cross {nocross[k]['accuracy']:.2f}")
    if r["accuracy"] < 0.9: bad.append(f"{k}: accuracy {r['accuracy']} with cross-rank attention, want >= 0.9")
for k in far:
    if nocross[k]["accuracy"] > 0.3: bad.append(f"{k}: accuracy {nocross[k]['accuracy']} without cross-rank attention, want about chance (<= 0.3)")
for k in near:
    if nocross[k]["accuracy"] < 0.9: bad.append(f"{k}: needle on the question's rank, yet accuracy {nocross[k]['accuracy']} without cross-rank attention")
for name in ("cp1", "cp2-ulysses", "cp4"):
    other = cells(name)
    for k, r in sorted(cross.items()):
        o = other[k]
        if (o["accuracy"], o["answers"]) != (r["accuracy"], r["answers"]):
            bad.append(f"{name} {k}: accuracy {o['accuracy']} answers {o['answers']} vs cp2 ring {r['accuracy']} {r['answers']}")
for b in bad: print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

# Bad input.
expect_exit 2 "not a positive multiple of 2 \* parallel.cp = 4" mpirun -np 2 "$RINGTRAIN_BIN" eval "$cfg" \
  --set parallel.cp=2 "${common[@]}" --set run.out_dir="$tmp/bad" --needle --lengths 30
expect_exit 2 "depths.*\[0, 1\].*1\.5|1\.5 is outside \[0, 1\]" mpirun -np 2 "$RINGTRAIN_BIN" eval "$cfg" \
  --set parallel.cp=2 "${common[@]}" --set run.out_dir="$tmp/bad" --needle --depths 0,1.5
expect_exit 0 "length 128 is beyond the model's trained context \(train.seq_len 64" "$RINGTRAIN_BIN" eval "$cfg" \
  --set parallel.cp=1 "${common[@]}" --set run.out_dir="$tmp/long" --needle --lengths 128 --depths 0.5 --samples 4
grep -q '"summary": "needle"' "$OUT" || fail "no summary after the beyond-context warning"

# The heatmap (matplotlib from Debian's python3-matplotlib).
if python3 -c 'import matplotlib' 2>/dev/null; then
  expect_exit 0 "2 lengths x 5 depths" "$RINGTRAIN_SOURCE_DIR/scripts/plot-needle" "$tmp/cp2" --out "$tmp/cross.png"
  [ -s "$tmp/cross.png" ] || fail "plot-needle wrote no PNG"
else
  echo "matplotlib missing: plot-needle not checked"
fi
pass
