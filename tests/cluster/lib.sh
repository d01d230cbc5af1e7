# Shared by tests/cluster/test_*.sh (sourced, not a test itself). Each test builds a small
# cluster on this machine and tears it down in its EXIT trap, also on failure.
set -u
BIN=${RINGTRAIN_BIN:?set RINGTRAIN_BIN to the ringtrain binary}
BIN=$(readlink -f "$BIN")
SRC=${RINGTRAIN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PY=/usr/bin/python3
CFG=$SRC/configs/test-tiny.yaml
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
MPI="mpirun --oversubscribe --bind-to none"
# The tiny passkey model at seq 128 split over 4 context-parallel ranks.
TINY=(--set train.seq_len=128 --set log.every=1 --set log.progress=never --set parallel.cp=4)
T0=$(date +%s)
NAME=$(basename "$0" .sh)

fail() {
  echo "FAIL: $NAME: $*"
  exit 1
}
# skip REASON: the machine forbids what the test needs (namespaces, daemons). Exit 77: ctest
# (SKIP_RETURN_CODE in tests/CMakeLists.txt) counts it as skipped and lists it in its summary.
skip() {
  echo "SKIPPED: $NAME: $*"
  exit 77
}
elapsed() { echo "$NAME: run time $(($(date +%s) - T0)) s"; }

# losses RUN_DIR : "step loss" of every training line (the last line of a step wins: a
# requeued job appends the steps after its checkpoint).
losses() {
  $PY -c '
import json, sys
last = {}
for line in open(sys.argv[1] + "/metrics.jsonl"):
    j = json.loads(line)
    if "loss" in j:
        last[j["step"]] = j["loss"]
for s in sorted(last):
    print(s, repr(last[s]))' "$1"
}

# same_losses A B : the two runs logged the same steps with bit-identical losses.
same_losses() {
  local a b
  a=$(losses "$1") && b=$(losses "$2") || fail "cannot read losses of $1 / $2"
  [ -n "$a" ] || fail "$1 logged no losses"
  [ "$a" = "$b" ] || { diff <(echo "$a") <(echo "$b") | head -20; fail "losses of $1 and $2 differ"; }
  echo "ok: $1 and $2: $(echo "$a" | wc -l) steps, identical losses (last: $(echo "$a" | tail -1))"
}

# wait_for SECONDS CMD... : polls CMD every 0.1 s.
wait_for() {
  local n=$(($1 * 10))
  shift
  for _ in $(seq "$n"); do
    "$@" 2> /dev/null && return 0
    sleep 0.1
  done
  return 1
}
