#!/usr/bin/env bash
# A rank killed with SIGKILL in the middle of a training step (not a save):
#  - every other rank ends within 10 s, mpirun exits non-zero and names the lost rank;
#  - nothing is lost: `checkpoint.resume: auto` continues from the last checkpoint and its
#    losses equal, bit for bit, those of a run that was never killed (metrics.jsonl).
# Catches: survivors hanging in a ring exchange or all-reduce with a dead peer, a checkpoint
# left unloadable by the crash, resume state (step, data position, optimizer) not restored.
set -u
source "$(dirname "$0")/../lib.sh"
export OPENBLAS_NUM_THREADS=1
cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
W=$(mktemp -d /tmp/rt_faults_kill.XXXXXX); trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
MPI=(mpirun --oversubscribe --bind-to none)
RUN=("$RINGTRAIN_BIN" train "$cfg" --set parallel.cp=2 --set train.seq_len=256 --set train.steps=20
  --set log.every=1 --set log.progress=never)
losses() {  # losses RUN_DIR FIRST_STEP
  python3 -c '
import json, sys
for line in open(sys.argv[1] + "/metrics.jsonl"):
    j = json.loads(line)
    if "loss" in j and j["step"] >= int(sys.argv[2]): print(j["step"], repr(j["loss"]))' "$1" "$2"
}
wait_for() { for _ in $(seq 3000); do "$@" 2>/dev/null && return 0; sleep 0.02; done; return 1; }
# Step 5 logged: the checkpoint of step 4 is complete and the next save is at step 8, three
# steps (about a second at seq_len 256) away.
past_step_5() { grep -q '"step": 5,' rk/metrics.jsonl; }

echo "== reference: never killed"
"${MPI[@]}" -np 2 "${RUN[@]}" --set run.out_dir=ref > ref.log 2>&1 || { cat ref.log; fail "reference run"; }

echo "== SIGKILL of one rank between checkpoints"
"${MPI[@]}" -np 2 "${RUN[@]}" --set checkpoint.dir=K --set checkpoint.every=4 --set run.out_dir=rk > killed.log 2>&1 &
MP=$!
wait_for past_step_5 || { kill -9 $MP; cat killed.log; fail "the run never reached step 5"; }
ranks=($(pgrep -P $MP))
[ ${#ranks[@]} = 2 ] || { kill -9 $MP; fail "expected 2 rank processes under mpirun, found ${#ranks[@]}"; }
compgen -G "K/*.partial" >/dev/null && echo "note: a save was in progress at the kill (machine slow?)"
kill -9 "${ranks[1]}"
killed_at=$(date +%s.%N)
wait $MP && fail "the job exited 0 after a rank was killed"
took=$(python3 -c "import time; print(round(time.time() - $killed_at, 2))")
echo "mpirun ended ${took}s after the kill"
python3 -c "import sys; sys.exit(0 if $took <= 10 else 1)" || { cat killed.log; fail "the job took ${took}s (> 10 s) to end"; }
# The survivor must be gone (or a zombie nobody has reaped yet) within 10 s of the kill.
running() { [ -e /proc/$1 ] && [ "$(awk '{print $3}' /proc/$1/stat 2>/dev/null)" != Z ]; }
for _ in $(seq 100); do running "${ranks[0]}" || break; sleep 0.1; done
python3 -c "import time, sys; sys.exit(0 if time.time() - $killed_at <= 10.5 else 1)" && ! running "${ranks[0]}" ||
  fail "the surviving rank ${ranks[0]} is still running 10 s after the kill"
grep -Eq "rank [0-9]+ .*(signal 9|Killed)|process rank [0-9]+ " killed.log ||
  { cat killed.log; fail "no message naming the lost rank"; }
grep -E "rank [0-9]+ " killed.log | head -1

echo "== resume: auto continues from the last checkpoint with the same losses"
"${MPI[@]}" -np 2 "${RUN[@]}" --set checkpoint.dir=K --set checkpoint.every=4 --set checkpoint.resume=auto \
  --set run.out_dir=rk2 > resumed.log 2>&1 || { cat resumed.log; fail "resume after the kill"; }
from=$(sed -n 's/^loaded checkpoint K\/step-0*\([0-9]*\)\.h5.*/\1/p' resumed.log)
[ -n "$from" ] && [ "$from" -ge 4 ] || { cat resumed.log; fail "resume auto loaded '${from}'"; }
diff <(losses ref $((from + 1))) <(losses rk2 $((from + 1))) || fail "losses after the resume differ from the reference"
[ "$(losses rk2 $((from + 1)) | wc -l)" = $((20 - from)) ] || fail "the resumed run did not train to step 20"
echo "ok: resumed from step $from, $((20 - from)) steps identical to the never-killed run"
pass
