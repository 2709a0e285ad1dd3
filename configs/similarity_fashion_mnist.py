"""Table 9 analogue on Fashion-MNIST (not in the paper): ALC's attention against attention-free
similarities, Fashion-MNIST with 250 labels.

Rows as in configs/similarity_cifar10.py (mean_teacher, sample, gaussian, cosine, average,
gmp_avg, alc), with the recipe of configs/fashion_mnist_250.py (labeled batch 10, w1 = 5,
w2 = 1). The paper's Table 9 is CIFAR-10 only: compare orderings with it, not numbers. The ALC
rows use the shipped ALC reading (configs/default.py).
"""

from configs import similarity_cifar10

ROWS = similarity_cifar10.ROWS


def get_config(arg='alc'):
  return similarity_cifar10.similarity('fashion_mnist', 250, arg)
