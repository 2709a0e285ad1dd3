#!/usr/bin/env bash
# The ALC study of docs/results.md ("ALC that works"): real Fashion-MNIST, 250 labels, on a CPU.
# CPU-sized protocol: CNN-13 at 1/16 width (8-16-32 channels), batch 100 with 10 labeled, cosine lr
# over the budget, w1 ramp-up over the first quarter of the budget. Every job trains 3 seeds side
# by side (--num-runs-per-job 3: on the CPU a loop over the runs inside one jitted step).
#   Selection phases (A, B, C) hold out 5000 training images as validation (split seed 100 for
#   every run, so the runs share one validation set that none of them trains on) and read only
#   eval/validation_*; the final phase (D) trains on other label splits (split seed = seed) and
#   reads the test set.
#   bash launch/alc_study.sh PHASE [STEPS]     PHASE: A B C D (see below); resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE="${1:?usage: alc_study.sh A|B|C|D [steps]}"
STEPS="${2:-1200}"
ROOT="${ROOT:-runs/alc_study}"
RAMP=$(python3 -c "print($STEPS / 600 / 4)")  # 600 steps per epoch at 60000 / 100.
EVERY=$((STEPS / 4))
COMMON=(--configs configs/fashion_mnist_250.py --num-runs-per-job 3
  --override config.model.width=0.0625 --override config.num_train_steps="$STEPS"
  --override config.consistency_rampup_epochs="$RAMP" --override config.eval_every_steps="$EVERY"
  --override config.checkpoint_every_steps="$EVERY" --override config.log_every_steps=50)
SELECT=(--seeds 0,1,2 --override config.dataset.validation_size=5000
  --override config.dataset.split_seed=100)
case "$PHASE" in
  A)  # Budget and supervised normalisation: supervised vs Mean Teacher (and Pi) on validation.
    .venv/bin/python launch/sweep.py "${COMMON[@]}" "${SELECT[@]}" --root "$ROOT/A_steps$STEPS" \
      --rows supervised
    .venv/bin/python launch/sweep.py "${COMMON[@]}" "${SELECT[@]}" --root "$ROOT/A_steps$STEPS" \
      --rows mean_teacher,pi_model --grid config.supervised_normalization=labeled,batch ;;
  B)  # The ALC readings at w2 = 1 (the paper's Fashion-MNIST value) on validation.
    .venv/bin/python launch/sweep.py "${COMMON[@]}" "${SELECT[@]}" --root "$ROOT/B_steps$STEPS" \
      --rows "${ROWS:-mean_teacher_alc@paper,mean_teacher_alc@pairs,mean_teacher_alc@cosine,mean_teacher_alc@entropy,mean_teacher_alc@decoupled,mean_teacher_alc@scaled}" \
      --override config.supervised_normalization="${SUPNORM:-labeled}" ;;
  C)  # Fig. 6: w2 on a log scale for the readings worth keeping, on validation.
    .venv/bin/python launch/sweep.py "${COMMON[@]}" "${SELECT[@]}" --root "$ROOT/C_steps$STEPS" \
      --rows "${ROWS:?set ROWS=row@variant,...}" --grid config.alc.weight="${W2:-0.1,1,10,100}" \
      --override config.supervised_normalization="${SUPNORM:-labeled}" ;;
  D)  # Test accuracy of the picked settings on fresh label splits (seeds 0-2: split seed = seed).
    .venv/bin/python launch/sweep.py "${COMMON[@]}" --seeds "${SEEDS:-0,1,2}" \
      --root "$ROOT/D_steps$STEPS" --rows "${ROWS:?set ROWS=...}" \
      --override config.supervised_normalization="${SUPNORM:-labeled}" "${EXTRA[@]:+${EXTRA[@]}}" ;;
  *) echo "unknown phase $PHASE" >&2; exit 2 ;;
esac
