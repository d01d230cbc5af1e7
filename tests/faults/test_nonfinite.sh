#!/usr/bin/env bash
# Non-finite loss or gradient, injected through the test-only hook in
# src/train/trainer.cpp: RINGTRAIN_TEST_NAN_STEP=N poisons step N on every rank (a NaN in the
# first element of the last parameter's gradient; RINGTRAIN_TEST_NAN_WHAT=loss: a NaN loss).
#  - train.on_nonfinite: stop ends the job (non-zero) with a message naming the step and the
#    first non-finite tensor, on one rank and on two (no rank left waiting);
#  - train.on_nonfinite: skip warns, skips exactly that step (no update: the next losses differ
#    from a clean run, the earlier ones do not) and trains to the end.
# Catches: NaN silently applied to the weights, a skip on one rank but not another (hang or
# diverged replicas), a message that does not say where the NaN came from.
set -u
source "$(dirname "$0")/../lib.sh"
export OPENBLAS_NUM_THREADS=1
cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
W=$(mktemp -d /tmp/rt_faults_nan.XXXXXX); trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
MPI=(mpirun --oversubscribe --bind-to none)
RUN=("$RINGTRAIN_BIN" train "$cfg" --set train.steps=6 --set log.every=1)
losses() {  # losses RUN_DIR: "step loss skipped" per training line
  python3 -c '
import json, sys
for line in open(sys.argv[1] + "/metrics.jsonl"):
    j = json.loads(line)
    if "loss" in j: print(j["step"], repr(j["loss"]), j.get("skipped", False))' "$1"
}

echo "== clean reference"
expect_exit 0 "" "${RUN[@]}" --set run.out_dir=ref

echo "== stop on a NaN gradient (1 rank)"
RINGTRAIN_TEST_NAN_STEP=3 expect_exit nonzero \
  "non-finite gradient norm at step 3 \(first non-finite gradient: lm_head\.weight\); stopping \(train\.on_nonfinite: stop\)" \
  "${RUN[@]}" --set run.out_dir=stop1
[ "$(losses stop1 | wc -l)" = 2 ] || fail "stop: expected 2 logged steps, got: $(losses stop1)"

echo "== stop on a NaN loss (2 ranks, cp 2): the whole job ends"
start=$(date +%s)
RINGTRAIN_TEST_NAN_STEP=2 RINGTRAIN_TEST_NAN_WHAT=loss expect_exit nonzero \
  "non-finite loss at step 2; stopping \(train\.on_nonfinite: stop\)" \
  timeout 60 "${MPI[@]}" -np 2 "${RUN[@]}" --set parallel.cp=2 --set train.seq_len=128 --set run.out_dir=stop2
[ $(( $(date +%s) - start )) -le 30 ] || fail "the 2-rank job took too long to stop"

echo "== skip a NaN gradient (1 rank)"
RINGTRAIN_TEST_NAN_STEP=3 expect_exit 0 \
  "warning: non-finite gradient norm at step 3 \(first non-finite gradient: lm_head\.weight\); step skipped" \
  "${RUN[@]}" --set train.on_nonfinite=skip --set run.out_dir=skip1
losses ref > ref.txt; losses skip1 > skip1.txt
[ "$(wc -l < skip1.txt)" = 6 ] || fail "skip: not every step ran: $(cat skip1.txt)"
diff <(head -2 ref.txt) <(head -2 skip1.txt) || fail "skip: steps before the NaN differ"
sed -n 3p skip1.txt | grep -q " True$" || fail "skip: step 3 not marked skipped: $(cat skip1.txt)"
[ "$(sed -n 4p ref.txt)" != "$(sed -n 4p skip1.txt)" ] || fail "skip: step 4 equals the clean run (was step 3 applied?)"
grep -Eiq "nan|null|inf" <(sed -n '4,6p' skip1.txt) && fail "skip: non-finite loss after the skipped step: $(cat skip1.txt)"

echo "== skip a NaN loss (2 ranks): both ranks skip and go on"
RINGTRAIN_TEST_NAN_STEP=2 RINGTRAIN_TEST_NAN_WHAT=loss expect_exit 0 "non-finite loss at step 2; step skipped" \
  timeout 120 "${MPI[@]}" -np 2 "${RUN[@]}" --set parallel.cp=2 --set train.seq_len=128 \
  --set train.on_nonfinite=skip --set run.out_dir=skip2
[ "$(losses skip2 | wc -l)" = 6 ] || fail "2-rank skip: not every step ran"
pass
