#!/usr/bin/env bash
# The long-context GPU recipe with Open MPI's mpirun and a hostfile, without Slurm
# (docs/CLUSTER.md, "GPU nodes"): N nodes x 8 GPUs, one rank per GPU, NCCL between GPUs, dp = N
# across the nodes (the config's cp x tp fills one node's 8 GPUs).
#
#   scripts/slurm/mpirun-gpu-multinode.sh hosts                       # configs/llama-350m-16k.yaml
#   RT_CONFIG=configs/llama-350m-32k.yaml scripts/slurm/mpirun-gpu-multinode.sh hosts --set train.steps=2000
#   scripts/slurm/mpirun-gpu-multinode.sh hosts --dry-run              # placement, GPUs, memory per rank
#
# hosts: one line per node, `gpu01 slots=8`. Passwordless ssh between the nodes and the same
# paths (repository, binary, libraries) on every node are needed: mpirun starts its daemon there
# over ssh. Arguments after the hostfile go to `ringtrain train`.
#
# Local rank: not set by this script and not read from OMPI_COMM_WORLD_LOCAL_RANK: ringtrain
# computes it with MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) (parallel/mesh.cpp) and takes GPU
# local_rank % visible GPUs, so every rank must see the node's 8 GPUs (leave
# CUDA_VISIBLE_DEVICES unset, or the same on every rank of a node). --dry-run prints each rank's
# host, local rank and GPU.
set -euo pipefail

if [[ $# -lt 1 || ! -f $1 ]]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
hosts=$1
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
RINGTRAIN=${RINGTRAIN:-$root/build-gpu/ringtrain}     # a RINGTRAIN_GPU=cuda build (scripts/gpu-run)
RT_CONFIG=${RT_CONFIG:-configs/llama-350m-16k.yaml}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
nodes=$(grep -cEv '^[[:space:]]*(#|$)' "$hosts")
ranks=$((nodes * GPUS_PER_NODE))

# The fabric: name your interfaces and HCAs (docs/CLUSTER.md, "Environment variables that matter").
export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-^docker0,lo}   # NCCL's bootstrap (and socket) interface
# export NCCL_IB_HCA=mlx5_0,mlx5_1                            # InfiniBand HCAs; unset: NCCL picks
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}                          # INFO once: which transport (IB/NET/P2P)
RT_NET=${RT_NET:-}                                             # Open MPI's TCP subnet, e.g. 10.1.0.0/16
RT_BIND=${RT_BIND:-numa}                                       # none on a small test machine
net_args=()
if [[ -n $RT_NET ]]; then
  net_args=(--mca oob_tcp_if_include "$RT_NET" --mca btl_tcp_if_include "$RT_NET")
fi
# -x: the environment of the remote ranks (mpirun passes nothing it is not told to); only what is set.
env_args=()
for v in NCCL_SOCKET_IFNAME NCCL_IB_HCA NCCL_DEBUG NCCL_NET_GDR_LEVEL PATH LD_LIBRARY_PATH; do
  [[ -n ${!v:-} ]] && env_args+=(-x "$v")
done

echo "mpirun: $nodes node(s) x $GPUS_PER_NODE GPUs = $ranks ranks, $RT_CONFIG with parallel.dp=$nodes"
# --map-by ppr:8:node: 8 ranks per node, filled node by node (ranks 0-7 on the first host).
# --bind-to numa: each rank's threads on the cores of one NUMA domain (its GPU's, on the usual
#   2-socket node with GPUs 0-3 on socket 0); --report-bindings prints them.
exec mpirun --hostfile "$hosts" -np "$ranks" --map-by "ppr:$GPUS_PER_NODE:node" --bind-to "$RT_BIND" \
  "${net_args[@]}" "${env_args[@]}" \
  "$RINGTRAIN" train "$RT_CONFIG" --set device=cuda --set parallel.dp="$nodes" \
  --set checkpoint.resume=auto "$@"
