"""Table 9: ALC's attention against attention-free similarities, CIFAR-10 with 1000 labels.

All rows are Mean Teacher with the recipe of configs/cifar10_1000.py (labeled batch 30, w1 = 100,
w2 = 100, 400 epochs, lr 0.1 cosine, EMA 0.97); the label-consistency term uses S from:
  mean_teacher  no ALC term
  sample        Eq. 16, softmax of X_i . X_j       (alc.similarity = 'sample')
  gaussian      Eq. 17, exp(-||X_i - X_j||^2 / t), t = 0.06 as in the paper
  cosine        Eq. 18                              (alc.similarity = 'cosine')
  average       mean of the GMaxPool-only and GAvgPool-only attention S
                (alc.pooling = 'mean_of_max_and_avg')
  gmp_avg       generalized max pooling (Murray & Perronnin 2014) with GAvgPool
  alc           the full ALC (Eq. 7-12)
Silent in the paper (our choices): X of Eq. 16-18 is the globally average-pooled last feature map;
the Gaussian uses L2-normalised X (with raw features t = 0.06 underflows, see
alc_jax/attention.py); generalized max pooling's ridge is 1.
"""

from configs import common

ROWS = ('mean_teacher', 'sample', 'gaussian', 'cosine', 'average', 'gmp_avg', 'alc')
SIMILARITIES = {
    'mean_teacher': ('mean_teacher', {}),
    'sample': ('mean_teacher_alc', {'alc.similarity': 'sample', 'alc.channel_attention': False}),
    'gaussian': ('mean_teacher_alc', {'alc.similarity': 'gaussian',
                                      'alc.gaussian_temperature': 0.06,
                                      'alc.channel_attention': False}),
    'cosine': ('mean_teacher_alc', {'alc.similarity': 'cosine', 'alc.channel_attention': False}),
    'average': ('mean_teacher_alc', {'alc.pooling': 'mean_of_max_and_avg'}),
    'gmp_avg': ('mean_teacher_alc', {'alc.pooling': 'gmp_avg'}),
    'alc': ('mean_teacher_alc', {}),
}


def similarity(dataset, num_labels, arg):
  """The Table 9 row `arg` on a data recipe (shared with configs/similarity_fashion_mnist.py)."""
  if arg not in SIMILARITIES:
    raise ValueError(f'unknown row {arg!r}; valid rows: {", ".join(SIMILARITIES)}')
  row, overrides = SIMILARITIES[arg]
  config = common.experiment(dataset, num_labels, row)
  for key, value in overrides.items():
    common.set_path(config, key, value)
  return config


def get_config(arg='alc'):
  return similarity('cifar10', 1000, arg)
