# Shared by the metrics tests (sourced): paths, a scratch directory, the tiny config and the
# Python of scripts/python-venv (TensorBoard's own reader).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${RINGTRAIN_SOURCE_DIR:?set by ctest}"
BIN=$RINGTRAIN_BIN
CFG=$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml
HERE=$RINGTRAIN_SOURCE_DIR/tests/metrics
W=$(mktemp -d)
trap 'rm -rf "$W" "$OUT"' EXIT

# venv_python: the venv's interpreter, or the test fails naming why (never a skip: without
# TensorBoard's reader the event files are unchecked).
venv_python() {
  local py
  py=$("$RINGTRAIN_SOURCE_DIR/scripts/python-venv" 2> "$W/venv.err" | tail -1) && [ -x "$py" ] || {
    cat "$W/venv.err" >&2
    fail "scripts/python-venv could not provide TensorBoard (reason above); the event files cannot be read back"
  }
  echo "$py"
}
