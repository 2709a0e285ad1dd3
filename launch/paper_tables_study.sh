#!/usr/bin/env bash
# Issue 15: the paper's other claims on real Fashion-MNIST, under the ALC study's final protocol
# (launch/alc_study.sh F, docs/results.md section 7): CNN-13 at 1/16 width, batch 100, 4800 steps
# (8 epochs), cosine lr over them, w1/w2 ramp-up over 2 epochs, eval and checkpoints every 600
# steps; seeds 0-2 side by side, each seed its own label split (imbalanced ones included), all
# 60,000 training images, the test set. ALC rows use the shipped reading (configs/default.py).
#   bash launch/paper_tables_study.sh PHASE    rerun to resume; DRY_RUN=1 prints the jobs;
#   ROWS=a,b picks rows; RATIOS=5 picks the ratios of T7B/T7C (a whole ratio before the next);
#   SEEDS=0,1 runs fewer seeds (the issue allows 2 for the T7B rows at 1:5 and 1:15);
#   GRID=config.KEY=V1,V2 runs each row at those values (sweep.py --grid; ROW--KEY=V workdirs).
# Phases, most informative first (3-seed jobs: 15-20 min each for T7 on an idle 2-core CPU):
#   T7   Table 7 at 1:10: supervised, Mean Teacher, MT + ALC soft (Eq. 15)          ~1 h (ran)
#   T7B  Table 7 at 1:10, the other rows: Pseudo-Label, MT + ALC hard (Eq. 14), Pi, Pi + ALC
#        hard/soft                                                                ~2.5 h (ran)
#        at 1:5 and 1:15: RATIOS=15 SEEDS=0,1, then RATIOS=5 SEEDS=0,1     ~1 h per ratio
#   T7C  Table 7 at 1:5 and 1:15: supervised, MT, MT + ALC soft               ~2.5 h (ran)
#   T2   Table 2: Pseudo-Label and SNTG (and VAT, VAT + EntMin, not in Table 2), 250 and 500
#        labels                                                                   ~4.5 h (ran)
#        ROWS=pi_model,pi_model_alc adds Table 2's last two rows                     ~1.8 h (ran)
#   T2B  Table 2 at 500 labels: supervised, Mean Teacher, MT + ALC, the baselines T2's rows are
#        read against (at 250 labels they are phase F's rows: the same config)  ~50 min (ran)
#   T8   Table 8 analogue: a GMaxPool only, b GAvgPool only, c no channel attention ~1 h (ran)
#        (d full ALC and e MT are phase F's rows of launch/alc_study.sh: the same config)
#   T9   Table 9 analogue: sample, gaussian, cosine, average, gmp_avg     ~27 min per row
#        (ran; gmp_avg 33 min; alc and mean_teacher are phase F's rows)
# Then: python launch/aggregate.py --root runs/paper_tables/PHASE --out docs/paper_tables/PHASE
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE="${1:?usage: paper_tables_study.sh T7|T7B|T7C|T2|T2B|T8|T9}"
ROOT="${ROOT:-runs/paper_tables}"
source launch/_study_protocol.sh
cpu_protocol "$FINAL_STEPS" "$FINAL_RAMP" "$FINAL_EVERY"  # Phase F's protocol, the same overrides.
CPU+=(--seeds "${SEEDS:-0,1,2}" --root "$ROOT/$PHASE")
if [[ -n "${GRID:-}" ]]; then CPU+=(--grid "$GRID"); fi
IMBALANCED=(--configs configs/fashion_mnist_imbalanced.py "${CPU[@]}")
case "$PHASE" in
  T7)  $SWEEP "${IMBALANCED[@]}" --ratios 10 \
         --rows "${ROWS:-supervised,mean_teacher,mean_teacher_alc_soft}" ;;
  T7B) T7B_ROWS=pseudo_label,mean_teacher_alc_hard,pi_model,pi_model_alc_hard,pi_model_alc_soft
       $SWEEP "${IMBALANCED[@]}" --ratios "${RATIOS:-10}" --rows "${ROWS:-$T7B_ROWS}" ;;
  T7C) $SWEEP "${IMBALANCED[@]}" --ratios "${RATIOS:-5,15}" \
         --rows "${ROWS:-supervised,mean_teacher,mean_teacher_alc_soft}" ;;
  T2)  $SWEEP --configs configs/fashion_mnist_250.py configs/fashion_mnist_500.py "${CPU[@]}" \
         --rows "${ROWS:-pseudo_label,sntg,vat,vat_entmin}" ;;
  T2B) $SWEEP --configs configs/fashion_mnist_500.py "${CPU[@]}" \
         --rows "${ROWS:-supervised,mean_teacher,mean_teacher_alc}" ;;
  T8)  $SWEEP --configs configs/ablation_fashion_mnist.py "${CPU[@]}" --rows "${ROWS:-a,b,c}" ;;
  T9)  $SWEEP --configs configs/similarity_fashion_mnist.py "${CPU[@]}" \
         --rows "${ROWS:-sample,gaussian,cosine,average,gmp_avg}" ;;
  *) echo "unknown phase $PHASE (T7 T7B T7C T2 T2B T8 T9)" >&2; exit 2 ;;
esac
