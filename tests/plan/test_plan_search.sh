#!/usr/bin/env bash
# `ringtrain plan --search` against real CPU runs and its own promises:
#  - ranking: for a small model on 4 ranks, the layout the search ranks first is among the two
#    fastest of a measured sweep (short trainings under mpirun of the search's first and of
#    the layouts it ranks at a quarter, a half, three quarters of its list and last; each
#    timed twice, interleaved, the best step of either run). Catches a step-time model whose
#    ranking says nothing about real steps (a cost charged to the wrong layouts, an overlap the
#    host does not have);
#  - fits: every layout the search proposes fits the memory it was given, and a capacity that
#    leaves some out proposes fewer than it checked. Catches a search that skips the memory test;
#  - bad input, one line and exit 2: nothing fits (naming the smallest memory found), a GPU
#    count no layout of the model divides, a model that fits nowhere, --json without --search.
set -u
source "$(dirname "$0")/../lib.sh"

src="$RINGTRAIN_SOURCE_DIR"
eight="$src/configs/llama3-8b-128k.yaml"
work=$(mktemp -d)
trap 'rm -rf "$work" "$OUT"' EXIT
cfg="$work/small.yaml"
# 8 heads / 4 kv heads: tp 1, 2, 4 and every cp mode at 4 ranks; 4 sequences of 512 per step.
cat > "$cfg" <<YAML
device: cpu
run: {name: plan-search, out_dir: $work/run, seed: 1, threads: 1}
model: {vocab_size: 256, d_model: 128, n_layers: 2, n_heads: 8, n_kv_heads: 4, d_ff: 384}
train: {seq_len: 512, micro_batch: 1, grad_accum: 1, steps: 6, warmup_steps: 1, eval_every: 0, eval_batches: 1}
data: {task: passkey}
checkpoint: {dir: ""}
log: {every: 1, progress: never, tensorboard: false}
YAML

# --- ranking against a measured sweep ---
expect_exit 0 '"fits": \[' "$RINGTRAIN_BIN" plan "$cfg" --gpus 4 --gpu cpu --search --json
cp "$OUT" "$work/search.json"
python3 - "$work/search.json" > "$work/sweep.txt" <<'PY' || fail "could not read the search's JSON"
import json, sys
fits = json.load(open(sys.argv[1]))["fits"]
n = len(fits)
for i in sorted({0, n // 4, n // 2, 3 * n // 4, n - 1}):
    f = fits[i]
    sets = [f"parallel.{k}={str(f[k]).lower()}" for k in ("dp", "cp", "tp", "cp_mode", "ulysses_degree",
                                                         "sequence_parallel", "zero")]
    sets += [f"train.{k}={str(f[k]).lower()}" for k in ("recompute", "micro_batch", "grad_accum")]
    print(i + 1, f["step_s"], " ".join("--set " + s for s in sets))
PY
for round in 1 2; do
  while read -r rank predicted sets; do
    out="$work/run-$rank-$round"
    # shellcheck disable=SC2086
    mpirun --oversubscribe -np 4 "$RINGTRAIN_BIN" train "$cfg" $sets --set run.out_dir="$out" < /dev/null > "$out.log" 2>&1 ||
      { cat "$out.log" >&2; fail "training layout #$rank ($predicted s predicted) failed: $sets"; }
  done < "$work/sweep.txt"
done
python3 - "$work" <<'PY' || fail "the search's first is not among the two fastest measured layouts"
import json, os, sys
work = sys.argv[1]
rows = []
for line in open(os.path.join(work, "sweep.txt")):
    rank, predicted, sets = line.split(" ", 2)
    best = None
    for rnd in (1, 2):
        for l in open(os.path.join(work, f"run-{rank}-{rnd}", "metrics.jsonl")):
            r = json.loads(l)
            if r.get("step", 0) >= 2 and "tokens_per_s" in r and "loss" in r:  # step 1 sizes the buffers
                best = r["tokens_per_s"] if best is None else max(best, r["tokens_per_s"])
    rows.append((int(rank), float(predicted), 4 * 512 / best, sets.replace("--set ", "").strip()))
measured = sorted(rows, key=lambda r: r[2])
for r in rows:
    print(f"[ info ] search #{r[0]:<3} predicted {r[1]:.4f} s  measured {r[2]:.4f} s  (measured rank "
          f"{measured.index(r) + 1})  {r[3]}")
sys.exit(0 if measured.index(rows[0]) < 2 else 1)
PY

# --- only layouts that fit are proposed ---
expect_exit 0 '"fits": \[' "$RINGTRAIN_BIN" plan "$cfg" --gpus 4 --gpu cpu --search --json --memory-gib 0.015
python3 - "$OUT" <<'PY' || fail "the search proposed a layout over its capacity, or left none out: $(head -c 400 "$OUT")"
import json, sys
s = json.load(open(sys.argv[1]))
cap = s["capacity_bytes"]
assert 0 < len(s["fits"]) < s["valid"], (len(s["fits"]), s["valid"])
assert all(f["memory_bytes"] <= cap for f in s["fits"])
PY
expect_exit 0 "^\| 1 \|" "$RINGTRAIN_BIN" plan "$eight" --gpus 64 --search --top 1000
python3 - "$OUT" <<'PY' || fail "a proposed 8B layout does not fit an H100: $(cat "$OUT")"
import sys
rows = [l for l in open(sys.argv[1]) if l.startswith("| ") and l.split("|")[1].strip().isdigit()]
assert rows
for line in rows:
    assert float(line.split("|")[10]) <= 80e9 / 2**30, line
PY

# --- bad input: one line, exit 2 ---
expect_exit 2 "nothing fits on 4 cpu ranks of 0.00 GiB: the smallest memory per rank of the [0-9]+ layouts is" \
  "$RINGTRAIN_BIN" plan "$cfg" --gpus 4 --gpu cpu --search --memory-gib 0.001
expect_exit 2 "nothing fits on 1 h100 GPUs.*it would need [0-9.]+ GiB" "$RINGTRAIN_BIN" plan "$eight" --gpus 1 --search
expect_exit 2 "no layout of 100 GPUs is valid" "$RINGTRAIN_BIN" plan "$eight" --gpus 100 --search
expect_exit 2 "unknown GPU kind 'h300'" "$RINGTRAIN_BIN" plan "$eight" --gpus 64 --search --gpu h300
expect_exit 2 "--json is the output of --search" "$RINGTRAIN_BIN" plan "$eight" --gpus 64 --json
for args in "$cfg --gpus 4 --gpu cpu --search --memory-gib 0.001" "$eight --gpus 1 --search" "$eight --gpus 100 --search"; do
  # shellcheck disable=SC2086
  "$RINGTRAIN_BIN" plan $args > "$OUT" 2>&1
  [ "$(wc -l < "$OUT")" = 1 ] || fail "not one line: $(cat "$OUT")"
done
pass
