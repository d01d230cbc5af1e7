#!/usr/bin/env bash
# The checkpoint directory's lock: LOCK holds "host pid" of the job using it.
#  - a live owner on this host, or any owner on another host: a second job refuses (exit 2),
#    naming host, pid and the lock file, and says how to take over;
#  - RINGTRAIN_TAKE_OVER_LOCK=1 takes over a live lock (with a warning) and trains;
#  - an owner pid that is gone on this host: taken over automatically.
# Catches: two jobs writing the same checkpoints, a stale lock that blocks a restart forever.
# (A second real job refusing is in tests/checkpoint/test_checkpoint_faults.sh.)
set -u
source "$(dirname "$0")/../lib.sh"
export OPENBLAS_NUM_THREADS=1
cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
W=$(mktemp -d /tmp/rt_faults_lock.XXXXXX)
sleep 300 & OWNER=$!
trap 'kill $OWNER 2>/dev/null; rm -rf "$W"' EXIT
cd "$W" || exit 1
RUN=("$RINGTRAIN_BIN" train "$cfg" --set train.steps=2 --set checkpoint.dir=K)
host=$(hostname)
mkdir -p K

echo "$host $OWNER" > K/LOCK
expect_exit 2 "checkpoint.dir K is in use by another job \(host $host, pid $OWNER, lock file K/LOCK\).*RINGTRAIN_TAKE_OVER_LOCK=1" \
  "${RUN[@]}" --set run.out_dir=r1
[ "$(cat K/LOCK)" = "$host $OWNER" ] || fail "the refused job changed the lock file"

echo "some-other-host 1" > K/LOCK
expect_exit 2 "in use by another job \(host some-other-host, pid 1" "${RUN[@]}" --set run.out_dir=r2

echo "$host $OWNER" > K/LOCK
RINGTRAIN_TAKE_OVER_LOCK=1 expect_exit 0 "taking over the lock of $host pid $OWNER \(RINGTRAIN_TAKE_OVER_LOCK=1\)" \
  "${RUN[@]}" --set run.out_dir=r3
[ -e K/LOCK ] && fail "the lock was not released at the end"

kill $OWNER; wait $OWNER 2>/dev/null
echo "$host $OWNER" > K/LOCK
expect_exit 0 "taking over the lock of $host pid $OWNER \(that process is gone\)" "${RUN[@]}" --set run.out_dir=r4
pass
