#!/usr/bin/env bash
# run.threads against the CPUs a rank may run on: bound to one core (taskset, or mpirun's
# default binding at one rank), two configured threads warn once, naming the launcher option;
# one thread, the default count, or mpirun --bind-to none do not.
set -u
source "$(dirname "$0")/../lib.sh"
cfg="$RINGTRAIN_SOURCE_DIR/configs/test-tiny.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
[ "$(nproc --all)" -ge 2 ] || { echo "SKIP: needs 2 CPUs"; exit 77; }
command -v taskset >/dev/null || { echo "SKIP: no taskset"; exit 77; }
# run THREADS LAUNCHER... [-- EXTRA...]: one short training run (THREADS empty: the default count)
run() {
  local threads=$1; shift
  local launch=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do launch+=("$1"); shift; done
  [ $# -gt 0 ] && shift && extra=("$@")
  "${launch[@]}" "$RINGTRAIN_BIN" train "$cfg" --set train.steps=2 --set run.out_dir="$tmp/out" \
    ${threads:+--set run.threads=$threads} "${extra[@]}" 2>&1
}
warning='run.threads is 2 but this rank may run on 1 CPU'

out=$(run 2 taskset -c 0) || fail "taskset run failed: $out"
grep -q "$warning .*taskset" <<<"$out" || fail "no warning under taskset -c 0: $out"
[ "$(grep -c 'warning: run.threads' <<<"$out")" -eq 1 ] || fail "warned more than once: $out"
out=$(run 1 taskset -c 0) || fail "taskset run failed: $out"
grep -q 'warning: run.threads' <<<"$out" && fail "warned at 1 thread on 1 CPU: $out"
out=$(run "" taskset -c 0) || fail "taskset run failed: $out"
grep -q 'warning: run.threads' <<<"$out" && fail "the default thread count does not fit the affinity: $out"

# mpirun binds one rank to a core unless told otherwise; the warning names its options.
out=$(run 2 mpirun -np 1 --bind-to core) || fail "mpirun run failed: $out"
grep -q "$warning .*--bind-to none.*--map-by slot:PE=2" <<<"$out" || fail "no mpirun warning: $out"
out=$(run 2 mpirun -np 2 --bind-to core -- --set parallel.cp=2) ||
  fail "mpirun -np 2 run failed: $out"
[ "$(grep -c 'warning: run.threads' <<<"$out")" -eq 1 ] || fail "not one warning from 2 ranks: $out"
out=$(run 2 mpirun -np 1 --bind-to none) || fail "mpirun run failed: $out"
grep -q 'warning: run.threads' <<<"$out" && fail "warned with --bind-to none: $out"
pass
