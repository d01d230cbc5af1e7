#!/usr/bin/env bash
# Logs that read well in a file (Slurm, `mpirun > log`):
#  - stdout redirected to a file with log.progress auto: no carriage return, no escape sequence,
#    exactly one "step N/M" line per log step, and every line printed during training (steps,
#    evals, checkpoint saves) names its step. Catches: a live \r progress line leaking into
#    files, a missing or doubled log line.
#  - the same under `mpirun -np 2 > file` (Open MPI hands ranks a pty even then);
#  - on a terminal (a pty from `script`), log.progress auto draws the live line (\r) and still
#    ends each log step with its own line, directly and under mpirun; log.progress never
#    draws none.
set -u
source "$(dirname "$0")/lib.sh"
cd "$W" || exit 1

# 7 steps, log.every 3: log steps 1 (the first), 3, 6 and 7 (the last).
ARGS=(train "$CFG" --set train.steps=7 --set log.every=3 --set log.progress=auto --set train.eval_every=3
      --set checkpoint.dir=ck --set checkpoint.every=2 --set log.tensorboard=true)
"$BIN" "${ARGS[@]}" --set run.out_dir=r1 > out.log 2> err.log || { cat out.log err.log; fail "training run"; }

grep -q $'\r' out.log && fail "carriage return in a redirected log"
grep -q $'\e' out.log && fail "escape sequence in a redirected log"
steps=$(grep -E '^step [0-9]+/7 \| loss ' out.log | sed -E 's/^step ([0-9]+)\/.*/\1/' | tr '\n' ' ')
[ "$steps" = "1 3 6 7 " ] || { cat out.log; fail "log step lines for steps '$steps', wanted '1 3 6 7 '"; }
# Every line between the end of the resolved config and the summary carries its step.
sed -n '/^---$/,/^--- run summary ---$/p' out.log | sed '1d;$d' > training.log
[ -s training.log ] || { cat out.log; fail "no training lines found"; }
grep -v 'step [0-9]' training.log && fail "the lines above carry no step"
grep -q '^checkpoint saved at step 2: ' training.log || fail "no checkpoint line with its step"
grep -q '^eval step 3 | loss ' training.log || fail "no eval line with its step"
echo "ok: $(wc -l < training.log) training lines, each with its step; log steps $steps"

echo "== mpirun > file (2 ranks): plain lines too"
# Open MPI gives each rank a pseudo-terminal for stdout even when mpirun writes to a file:
# catches `auto` trusting isatty() there.
mpirun --oversubscribe -np 2 "$BIN" "${ARGS[@]}" --set parallel.cp=2 --set run.out_dir=m1 --set checkpoint.dir=mck \
  > mpi.log 2> mpi.err || { cat mpi.log mpi.err; fail "2-rank run"; }
grep -q $'\r' mpi.log && fail "carriage return in mpirun's redirected log"
grep -q $'\e' mpi.log && fail "escape sequence in mpirun's redirected log"
[ "$(grep -cE '^step [0-9]+/7 \| loss ' mpi.log)" = 4 ] || { cat mpi.log; fail "not one line per log step under mpirun"; }

echo "== mpirun on a terminal: the live line comes back"
script -qec "mpirun --oversubscribe -np 2 '$BIN' ${ARGS[*]} --set parallel.cp=2 --set run.out_dir=m2 --set checkpoint.dir=mck2" \
  /dev/null > mpitty.log 2>&1 || { cat mpitty.log; fail "2-rank run under a pty"; }
grep -q $'\r''step [0-9]*/7 | loss .* | eta ' mpitty.log || { cat -A mpitty.log | head -40; fail "no live line under mpirun on a terminal"; }

echo "== on a terminal: live line with \\r between log steps"
script -qec "'$BIN' ${ARGS[*]} --set run.out_dir=r2 --set checkpoint.dir=ck2" /dev/null > tty.log 2>&1 ||
  { cat tty.log; fail "run under a pty"; }
grep -q $'\r''step [0-9]*/7 | loss .* | eta ' tty.log || { cat -A tty.log | head -40; fail "no live progress line on a terminal"; }
for s in 1 3 6 7; do
  grep -q "step $s/7 | loss .* | lr .*"$'\e\[K\r''\?$' tty.log || { cat -A tty.log | head -40; fail "log step $s has no line of its own"; }
done
echo "== on a terminal with log.progress never: plain lines only"
script -qec "'$BIN' ${ARGS[*]} --set run.out_dir=r3 --set checkpoint.dir=ck3 --set log.progress=never" /dev/null > never.log 2>&1 ||
  { cat never.log; fail "run under a pty"; }
# The pty turns \n into \r\n; any other \r is a live line.
tr -d '\r' < never.log | grep -q $'\e' && fail "escape sequence with log.progress never"
sed 's/\r$//' never.log | grep -q $'\r' && fail "live line with log.progress never"
pass
