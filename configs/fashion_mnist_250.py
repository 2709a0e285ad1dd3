"""Table 2, column "250": Fashion-MNIST with 250 labels (25 per class), CNN-13.

Paper (Sec. 5, 5.2): SGD, batch 100 of which 10 labeled, 400 epochs, cosine lr from 0.1, EMA
alpha = 0.97, w1 = 5, w2 = 1 (Sec. 5.1's default), all 60,000 training images as unlabeled data,
the 10,000 test images for testing, 5 runs with different split seeds.
Silent in the paper (our choices, see configs/default.py): no flips, 2-pixel translation and
Gaussian input noise 0.15 (Mean Teacher reference recipe), weight decay 2e-4, 5-epoch ramp-up.

Rows: `--config=configs/fashion_mnist_250.py:ROW`, ROW one of ROWS (any row of
configs/common.METHOD_ROWS loads).
"""

from configs import common

ROWS = common.BALANCED_ROWS


def get_config(row='mean_teacher_alc'):
  return common.experiment('fashion_mnist', 250, row)
