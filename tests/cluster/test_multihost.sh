#!/usr/bin/env bash
# Multi-host mpirun from a hostfile, with real hosts made on this machine: network
# namespaces with their own hostnames, joined by veth pairs on a bridge in a "switch"
# namespace; the head host (where mpirun runs) is a namespace too. Open MPI starts its orted on
# each host through plm_rsh_agent = a small script that enters that host's namespaces (what ssh
# does on a real cluster) and talks TCP only on the test network. Nothing outside the test's
# own namespaces gets an address. Checks:
#  - each host's ranks get local ranks 0..k-1 and the GPU of that local rank (--dry-run), the
#    bug being a local rank taken from the global rank (host 2 would take GPUs 2,3 of 0..1);
#  - cp=4 over 2 hosts x 2 ranks (ring traffic over TCP between hosts) gives the same losses
#    as 4 ranks on one host;
#  - killing one host's ranks ends the whole job within 10 s, non-zero, naming the lost rank
#    (the bug: survivors hang forever in a collective).
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip > /dev/null && command -v unshare > /dev/null || skip "needs ip (iproute2) and unshare (util-linux)"
W=$(mktemp -d /tmp/rt_multihost.XXXXXX)
P=rt$$              # namespace and link prefix: unique per test process
NET=10.250.0        # the test network, only inside our namespaces
HOSTS=(node1 node2) # ranks run here; mpirun runs on "head"
NS=()

teardown() {
  local rc=$?
  for ns in "${NS[@]}"; do
    # Every process left in a namespace (orted, ranks), then the namespace (its links go with it).
    for pid in $(ip netns pids "$ns" 2> /dev/null); do kill -9 "$pid" 2> /dev/null; done
    ip netns del "$ns" 2> /dev/null
  done
  for l in $(ip -o link show 2> /dev/null | sed -n "s/^[0-9]*: \(${P}[a-z0-9]*\)[@:].*/\1/p"); do ip link del "$l" 2> /dev/null; done
  rm -rf "$W"
  elapsed
  exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

ip netns add "$P-sw" 2> "$W/err" || skip "the machine forbids network namespaces ($(cat "$W/err"))"
NS+=("$P-sw")
unshare --uts true 2> "$W/err" || skip "the machine forbids UTS namespaces ($(cat "$W/err"))"
ip -n "$P-sw" link add br0 type bridge && ip -n "$P-sw" link set br0 up && ip -n "$P-sw" link set lo up ||
  fail "cannot make the bridge"
# host NAME INDEX: namespace $P-NAME, eth0 = 10.250.0.INDEX on the bridge.
add_host() {
  local ns=$P-$1 addr=$NET.$2
  ip netns add "$ns" || fail "netns $ns"
  NS+=("$ns")
  ip link add "${P}a$2" type veth peer name "${P}b$2" || fail "veth for $1"
  ip link set "${P}a$2" netns "$P-sw" && ip link set "${P}b$2" netns "$ns" || fail "moving veth of $1"
  ip -n "$P-sw" link set "${P}a$2" master br0 up &&
    ip -n "$ns" link set "${P}b$2" name eth0 &&
    ip -n "$ns" addr add "$addr/24" dev eth0 &&
    ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up || fail "configuring $1"
  echo "$addr $1" >> "$W/hosts"
}
: > "$W/hosts"
add_host head 1
i=11
for h in "${HOSTS[@]}"; do
  add_host "$h" $i
  i=$((i + 1))
done

# The "ssh" of this cluster: AGENT HOST COMMAND... runs COMMAND (one shell string, as ssh does)
# in HOST's namespace with HOST as hostname.
cat > "$W/agent" << AGENT
#!/bin/sh
host=\$1
shift
exec ip netns exec "$P-\$host" unshare --uts sh -c "hostname \$host && \$*"
AGENT
chmod +x "$W/agent"
for h in "${HOSTS[@]}"; do echo "$h slots=2"; done > "$W/hostfile"
# on_head SECONDS CMD...: runs CMD on the head host (its namespace and hostname), killed after
# SECONDS.
on_head() {
  local limit=$1
  shift
  timeout -s KILL "$limit" ip netns exec "$P-head" unshare --uts sh -c 'hostname head && exec "$@"' sh "$@"
}
MPIH=(mpirun --hostfile "$W/hostfile" --bind-to none
  --mca plm_rsh_agent "$W/agent" --mca plm_rsh_no_tree_spawn 1
  --mca oob_tcp_if_include "$NET.0/24" --mca btl_tcp_if_include "$NET.0/24" --mca btl self,vader,tcp
  -x OPENBLAS_NUM_THREADS -x PATH)
cd "$W" || exit 1
# No name service needed: the agent maps the hostfile's names to namespaces, and each orted
# connects back to mpirun by the address in mpirun's URI.

echo "== dry run: hosts and local ranks"
on_head 60 "${MPIH[@]}" -np 4 "$BIN" train "$CFG" "${TINY[@]}" --dry-run > dry.log 2>&1 ||
  { cat dry.log; fail "dry run across hosts failed"; }
grep " host " dry.log | sed "s/^/  | /"
for r in 0 1 2 3; do
  h=${HOSTS[$((r / 2))]} l=$((r % 2))
  grep -Eq "rank $r: .*host $h local rank $l gpu $l\$" dry.log ||
    { cat dry.log; fail "rank $r: wanted host $h local rank $l gpu $l"; }
done
echo "ok: ranks 0,1 on node1 and 2,3 on node2, local ranks 0,1 on each"

echo "== cp=4 over 2 hosts x 2 ranks vs one host"
$MPI -np 4 "$BIN" train "$CFG" "${TINY[@]}" --set train.steps=6 --set run.out_dir=one > one.log 2>&1 ||
  { cat one.log; fail "one-host run"; }
on_head 300 "${MPIH[@]}" -np 4 "$BIN" train "$CFG" "${TINY[@]}" --set train.steps=6 --set run.out_dir="$W/two" > two.log 2>&1 ||
  { cat two.log; fail "two-host run"; }
same_losses one two

echo "== one host lost: the job ends within 10 s"
on_head 300 "${MPIH[@]}" -np 4 "$BIN" train "$CFG" "${TINY[@]}" --set train.steps=100000 --set run.out_dir="$W/lost" > lost.log 2>&1 &
MP=$!
wait_for 120 grep -q '"step": 2,' lost/metrics.jsonl || { kill -9 $MP; cat lost.log; fail "the long run did not start"; }
victims=$(for pid in $(ip netns pids "$P-node2"); do [ "$(readlink /proc/$pid/exe)" = "$BIN" ] && echo "$pid"; done)
[ -n "$victims" ] || { kill -9 $MP; fail "no ringtrain process found on node2"; }
t=$(date +%s.%N)
kill -9 $victims
ended=no
wait_for 10 sh -c "! kill -0 $MP" && ended=yes
dt=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[ $ended = yes ] || { kill -9 $MP; cat lost.log; fail "the job still runs 10 s after node2's ranks were killed"; }
wait $MP && fail "the job exited 0 after losing node2"
grep -Eiq "rank [23] .*node2|node2.*rank [23]" lost.log || { cat lost.log; fail "the error does not name the lost rank"; }
echo "ok: killed node2's ranks ($(echo $victims)); job ended in ${dt} s, non-zero:"
grep -Ei "rank [23] .*node2|node2.*rank [23]" lost.log | head -3 | sed 's/^/  | /'
echo "PASS"
