#!/usr/bin/env bash
# Trains one experiment on several GPU nodes with SLURM: one process per node, all its GPUs.
#
#   launch/slurm.sh [--dry-run] [--nodes 2] [--gpus-per-node 8] [--time 24:00:00]
#       [--partition P] [--account A] --config configs/X.py[:ROW] --workdir DIR
#       [-- TRAINER FLAGS...]
#
# DRY_RUN=1 works too. Run from a login node, the script submits itself with sbatch; inside the
# allocation it runs `srun python -m alc_jax.main --multihost ...` on every node, where
# jax.distributed.initialize() reads the coordinator and process ids from SLURM's environment.
# The workdir must be on a file system every node sees; the log goes to DIR/slurm-<jobid>.out.
# Relative --config and --workdir paths are relative to the repository root.
# Example:
#   launch/slurm.sh --nodes 2 --gpus-per-node 4 --config configs/imagenet_1pct.py \
#       --workdir /shared/runs/imagenet_mt_alc -- --config.compute_dtype=bfloat16
set -euo pipefail

usage() {  # The comment block at the top of this file.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

DRY_RUN="${DRY_RUN:-0}"; NODES=2; GPUS=8; TIME="24:00:00"; PARTITION=""; ACCOUNT=""
CONFIG=""; WORKDIR=""; EXTRA=()
FORWARD=()  # The arguments, less --dry-run, for the copy of this script that sbatch runs.
for arg in "$@"; do
  [[ "$arg" != --dry-run ]] && FORWARD+=("$arg")
done
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --nodes) NODES="${2:?--nodes needs a value}"; shift 2 ;;
    --gpus-per-node) GPUS="${2:?--gpus-per-node needs a value}"; shift 2 ;;
    --time) TIME="${2:?--time needs a value}"; shift 2 ;;
    --partition) PARTITION="${2:?--partition needs a value}"; shift 2 ;;
    --account) ACCOUNT="${2:?--account needs a value}"; shift 2 ;;
    --config) CONFIG="${2:?--config needs a value}"; shift 2 ;;
    --workdir) WORKDIR="${2:?--workdir needs a value}"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
if [[ -z "$CONFIG" || -z "$WORKDIR" ]]; then
  echo "missing --config or --workdir" >&2
  usage
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# One task per node; each process drives all GPUs of its node (jax.local_devices()).
RUN=(srun --nodes="$NODES" --ntasks-per-node=1 python -m alc_jax.main --multihost
     "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]+"${EXTRA[@]}"}")
SUBMIT=(sbatch --job-name=alc_jax --nodes="$NODES" --ntasks-per-node=1 --gpus-per-node="$GPUS"
        --time="$TIME" --output="$WORKDIR/slurm-%j.out" --chdir="$ROOT")
[[ -n "$PARTITION" ]] && SUBMIT+=(--partition="$PARTITION")
[[ -n "$ACCOUNT" ]] && SUBMIT+=(--account="$ACCOUNT")
SUBMIT+=("$ROOT/launch/slurm.sh" "${FORWARD[@]}")

if [[ "$DRY_RUN" == 1 ]]; then
  echo "dry run, would submit:"
  printf '%q ' "${SUBMIT[@]}"; echo
  echo "and inside the allocation run:"
  printf '%q ' "${RUN[@]}"; echo
  exit 0
fi
if [[ -n "${SLURM_JOB_ID:-}" ]]; then  # Inside the allocation: one trainer per node.
  exec "${RUN[@]}"
fi
mkdir -p "$WORKDIR"
exec "${SUBMIT[@]}"
