#!/usr/bin/env bash
# Checkpoints against faults:
#  - a rank killed with SIGKILL in the middle of a save: the previous checkpoint stays loadable,
#    resume: auto picks it (and takes over the dead job's lock), and the resumed run's losses
#    equal a run that was never killed;
#  - SIGUSR1 to mpirun (forwarded to the ranks) and SIGTERM to the ranks (as SLURM sends it):
#    the current step finishes, a checkpoint is saved, exit 0; resume: auto continues from it;
#  - a second job on the same checkpoint.dir refuses to start (lock file with host and pid).
source "$(dirname "$0")/lib.sh"
cd "$W" || exit 1
RUN=("$BIN" train "$CFG" "${TINY[@]}" --set parallel.cp=2)

# wait_for CMD... : polls CMD every 20 ms for up to 60 s.
wait_for() {
  for _ in $(seq 3000); do
    "$@" 2> /dev/null && return 0
    sleep 0.02
  done
  return 1
}
partial_at_3_or_later() { compgen -G "K/step-0000[0-9][3-9].h5.partial" > /dev/null; }

echo "== reference: 12 steps, never killed"
$MPI -np 2 "${RUN[@]}" --set train.steps=12 --set run.out_dir=rR > ref.log 2>&1 || { cat ref.log; fail "reference run"; }

echo "== SIGKILL of one rank during a save"
$MPI -np 2 "${RUN[@]}" --set train.steps=12 --set checkpoint.dir=K --set checkpoint.every=1 \
  --set run.out_dir=rK > killed.log 2>&1 &
MP=$!
wait_for partial_at_3_or_later || { kill -9 $MP; cat killed.log; fail "no save seen"; }
victim=$(pgrep -P $MP | head -1)
kill -9 "$victim"
wait $MP && fail "the killed job exited 0"
partial=$(compgen -G "K/*.partial" | head -1)
echo "killed rank pid $victim; left: $(cd K && ls | tr '\n' ' ')"
[ -n "$partial" ] || echo "note: the save had completed before the kill landed"
$MPI -np 2 "${RUN[@]}" --set train.steps=12 --set checkpoint.dir=K --set checkpoint.every=1 \
  --set checkpoint.resume=auto --set run.out_dir=rK2 > resumed.log 2>&1 || { cat resumed.log; fail "resume after kill"; }
grep -q "taking over the lock of .* (that process is gone)" resumed.log || { cat resumed.log; fail "stale lock not taken over"; }
from=$(sed -n 's/^loaded checkpoint K\/step-0*\([0-9]*\)\.h5.*/\1/p' resumed.log)
[ -n "$from" ] || { cat resumed.log; fail "resume auto loaded nothing"; }
diff <(losses rR $((from + 1))) <(losses rK2 $((from + 1))) || fail "losses after the kill differ from the reference"
compgen -G "K/*.partial" > /dev/null && fail "partial file not cleaned"
echo "ok: resumed from step $from with identical losses; partial cleaned"

echo "== SIGUSR1 to mpirun: finish the step, save, exit 0"
LONG=("${RUN[@]}" --set train.steps=100000 --set checkpoint.dir=G --set checkpoint.resume=auto --set log.every=1)
$MPI -np 2 "${LONG[@]}" --set run.out_dir=rG > sig1.log 2>&1 &
MP=$!
wait_for grep -q '"step": 3,' rG/metrics.jsonl || { kill -9 $MP; fail "run did not start"; }
kill -USR1 $MP
wait $MP || { cat sig1.log; fail "exit code $? after SIGUSR1"; }
grep -q "stopping on signal 10 after step" sig1.log || { cat sig1.log; fail "no stop message"; }
s1=$(sed -n 's/^stopping on signal 10 after step \([0-9]*\).*/\1/p' sig1.log)
[ -f G/$(printf 'step-%06d.h5' "$s1") ] && [ ! -e G/LOCK ] || fail "no checkpoint at step $s1 or lock left"
echo "ok: stopped after step $s1 with a checkpoint"

echo "== the resumed job holds the lock; a second job on the same dir refuses"
$MPI -np 2 "${LONG[@]}" --set run.out_dir=rG2 > sig2.log 2>&1 &
MP=$!
wait_for grep -q "^step " sig2.log || { kill -9 $MP; cat sig2.log; fail "resumed run did not start"; }
grep -q "loaded checkpoint G/step-0*$s1.h5" sig2.log || { kill -9 $MP; fail "did not resume from $s1"; }
expect_error 2 "checkpoint.dir G is in use by another job (host .*, pid [0-9]*, lock file G/LOCK)" \
  "$BIN" train "$CFG" "${TINY[@]}" --set checkpoint.dir=G --set run.out_dir=rX

echo "== SIGTERM to the ranks (as SLURM does): save, exit 0"
kill -TERM $(pgrep -P $MP)
wait $MP || { cat sig2.log; fail "exit code $? after SIGTERM"; }
grep -q "stopping on signal 15 after step" sig2.log || { cat sig2.log; fail "no stop message"; }
s2=$(sed -n 's/^stopping on signal 15 after step \([0-9]*\).*/\1/p' sig2.log)
[ "$(cat G/latest)" = "$(printf 'step-%06d.h5' "$s2")" ] && [ "$s2" -gt "$s1" ] || fail "latest $(cat G/latest), step $s2"
echo "ok: resumed at $s1, stopped after step $s2 with a checkpoint"
echo "PASS"
