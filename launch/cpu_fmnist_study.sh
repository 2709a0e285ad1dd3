#!/usr/bin/env bash
# The measured CPU study of docs/results.md: real Fashion-MNIST, 250 and 500 labels, 3 seeds per
# method trained side by side (one job each), 5 methods, on a 2-core CPU. CPU-sized: CNN-13 at a
# sixteenth of its width (8-16-32 channels) and 300 steps (half an epoch) instead of 400 epochs.
set -euo pipefail
ROOT="${ROOT:-runs/cpu_fmnist}"
cd "$(dirname "$0")/.."
.venv/bin/python launch/sweep.py --configs configs/fashion_mnist_250.py,configs/fashion_mnist_500.py \
  --rows supervised,pi_model,pi_model_alc,mean_teacher,mean_teacher_alc --seeds 0,1,2 \
  --num-runs-per-job 3 --root "$ROOT" \
  --override config.model.width=0.0625 --override config.num_train_steps=300 \
  --override config.consistency_rampup_epochs=0.25 --override config.eval_every_steps=150 \
  --override config.checkpoint_every_steps=150 --override config.log_every_steps=50 "$@"
