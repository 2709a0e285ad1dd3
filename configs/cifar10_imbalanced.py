"""Table 6: CIFAR-10 with 3000 labels drawn with class imbalance 1:5, 1:10 or 1:15, CNN-13.

Argument 'ROW,RATIO', e.g. `--config=configs/cifar10_imbalanced.py:mean_teacher_alc_soft,10`
(a bare ROW uses ratio 10). Paper (Sec. 5.7): 3000 labeled images whose largest-to-smallest class
ratio is 5, 10 or 15, the rest of the training set unlabeled; "hyper-parameter settings are the
same with Section 5.3": batch 100 of which 30 labeled, w1 = 100, w2 = 100, 400 epochs, lr 0.1
cosine, EMA 0.97. ALC rows use the hard (Eq. 14) or soft (Eq. 15) sample weights.
Silent in the paper (our choices): the per-class counts follow a geometric profile between the
largest and smallest class (alc_jax/data/splits.py); flips and ZCA as configs/cifar10_1000.py.
The labeled batches are drawn uniformly from the labeled set, so they are imbalanced too.
"""

from configs import common

ROWS = common.IMBALANCED_ROWS
RATIOS = common.IMBALANCE_RATIOS


def get_config(arg='mean_teacher_alc_soft,10'):
  row, ratio = common.parse_row_ratio(arg)
  return common.experiment('cifar10', 3000, row, imbalance_ratio=ratio)
