# Helpers for the shell tests (sourced). RINGTRAIN_BIN and RINGTRAIN_SOURCE_DIR come from ctest.
: "${RINGTRAIN_BIN:?set by ctest}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
OUT=$(mktemp)
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $(basename "$0")"; exit 0; }
# expect_exit CODE|nonzero PATTERN CMD...: runs CMD (stdout+stderr into $OUT), checks the exit
# code and that the output matches the extended regex PATTERN.
expect_exit() {
  local want=$1 pattern=$2; shift 2
  "$@" >"$OUT" 2>&1
  local rc=$?
  if [ "$want" = nonzero ]; then [ $rc -ne 0 ] || fail "exit 0, wanted non-zero: $*"; 
  else [ $rc -eq "$want" ] || { cat "$OUT" >&2; fail "exit $rc, wanted $want: $*"; }; fi
  grep -Eq -- "$pattern" "$OUT" || { cat "$OUT" >&2; fail "output does not match '$pattern': $*"; }
}
