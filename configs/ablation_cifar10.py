"""Table 8, column "CIFAR-10": ablation of ALC's pooling and attention on CIFAR-10, 1000 labels.

Argument a..e (Sec. 5.8), all on Mean Teacher with the recipe of configs/cifar10_1000.py
(labeled batch 30, w1 = 100, w2 = 100, 400 epochs, lr 0.1 cosine, EMA 0.97):
  a  ALC with GMaxPool only         (alc.pooling = 'max')
  b  ALC with GAvgPool only         (alc.pooling = 'avg')
  c  ALC with sample attention only (alc.channel_attention = False)
  d  full ALC                       (GMaxPool + GAvgPool, sample + channel attention)
  e  Mean Teacher without ALC
Silent in the paper (our choice): rows a and b keep the channel attention, and "GMaxPool only"
compares GMaxPool features with themselves in Eq. 12 (likewise GAvgPool).
"""

from configs import common

ROWS = ('a', 'b', 'c', 'd', 'e')
ABLATIONS = {
    'a': ('mean_teacher_alc', {'alc.pooling': 'max'}),
    'b': ('mean_teacher_alc', {'alc.pooling': 'avg'}),
    'c': ('mean_teacher_alc', {'alc.channel_attention': False}),
    'd': ('mean_teacher_alc', {}),
    'e': ('mean_teacher', {}),
}


def ablation(dataset, num_labels, arg):
  """The Table 8 row `arg` on a data recipe (shared with configs/ablation_svhn.py)."""
  if arg not in ABLATIONS:
    raise ValueError(f'unknown ablation {arg!r}; valid rows: {", ".join(ABLATIONS)}')
  row, overrides = ABLATIONS[arg]
  config = common.experiment(dataset, num_labels, row)
  for key, value in overrides.items():
    common.set_path(config, key, value)
  return config


def get_config(arg='d'):
  return ablation('cifar10', 1000, arg)
