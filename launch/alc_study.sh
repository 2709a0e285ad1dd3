#!/usr/bin/env bash
# The ALC study of docs/results.md ("ALC on this CPU"): real Fashion-MNIST, 250 labels, on a CPU.
# Protocol = configs/fashion_mnist_cpu.py (the README's main job): CNN-13 at 1/16 width, batch 100
# with 10 labeled, 1200 steps (2 epochs), cosine lr over the budget, w1/w2 ramp-up over half an
# epoch. Every job trains 3 seeds side by side (on the CPU a loop over the runs in one jitted step).
#   Selection phases (A, B, C) hold out 5000 training images as validation (split seed 100 for
#   every run, so the runs share one validation set that none of them trains on) and are read on
#   eval/validation_* only (`launch/aggregate.py --split validation`); the final phase (D) trains
#   the main job's config on other label splits (split seed = seed) and reads the test set.
#   Phases E-G repeat selection (E, G) and test (F) at 4x the budget (4800 steps).
#   bash launch/alc_study.sh PHASE        PHASE: A B C D E F G (see below); rerun to resume.
#   DRY_RUN=1 bash launch/alc_study.sh PHASE   prints the jobs without running them.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE="${1:?usage: alc_study.sh A|B|C|D|E|F|G}"
ROOT="${ROOT:-runs/alc_study}"
source launch/_study_protocol.sh
# The main job's schedule, on configs/fashion_mnist_250.py (same recipe) for the selection phases.
# Phases E-G scale the budget (4x the steps, the cosine schedule and a ramp-up of a quarter).
if [ "$PHASE" = E ] || [ "$PHASE" = F ] || [ "$PHASE" = G ]; then
  cpu_protocol "$FINAL_STEPS" "$FINAL_RAMP" "$FINAL_EVERY"
else
  cpu_protocol 1200 0.5 300
fi
SELECT=(--configs configs/fashion_mnist_250.py "${CPU[@]}" --seeds 0,1,2
  --override config.dataset.validation_size=5000 --override config.dataset.split_seed=100)
case "$PHASE" in
  A)  # Budget and supervised normalisation: supervised vs Mean Teacher, both CE scales.
    $SWEEP "${SELECT[@]}" --root "$ROOT/A" --rows supervised
    $SWEEP "${SELECT[@]}" --root "$ROOT/A" --rows mean_teacher \
      --grid config.supervised_normalization=labeled,batch ;;
  B)  # The ALC readings (configs/common.py ALC_VARIANTS) at w2 = 1, the paper's Fashion-MNIST value.
    $SWEEP "${SELECT[@]}" --root "$ROOT/B" --rows "${ROWS:-mean_teacher_alc@paper,mean_teacher_alc@pairs,mean_teacher_alc@cosine,mean_teacher_alc@decoupled,mean_teacher_alc@entropy,mean_teacher_alc@scaled}" ;;
  C)  # Fig. 6: larger w2 for the readings worth keeping (w2 = 1 is phase B).
    $SWEEP "${SELECT[@]}" --root "$ROOT/C" \
      --rows "${ROWS:-mean_teacher_alc@cosine,mean_teacher_alc@decoupled}" \
      --grid config.alc.weight="${W2:-10,100}" ;;
  D)  # Test accuracy of the picked settings: the main job's config, seeds 0-2, fresh splits.
    $SWEEP --configs configs/fashion_mnist_cpu.py --num-runs-per-job 3 --seeds 0,1,2 \
      --root "$ROOT/D" \
      --rows "${ROWS:-supervised,mean_teacher,mean_teacher_alc@cosine,mean_teacher_alc@decoupled}"
    ;;
  E)  # The learning curve's next point: 4x the budget (4800 steps = 8.7 epochs), selection split.
    $SWEEP "${SELECT[@]}" --root "$ROOT/E" \
      --rows "${ROWS:-supervised,mean_teacher,mean_teacher_alc@cosine,mean_teacher_alc@decoupled}"
    ;;
  F)  # Test accuracy at phase E's budget: phase D's protocol (fresh splits, test set), 8.7 epochs.
    $SWEEP --configs configs/fashion_mnist_cpu.py "${CPU[@]}" --seeds "${SEEDS:-0,1,2}" \
      --root "$ROOT/F" \
      --rows "${ROWS:-mean_teacher_alc@decoupled,mean_teacher,supervised,mean_teacher_alc@cosine}" ;;
  G)  # Fig. 6 at phase E's budget: larger w2 for the shipped reading, on validation (w2 = 1: E).
    $SWEEP "${SELECT[@]}" --root "$ROOT/G" --rows "${ROWS:-mean_teacher_alc@decoupled}" \
      --grid config.alc.weight="${W2:-3,10}" ;;
  *) echo "unknown phase $PHASE" >&2; exit 2 ;;
esac
