"""Table 2, column "500": Fashion-MNIST with 500 labels (50 per class), CNN-13.

Same recipe as configs/fashion_mnist_250.py (Sec. 5.2: labeled batch 10, w1 = 5, w2 = 1, batch
100, 400 epochs, lr 0.1 cosine, EMA 0.97); only the number of labels differs.
"""

from configs import common

ROWS = common.BALANCED_ROWS


def get_config(row='mean_teacher_alc'):
  return common.experiment('fashion_mnist', 500, row)
