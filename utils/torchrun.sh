#!/usr/bin/env bash
# Start one training as N processes per node with torchrun (data-parallel), on this machine
# or on every node of a multi-node Slurm job.
#
#   utils/torchrun.sh [--nproc_per_node N] [--nnodes M] <python arguments, e.g. -m bljust.bin.train ...>
#
# One process on one node runs python directly. Several nodes: the command must run once on
# every node (utils/slurm.sh --num-nodes M does, through srun); each node reads its rank from
# SLURM_NODEID and meets the others on the first host of SLURM_JOB_NODELIST, port
# MASTER_PORT (default 29500).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/check_options.sh"
nproc=1 nnodes=1
while [ $# -gt 0 ]; do
    case "$1" in
        --nproc_per_node|--nproc-per-node) opt_need_value "$@"; check_opt posint "$1" "$2"; nproc=$2; shift 2 ;;
        --nnodes) opt_need_value "$@"; check_opt posint "$1" "$2"; nnodes=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "Usage: $0 [--nproc_per_node N] [--nnodes M] <python arguments>" >&2; exit 1; }
python=${PYTHON:-python}

if [ "$nnodes" -eq 1 ]; then
    [ "$nproc" -gt 1 ] || exec "$python" "$@"
    exec "$python" -m torch.distributed.run --standalone --nproc_per_node "$nproc" "$@"
fi
[ -n "${SLURM_NODEID:-}" ] && [ -n "${SLURM_JOB_NODELIST:-}" ] || {
    echo "torchrun.sh: --nnodes $nnodes needs a Slurm job (SLURM_NODEID and SLURM_JOB_NODELIST are unset)" >&2; exit 1; }
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
exec "$python" -m torch.distributed.run --nnodes "$nnodes" --node_rank "$SLURM_NODEID" --nproc_per_node "$nproc" \
    --master_addr "$head_node" --master_port "${MASTER_PORT:-29500}" "$@"
