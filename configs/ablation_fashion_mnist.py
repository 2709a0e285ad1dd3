"""Table 8 analogue on Fashion-MNIST (not in the paper): ALC's pooling and attention ablated on
Fashion-MNIST with 250 labels, the one data set this project can train offline.

Argument a..e as in configs/ablation_cifar10.py (a GMaxPool only, b GAvgPool only, c sample
attention without channel attention, d full ALC, e Mean Teacher), with the recipe of
configs/fashion_mnist_250.py (labeled batch 10, w1 = 5, w2 = 1). The paper's Table 8 has CIFAR-10
and SVHN columns only: compare signs and orderings with them, not numbers. The ALC rows use the
shipped ALC reading (configs/default.py), a stabiliser the paper's literal reading needs
(docs/results.md, "ALC on this CPU").
"""

from configs import ablation_cifar10

ROWS = ablation_cifar10.ROWS


def get_config(arg='d'):
  return ablation_cifar10.ablation('fashion_mnist', 250, arg)
