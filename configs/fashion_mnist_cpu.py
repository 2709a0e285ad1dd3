"""The README's main job and the CPU study's protocol: real Fashion-MNIST, 250 labels, CPU-sized.

`bash launch/quickstart.sh` trains the default row (Mean Teacher + ALC with the shipped ALC
defaults, configs/default.py) for 3 seeds side by side; `launch/alc_study.sh D` trains every row
of ROWS with exactly this config, which is where the comparison the main job prints comes from
(docs/results.md, "ALC on this CPU").

Same recipe as configs/fashion_mnist_250.py (Table 2: batch 100 with 10 labeled, w1 = 5, w2 = 1,
EMA 0.97, cosine lr from 0.1) except, to train in minutes on a 2-core CPU: CNN-13 narrowed to 1/16
of its channels (8-16-32 instead of 128-256-512), 1200 steps (2 epochs) with the cosine annealing
and a half-epoch ramp-up of w1 and w2 over that budget. Expect accuracies well below the paper's.

Rows: `--config=configs/fashion_mnist_cpu.py:ROW`, any row of configs/common.METHOD_ROWS, with an
ALC variant after '@' (e.g. `mean_teacher_alc@paper`, the paper's literal reading).
"""

from configs import common

ROWS = ('supervised', 'mean_teacher', 'mean_teacher_alc')


def get_config(row='mean_teacher_alc'):
  config = common.experiment('fashion_mnist', 250, row)
  config.num_runs = 3  # Seeds 0-2 side by side (on the CPU a loop inside one jitted step).
  config.model.width = 0.0625
  config.num_train_steps = 1200  # 2 epochs: ~6 min for the 3 runs on an idle 2-core CPU.
  config.consistency_rampup_epochs = 0.5  # 300 steps.
  config.eval_every_steps = 300
  config.checkpoint_every_steps = 300
  config.log_every_steps = 50
  config.eval_batch_size = 1000
  config.progress_every_seconds = 20.0
  return config
