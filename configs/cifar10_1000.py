"""Fig. 7 (and Fig. 5): CIFAR-10 with 1000 labels (100 per class), CNN-13.

Paper (Sec. 5, 5.3): batch 100 of which 30 labeled, 400 epochs, lr 0.1 cosine, EMA 0.97,
w1 = 100, w2 = 100. Fig. 7 gives no numbers; Tables 8 (rows d, e) and 9 report Mean Teacher
80.55 +- 0.43 and Mean Teacher + ALC 83.48 +- 0.21 for this setting (launch/paper_numbers.py).
Silent in the paper (our choices): horizontal flips and ZCA whitening (the Mean Teacher TF
reference's CIFAR-10 recipe), 2-pixel translation, input noise 0.15, weight decay 2e-4.
"""

from configs import common

ROWS = common.BALANCED_ROWS


def get_config(row='mean_teacher_alc'):
  return common.experiment('cifar10', 1000, row)
