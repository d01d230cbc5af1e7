#!/usr/bin/env bash
# ringtrain under a real Slurm: a single-node cluster from Debian's packages (munge,
# slurmctld, slurmd) with a throwaway config, state and munge key in a temp dir, its own ports,
# torn down by the EXIT trap. Checks:
#  - `srun --mpi=pmix -n 4 -O ringtrain train` (cp=4; Open MPI wired up by Slurm's PMIx, no
#    mpirun) gives the same losses as the same run under mpirun, and the log and metrics.jsonl
#    name the Slurm job;
#  - preemption: scripts/slurm/ringtrain.sbatch (the template users submit), signalled as at
#    its time limit (`scancel --signal=USR1 --batch`: to the batch script only, which forwards
#    it through srun to the ranks), saves a checkpoint and exits 0; it requeues itself
#    (`scontrol requeue`), the new start (restart 1) resumes from that checkpoint and finishes
#    with the same losses as an uninterrupted job.
# The bugs caught: ranks that never see the signal (killed at the time limit with nothing
# saved), a job that restarts from step 0 after a requeue, srun ranks that do not form one
# world (4 jobs of one rank each) or lose determinism.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to run slurmctld/slurmd/munged"

# Debian's packages (also in scripts/lib/common.sh RT_PACKAGES, so CI has them already).
if ! command -v slurmctld > /dev/null || ! command -v slurmd > /dev/null || ! command -v srun > /dev/null ||
  ! command -v munged > /dev/null; then
  command -v apt-get > /dev/null || fail "slurmctld, slurmd, slurm-client and munge are missing (no apt-get)"
  echo "installing slurmctld slurmd slurm-client munge"
  apt-get update -qq > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge > /dev/null ||
    fail "apt-get install slurmctld slurmd slurm-client munge"
fi

