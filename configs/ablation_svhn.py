"""Table 8, column "SVHN": ablation of ALC's pooling and attention on SVHN, 250 labels.

Argument a..e as in configs/ablation_cifar10.py (a GMaxPool only, b GAvgPool only, c sample
attention without channel attention, d full ALC, e Mean Teacher), with the recipe of
configs/svhn_250.py (labeled batch 3, w1 = 5, w2 = 1, 400 epochs, lr 0.1 cosine, EMA 0.97).
Rows d and e are Table 3's Mean Teacher + ALC and Mean Teacher at 250 labels.
"""

from configs import ablation_cifar10

ROWS = ablation_cifar10.ROWS


def get_config(arg='d'):
  return ablation_cifar10.ablation('svhn', 250, arg)
