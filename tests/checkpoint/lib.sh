# Shared by tests/checkpoint/test_checkpoint_*.sh (sourced, not a test itself).
set -u
BIN=${RINGTRAIN_BIN:?set RINGTRAIN_BIN to the ringtrain binary}
SRC=${RINGTRAIN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PY=/usr/bin/python3
TOOL="$PY $SRC/tests/checkpoint/ckpt_tool.py"
CFG=$SRC/configs/test-tiny.yaml
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
MPI="mpirun --oversubscribe --bind-to none"
W=$(mktemp -d /tmp/rt_ckpt_test.XXXXXX)
trap 'rm -rf "$W"' EXIT
TINY=(--set train.seq_len=128 --set log.every=1 --set log.progress=never)

fail() {
  echo "FAIL: $*"
  exit 1
}

# expect_error CODE PATTERN CMD... : CMD exits with CODE and its stderr matches PATTERN.
expect_error() {
  local code=$1 pattern=$2
  shift 2
  "$@" > "$W/out.txt" 2> "$W/err.txt"
  local rc=$?
  [ "$rc" = "$code" ] || { cat "$W/out.txt" "$W/err.txt"; fail "exit $rc (expected $code): $*"; }
  grep -q -- "$pattern" "$W/err.txt" || { cat "$W/err.txt"; fail "stderr lacks '$pattern': $*"; }
  echo "ok: exit $code, '$(grep -m1 -- "$pattern" "$W/err.txt" | sed 's/^.*error: //' | cut -c1-150)'"
}

# losses RUN_DIR FIRST_STEP : "step loss" of every training line from FIRST_STEP on.
losses() {
  $PY -c '
import json, sys
for line in open(sys.argv[1] + "/metrics.jsonl"):
    j = json.loads(line)
    if "loss" in j and j["step"] >= int(sys.argv[2]):
        print(j["step"], repr(j["loss"]))' "$1" "$2"
}
