#!/usr/bin/env bash
# Trains one experiment on every worker of a Cloud TPU pod slice (one process per TPU VM host).
#
#   launch/tpu_pod.sh [--dry-run] --tpu NAME --zone ZONE --config configs/X.py[:ROW] \
#       --workdir gs://BUCKET/DIR [--project P] [--repo-dir alc_jax] [-- TRAINER FLAGS...]
#
# TPU_NAME, ZONE, PROJECT and DRY_RUN=1 may be given as environment variables instead. Every
# worker runs `python -m alc_jax.main --multihost ...`: main then calls
# jax.distributed.initialize(), which finds the pod's coordinator by itself. The workdir must be
# shared by all hosts (a gs:// bucket); the repository must already be at --repo-dir on every
# worker (e.g. `gcloud compute tpus tpu-vm scp --recurse . $TPU_NAME:alc_jax --worker=all`) with
# its dependencies installed (launch/setup_env.sh). Example:
#   launch/tpu_pod.sh --tpu my-v4-32 --zone us-central2-b --config configs/imagenet_1pct.py \
#       --workdir gs://my-bucket/alc/imagenet_mt_alc -- --config.compute_dtype=bfloat16
set -euo pipefail

usage() {  # The comment block at the top of this file.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

TPU_NAME="${TPU_NAME:-}"; ZONE="${ZONE:-}"; PROJECT="${PROJECT:-}"; DRY_RUN="${DRY_RUN:-0}"
CONFIG=""; WORKDIR=""; REPO_DIR="alc_jax"; EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --tpu) TPU_NAME="${2:?--tpu needs a value}"; shift 2 ;;
    --zone) ZONE="${2:?--zone needs a value}"; shift 2 ;;
    --project) PROJECT="${2:?--project needs a value}"; shift 2 ;;
    --config) CONFIG="${2:?--config needs a value}"; shift 2 ;;
    --workdir) WORKDIR="${2:?--workdir needs a value}"; shift 2 ;;
    --repo-dir) REPO_DIR="${2:?--repo-dir needs a value}"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
if [[ -z "$TPU_NAME" || -z "$ZONE" || -z "$CONFIG" || -z "$WORKDIR" ]]; then
  echo "missing --tpu, --zone, --config or --workdir" >&2
  usage
fi

# The remote command is one string run by each worker's shell: quote every piece.
REMOTE="cd $(printf '%q' "$REPO_DIR") && python -m alc_jax.main --multihost"
REMOTE+=" --config=$(printf '%q' "$CONFIG") --workdir=$(printf '%q' "$WORKDIR")"
for flag in "${EXTRA[@]+"${EXTRA[@]}"}"; do
  REMOTE+=" $(printf '%q' "$flag")"
done
CMD=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "$REMOTE")
if [[ -n "$PROJECT" ]]; then
  CMD+=(--project "$PROJECT")
fi

if [[ "$DRY_RUN" == 1 ]]; then
  echo "dry run, would run:"
  printf '%q ' "${CMD[@]}"
  echo
  exit 0
fi
exec "${CMD[@]}"
