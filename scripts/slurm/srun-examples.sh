#!/usr/bin/env bash
# shellcheck disable=SC2317  # a file of examples after `exit 0`: nothing below runs
# srun examples for ringtrain: copy the line you need; this file is not meant to be
# run as a whole. docs/CLUSTER.md explains the environment variables.
exit 0

# Interactive: 2 nodes x 8 GPUs, one rank per GPU. Open MPI's ranks wire up through Slurm's
# PMIx (`srun --mpi=list` shows pmix / pmix_v4); there is no mpirun. The local rank (the GPU a
# rank takes) comes from MPI's shared-memory communicator, so it is right for any placement.
salloc --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --time=1:00:00
srun --mpi=pmix --kill-on-bad-exit=1 build/ringtrain train configs/text-small.yaml \
  --set parallel.cp=4 --set parallel.tp=4

# Check the placement first: each rank's host, local rank and GPU (no training).
srun --mpi=pmix --nodes=2 --ntasks-per-node=8 build/ringtrain train configs/text-small.yaml \
  --set parallel.cp=16 --dry-run

# One step within a running sbatch allocation, with a checkpoint directory and resume.
srun --mpi=pmix --kill-on-bad-exit=1 build/ringtrain train configs/text-small.yaml \
  --set checkpoint.dir=checkpoints/$SLURM_JOB_ID --set checkpoint.resume=auto

# CPU-only test node, more ranks than cores (what tests/cluster/test_slurm.sh runs): -O
# overcommits, and Open MPI must be told to yield or the ranks spin against each other.
OMPI_MCA_mpi_yield_when_idle=1 srun --mpi=pmix -n 4 -O build/ringtrain train configs/test-tiny.yaml \
  --set train.seq_len=128 --set parallel.cp=4

# Preempt a running batch job as its time limit would: SIGUSR1 to the batch script only
# (scripts/slurm/ringtrain.sbatch forwards it to the ranks, which save and stop; the script then
# requeues the job, which resumes from the checkpoint).
scancel --signal=USR1 --batch JOBID
# Requeue by hand (a job that stopped without requeueing itself, RT_REQUEUE=0):
scontrol requeue JOBID

# --- GPU nodes (docs/CLUSTER.md, "GPU nodes") ---
# The 350M long-context recipe on one node: 8 ranks, one per GPU, NCCL. Every rank must see all
# 8 GPUs (no --gpus-per-task / --gpu-bind): ringtrain takes GPU local_rank % visible GPUs, the
# local rank from MPI_Comm_split_type (not SLURM_LOCALID).
srun --mpi=pmix --nodes=1 --ntasks-per-node=8 --gpus-per-node=8 --cpu-bind=cores --kill-on-bad-exit=1 \
  build-gpu/ringtrain train configs/llama-350m-16k.yaml
# Two nodes: dp=2 across them, NCCL over the fabric (srun passes the environment).
NCCL_SOCKET_IFNAME=ib0 NCCL_IB_HCA=mlx5_0,mlx5_1 NCCL_DEBUG=WARN \
  srun --mpi=pmix --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --cpu-bind=cores --kill-on-bad-exit=1 \
  build-gpu/ringtrain train configs/llama-350m-16k.yaml --set parallel.dp=2
# Placement and memory per rank before the real run (no GPU work, no GPU allocated):
srun --mpi=pmix --nodes=2 --ntasks-per-node=8 build-gpu/ringtrain train configs/llama-350m-16k.yaml \
  --set parallel.dp=2 --dry-run
