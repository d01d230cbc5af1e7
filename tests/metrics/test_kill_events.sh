#!/usr/bin/env bash
# A run killed with SIGKILL in the middle of training: its event file is still readable by
# TensorBoard up to the last logged step (every metrics.jsonl step is there, same values),
# because each log step's record is flushed before metrics.jsonl is written. And a record cut
# in half (a kill inside a write) costs only that record: the reader keeps every one before.
# Catches: buffered event writes lost on a crash, a writer that rewrites or reorders records.
set -u
source "$(dirname "$0")/lib.sh"
PY=$(venv_python) || exit 1
cd "$W" || exit 1

"$BIN" train "$CFG" --set train.seq_len=128 --set train.steps=1000000 --set log.every=1 --set log.tensorboard=true \
  --set run.out_dir=r > r.log 2>&1 &
pid=$!
train_lines() { if [ -f r/metrics.jsonl ]; then grep -c '"loss"' r/metrics.jsonl; else echo 0; fi; }
for _ in $(seq 3000); do  # up to 60 s
  [ "$(train_lines)" -ge 8 ] && break
  kill -0 $pid 2> /dev/null || { cat r.log; fail "the run ended before it was killed"; }
  sleep 0.02
done
[ "$(train_lines)" -ge 8 ] || { kill -9 $pid; cat r.log; fail "no 8 log steps within 60 s"; }
kill -9 $pid
wait $pid 2> /dev/null
last=$(grep '"loss"' r/metrics.jsonl | tail -1 | sed -E 's/^\{"step": ([0-9]+),.*/\1/')
grep -q '^{"summary"' r.log && fail "a killed run printed a summary"
echo "killed after step $last was logged"
"$PY" "$HERE/tb_check.py" r --min-steps 8 || fail "event file of the killed run"

echo "== the last record cut in half"
ev=$(ls r/tb/events.out.tfevents.*)
size=$(stat -c %s "$ev")
truncate -s $((size - 9)) "$ev"
"$PY" "$HERE/tb_check.py" r --min-steps 7 --upto $((last - 1)) || fail "records before a cut one are lost"
pass
