#!/usr/bin/env bash
# Issue 30's search for a CPU protocol where semi-supervision pays (docs/results.md, "Where
# semi-supervision pays on this CPU"). Real Fashion-MNIST, CNN-13 at 1/16 width unless a phase says
# otherwise, batch 100 with 10 labeled, 3 seeds per job side by side.
#   Selection phases (R, W) hold out 5000 training images as validation (split seed 100 for every
#   run, as in launch/alc_study.sh's selection phases; 250 labels at 4800 steps is alc_study.sh's
#   phase E, which these phases extend) and are read on eval/validation_* only
#   (`launch/aggregate.py --split validation`).
#   The test phase (T) trains the protocol chosen there, configs/fashion_mnist_100_cpu.py, on fresh
#   label splits (split seed = seed) and reads the test set.
#   bash launch/regime_study.sh PHASE        PHASE: R Q B W QW T (see below); rerun to resume.
#   DRY_RUN=1 bash launch/regime_study.sh PHASE   prints the jobs without running them.
#   LABELS=40,100 ROWS=supervised,fixmatch bash launch/regime_study.sh R   picks cells.
#   GRID=config.KEY=V1,V2 runs each row at those values (sweep.py --grid; ROW--KEY=V workdirs).
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE="${1:?usage: regime_study.sh R|Q|B|W|QW|T}"
ROOT="${ROOT:-runs/regime_study}"
source launch/_study_protocol.sh
SELECT_SPLIT=(--override config.dataset.validation_size=5000 --override config.dataset.split_seed=100)
run_labels() {  # run_labels PHASE_DIR LABELS ROWS EXTRA...: one job set per label count.
  local dir="$1" labels="$2" rows="$3"; shift 3
  for n in ${labels//,/ }; do
    $SWEEP --configs configs/fashion_mnist_250.py "${CPU[@]}" --seeds 0,1,2 "${SELECT_SPLIT[@]}" \
      --override config.dataset.num_labels="$n" --root "$ROOT/$dir/labels$n" --rows "$rows" \
      ${GRID:+--grid "$GRID"} "$@"
  done
}
case "$PHASE" in
  R)  # Fewer labels (4 and 10 per class; 25 per class is phase E) at the final budget (8 epochs).
    cpu_protocol "$FINAL_STEPS" "$FINAL_RAMP" "$FINAL_EVERY"
    run_labels R "${LABELS:-40,100}" "${ROWS:-supervised,fixmatch,mean_teacher}"
    if [ -z "${LABELS:-}" ]; then  # FixMatch at 250 labels, beside phase E's rows.
      run_labels R 250 fixmatch
    fi ;;
  Q)  # The main job's budget (1200 steps = 2.2 epochs, ~5 min a row at 3 seeds): what
      # launch/quickstart.sh could show. Labels and rows as phase R.
    cpu_protocol 1200 0.5 300
    run_labels Q "${LABELS:-40,100}" "${ROWS:-supervised,fixmatch,mean_teacher}" ;;
  B)  # The budget: 4x phase R's (32 epochs) for the label count and rows phase R points to.
    cpu_protocol $((4 * FINAL_STEPS)) $((4 * FINAL_RAMP)) $((4 * FINAL_EVERY))
    run_labels B "${LABELS:-40}" "${ROWS:-supervised,fixmatch,mean_teacher}" ;;
  W)  # The width: 1/8 instead of 1/16 at phase R's budget.
    cpu_protocol "$FINAL_STEPS" "$FINAL_RAMP" "$FINAL_EVERY"
    run_labels W "${LABELS:-40}" "${ROWS:-supervised,fixmatch,mean_teacher}" \
      --override config.model.width=0.125 ;;
  QW)  # The width at the main job's budget: 1/8 instead of 1/16 at phase Q's 1200 steps, at the
       # label count the test phase chose (100).
    cpu_protocol 1200 0.5 300
    run_labels QW "${LABELS:-100}" "${ROWS:-supervised,fixmatch,mean_teacher}" \
      --override config.model.width=0.125 ;;
  T)  # Test: configs/fashion_mnist_100_cpu.py (phase Q at 100 labels, FixMatch's student), fresh
      # splits, 5 seeds per job: splits 0-4 of every row first, then 5-9 (10 splits per row).
    for seeds in 0,1,2,3,4 5,6,7,8,9; do
      $SWEEP --configs configs/fashion_mnist_100_cpu.py --num-runs-per-job 5 --seeds "$seeds" \
        --root "$ROOT/T" --rows "${ROWS:-supervised,fixmatch,mean_teacher,mean_teacher_alc,fixmatch_alc}"
    done ;;
  *) echo "unknown phase $PHASE" >&2; exit 2 ;;
esac