W=$(mktemp -d /tmp/rt_slurm.XXXXXX)
chmod 755 "$W"
export SLURM_CONF=$W/slurm.conf
teardown() {
  local rc=$?
  trap - EXIT
  if [ -f "$W/slurmctld.pid" ]; then
    scancel --full --signal=KILL --quiet --user=root 2> /dev/null
    scancel --quiet --user=root 2> /dev/null
  fi
  # Every process of this cluster (daemons, slurmstepd, ranks) carries our SLURM_CONF or was
  # started from the temp dir; nothing else does.
  for pass in 1 2; do
    for env in /proc/[0-9]*/environ; do
      pid=${env#/proc/}
      pid=${pid%/environ}
      [ "$pid" = $$ ] && continue
      if { tr '\0' '\n' < "$env"; } 2> /dev/null | grep -qx "SLURM_CONF=$W/slurm.conf"; then
        kill -9 "$pid" 2> /dev/null
      fi
    done
    [ $pass = 1 ] && sleep 0.5
  done
  [ -f "$W/munge/pid" ] && kill "$(cat "$W/munge/pid")" 2> /dev/null
  sleep 0.2
  if [ $rc != 0 ]; then
    for f in slurmctld.log slurmd.log; do [ -f "$W/$f" ] && { echo "--- $f (tail)"; tail -15 "$W/$f"; }; done
  fi
  rm -rf "$W"
  elapsed
  exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- munge: our own key and socket (the machine's munged, if any, is left alone) ---
mkdir -p "$W/munge" "$W/state" "$W/spool" "$W/tmp" && chmod 700 "$W/munge"
dd if=/dev/urandom of="$W/munge/munge.key" bs=128 count=1 status=none && chmod 600 "$W/munge/munge.key"
munged --force -S "$W/munge/sock" --key-file="$W/munge/munge.key" --log-file="$W/munge/log" \
  --pid-file="$W/munge/pid" --seed-file="$W/munge/seed" 2> "$W/err" ||
  skip "the machine forbids starting munged: $(cat "$W/err" "$W/munge/log" 2> /dev/null | tail -3)"
munge -S "$W/munge/sock" -n | unmunge -S "$W/munge/sock" > /dev/null || fail "munge round trip"

# --- slurm.conf: this node with its real CPU count, everything else in $W ---
NODE=$(hostname -s)
# The node as slurmd sees it (CPUs, sockets, cores, threads), so slurmd registers without a
# "reconfigured" mismatch; memory is left out (not scheduled here).
NODELINE=$(slurmd -C | head -1 | sed 's/ RealMemory=[0-9]*//')
CPUS=$(echo "$NODELINE" | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p')
[ "${NODELINE%% *}" = "NodeName=$NODE" ] && [ -n "$CPUS" ] || fail "slurmd -C: unexpected '$NODELINE' (host $NODE)"
PORT=$((20000 + ($$ % 5000) * 2)) # two ports per test process
cat > "$SLURM_CONF" << CONF
ClusterName=rttest
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$W/munge/sock
CredType=cred/munge
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
TmpFS=$W/tmp
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
$NODELINE State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONF
slurmctld -f "$SLURM_CONF" -i 2> "$W/err" || skip "the machine forbids starting slurmctld: $(cat "$W/err")"
slurmd -f "$SLURM_CONF" 2> "$W/err" || skip "the machine forbids starting slurmd: $(cat "$W/err")"
wait_for 30 sh -c 'sinfo -h -o %t | grep -q idle' || { sinfo; fail "the node did not come up idle"; }
echo "slurm up: node $NODE, $CPUS CPUs, ports $PORT-$((PORT + 1)), $(srun --version)"
srun --mpi=list 2>&1 | grep -q pmix || fail "this Slurm has no pmix MPI plugin: $(srun --mpi=list 2>&1 | tr '\n' ' ')"
cd "$W" || exit 1
# srun -O puts 4 ranks on fewer cores without telling Open MPI (mpirun --oversubscribe does):
# ranks would spin in MPI waits and starve each other (a collective checkpoint write took 90 s
# on 2 busy cores). A real cluster has a core per rank and needs none of this.
export OMPI_MCA_mpi_yield_when_idle=1
STEPS=300 # steps of every run; the preempted job is signalled after step 2, long before the end
# (a 30-step run of this model can finish within the signal's delivery on an idle machine)
RUN=("$BIN" train "$CFG" "${TINY[@]}" --set train.steps=$STEPS)

echo "== srun --mpi=pmix -n 4 -O vs mpirun -np 4"
$MPI -np 4 "${RUN[@]}" --set run.out_dir=mpi > mpi.log 2>&1 || { cat mpi.log; fail "mpirun run"; }
timeout 300 srun --mpi=pmix -n 4 -O -J rt-srun "${RUN[@]}" --set run.out_dir=srun > srun.log 2>&1 ||
  { cat srun.log; fail "srun run"; }
grep -q "^ringtrain .*: 4 ranks" srun.log || { cat srun.log; fail "srun ranks did not form one 4-rank job"; }
same_losses mpi srun
grep -Eq "^launcher: slurm job [0-9]+ 'rt-srun' step 0, restart 0" srun.log || { cat srun.log; fail "no Slurm job in the log"; }
grep -q '"slurm_job_name": "rt-srun"' srun/metrics.jsonl || fail "no Slurm job in metrics.jsonl"
echo "ok: $(grep -m1 '^launcher:' srun.log)"

echo "== sbatch, preempted (USR1 to the batch script), requeued, resumed"
# The template with this machine's sizes: no GPUs, 4 ranks on one node, overcommitted (Slurm
# refuses --ntasks-per-node above the node's CPUs even with -O, so that line goes too).
sed -E '/^#SBATCH --(gpus-per-node|ntasks-per-node|cpus-per-task)/d' "$SRC/scripts/slurm/ringtrain.sbatch" > job.sbatch
export RINGTRAIN=$BIN RT_CONFIG=$CFG RT_CHECKPOINT_DIR=$W/ckpt RT_OUT_DIR=$W/job RT_SRUN_ARGS=-O
job=$(sbatch --parsable -J rt-preempt --nodes=1 --ntasks=4 -O --time=30 --output="$W/job.out" \
  job.sbatch "${TINY[@]}" --set train.steps=$STEPS) || fail "sbatch"
echo "submitted job $job"
wait_for 120 grep -q '"step": 2,' job/metrics.jsonl || { cat job.out; squeue; fail "job $job did not start training"; }
scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 --batch"
# After the save the script requeues the job. Slurm makes a requeued job eligible only after
# ~2 minutes; the test (as admin) lets it start at once. The restart runs to the end.
job_state() { scontrol show job "$job" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
restarts() { scontrol show job "$job" | grep -o 'Restarts=[0-9]*' | cut -d= -f2; }
wait_for 180 sh -c "scontrol show job $job | grep -q 'Restarts=1'" ||
  { cat job.out; scontrol show job "$job"; fail "job $job was not requeued after the signal (state $(job_state))"; }
# Released whenever it is PENDING, every 2 s: a release while the first run still completes
# is undone when the requeue finishes.
release() { [ "$(job_state)" != PENDING ] || scontrol update JobId="$job" StartTime=now; }
for _ in $(seq 120); do # up to 4 minutes
  [ "$(job_state)" = COMPLETED ] && break
  release || fail "scontrol update JobId=$job StartTime=now"
  sleep 2
done
[ "$(job_state)" = COMPLETED ] && [ "$(restarts)" = 1 ] ||
  { cat job.out; scontrol show job "$job"; fail "job $job did not complete after its requeue (state $(job_state), restarts $(restarts))"; }
grep -E "^(job |batch script|srun exited|requeueing|stopping on signal|loaded checkpoint|launcher:)" job.out | sed 's/^/  | /'
s=$(sed -n 's/^stopping on signal 10 after step \([0-9]*\).*/\1/p' job.out)
[ -n "$s" ] && [ "$s" -lt $STEPS ] || { cat job.out; fail "the ranks did not stop on SIGUSR1 before the end"; }
[ -f "ckpt/$(printf 'step-%06d.h5' "$s")" ] || { ls ckpt; fail "no checkpoint of step $s"; }
grep -q "^srun exited 0" job.out || { cat job.out; fail "the preempted srun did not exit 0"; }
grep -q "^requeueing job $job" job.out || fail "the job did not requeue itself"
grep -Eq "^launcher: slurm job $job 'rt-preempt' step 0, restart 1" job.out || { cat job.out; fail "no restart 1 in the log"; }
grep -Eq "^loaded checkpoint .*ckpt/step-0*$s\.h5" job.out || { cat job.out; fail "the requeued job did not resume from step $s"; }
same_losses srun job
echo "ok: stopped after step $s with a checkpoint, requeued, resumed at $s, finished $STEPS steps"
echo "PASS"
