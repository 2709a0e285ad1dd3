"""Building blocks of the paper's experiment configs: method rows and per-data-set recipes.

Every table of Sec. 5 compares the same handful of methods ("rows") under one data recipe, so an
experiment config is `default` + `dataset_defaults(...)` + `apply_row(...)`. The rows of one
config file are chosen with its argument: `--config=configs/svhn_250.py:pi_model_alc`.
"""

from alc_jax import methods
from alc_jax.methods import alc as alc_method
from configs import default

# Short row name -> config overrides (dotted keys), for every method of the registry
# (alc_jax/methods/): 'ROW' alone, 'ROW_alc' with ALC, 'ROW_alc_hard' with the imbalance weights
# of Eq. 14 and, for a method with a target prediction (Π, Mean Teacher, SNTG, FixMatch:
# `has_targets`), 'ROW_alc_soft' with Eq. 15's (without one, soft is hard). Rows not listed in a
# config's ROWS still load: every config accepts every row, ROWS only says which ones the paper's
# table has.
METHOD_ROWS = {}
for _name in methods.NAMES:
  METHOD_ROWS[_name] = {'method': _name}
  METHOD_ROWS[f'{_name}_alc'] = {'method': _name, 'alc.enabled': True}
  for _imbalance in [w for w in alc_method.IMBALANCE_WEIGHTINGS if w != 'none']:  # Eq. 14, 15.
    if _imbalance == 'soft' and not methods.get(_name).has_targets:
      continue
    METHOD_ROWS[f'{_name}_alc_{_imbalance}'] = {'method': _name, 'alc.enabled': True,
                                                'alc.imbalance': _imbalance}

# Named readings of ALC (the switches of configs/default.py's alc section), chosen by a row suffix:
# `--config=configs/fashion_mnist_250.py:mean_teacher_alc@paper`. Each sets every switch, so a
# variant means the same whatever the defaults are. Rows without a suffix use the defaults.
PAPER_ALC = {'alc.attention_logits': 'dot', 'alc.pairwise_scale': 'batch',
             'alc.entropy_weight': 0.0, 'alc.head_training': 'eq13', 'alc.outputs': 'logits',
             'alc.include_self': True, 'alc.stop_gradient_similarity': False,
             'alc.learned_temperature': False}
ALC_VARIANTS = {
    # The literal reading: unscaled dot-product logits, Eq. 13 / B, p = logits, S trained by Eq. 13.
    'paper': PAPER_ALC,
    # The same with Eq. 13 as a mean over the B x B pairs (the scale the paper's w2 values fit).
    'pairs': {**PAPER_ALC, 'alc.pairwise_scale': 'pairs'},
    # Stabilised attention, each keeping S trained by Eq. 13: 1/sqrt(D) logits; cosine logits
    # with a fixed temperature; a row-entropy penalty (finite minimiser softmax(-d / beta)).
    'scaled': {**PAPER_ALC, 'alc.pairwise_scale': 'pairs', 'alc.attention_logits': 'scaled_dot'},
    'cosine': {**PAPER_ALC, 'alc.pairwise_scale': 'pairs', 'alc.attention_logits': 'cosine',
               'alc.temperature': 0.1},
    'entropy': {**PAPER_ALC, 'alc.pairwise_scale': 'pairs', 'alc.entropy_weight': 1.0},
    # The decoupled graph: Eq. 13 pulls each prediction towards its neighbours' teacher
    # predictions (labels where known) under a detached S; the head learns a same-class graph.
    'decoupled': {**PAPER_ALC, 'alc.pairwise_scale': 'pairs', 'alc.head_training': 'decoupled',
                  'alc.attention_logits': 'cosine', 'alc.temperature': 0.1, 'alc.outputs': 'probs'},
}

# The method rows of the balanced CNN-13 tables (Table 2, Fig. 7, Table 3), in the paper's order.
BALANCED_ROWS = ('supervised', 'pseudo_label', 'sntg', 'mean_teacher', 'mean_teacher_alc',
                 'pi_model', 'pi_model_alc')
# Tables 6 and 7 (labeled-imbalance), in the paper's order.
IMBALANCED_ROWS = ('supervised', 'pseudo_label', 'mean_teacher', 'mean_teacher_alc_hard',
                   'mean_teacher_alc_soft', 'pi_model', 'pi_model_alc_hard', 'pi_model_alc_soft')
IMBALANCE_RATIOS = (5, 10, 15)  # Largest-to-smallest class ratios 1:5, 1:10, 1:15 (Sec. 5.7).

# Per-data-set recipe of Sec. 5 (w1, w2, labeled batch, flip) plus our choices where it is silent.
DATASET_DEFAULTS = {
    # Sec. 5.2: w1 = 5, labeled batch 10; w2 = 1 (Sec. 5.1: "if no specific instructions").
    'fashion_mnist': {'dataset.name': 'fashion_mnist', 'consistency_weight': 5.0,
                      'alc.weight': 1.0, 'labeled_batch_size': 10, 'augment.flip': False},
    # Sec. 5.3: w1 = 100, w2 = 100, labeled batch 30. Flips and ZCA are our choice (silent in the
    # paper): the Mean Teacher TF reference, whose CNN-13 recipe (2-pixel translation, input
    # noise) we follow, flips CIFAR-10 and trains it on ZCA-whitened images.
    'cifar10': {'dataset.name': 'cifar10', 'consistency_weight': 100.0, 'alc.weight': 100.0,
                'labeled_batch_size': 30, 'augment.flip': True, 'dataset.zca': True,
                'vat.epsilon': 6.0},
    # Sec. 5.4: w1 = 5, labeled batch 3, w2 = 1. No flips (digits); VAT's eps = 2.5 is Miyato
    # et al.'s SVHN value (the paper only copies VAT numbers, Table 5).
    'svhn': {'dataset.name': 'svhn_cropped', 'consistency_weight': 5.0, 'alc.weight': 1.0,
             'labeled_batch_size': 3, 'augment.flip': False, 'vat.epsilon': 2.5},
    # Sec. 5.5: ResNet-18, batch 240 with 120 labeled. w2 = 1 (Sec. 5.1 default). Silent on w1:
    # we take 10, the Mean Teacher reference's ImageNet consistency weight. The host pipeline
    # already random-resize-crops and flips; the on-device flip and a 16-pixel translation (about
    # the 2-of-32 pixels of the small-image recipe) make the student's and teacher's views differ.
    'imagenet': {'dataset.name': 'imagenet_1pct', 'model.name': 'resnet18', 'batch_size': 240,
                 'labeled_batch_size': 120, 'consistency_weight': 10.0, 'alc.weight': 1.0,
                 'augment.flip': True, 'augment.translate': 16, 'weight_decay': 1e-4,
                 'model.bn_momentum': 0.9, 'eval_top5': True},  # torchvision's BN momentum.
}


def set_path(config, key, value):
  """config['a.b.c'] = value, for dotted keys."""
  node = config
  *parents, leaf = key.split('.')
  for part in parents:
    node = node[part]
  node[leaf] = value


def apply_row(config, row):
  """Applies METHOD_ROWS[row] (and ALC_VARIANTS[v] for 'ROW@v') to config in place; returns it."""
  row, _, variant = row.partition('@')
  if row not in METHOD_ROWS:
    raise ValueError(f'unknown row {row!r}; valid rows: {", ".join(METHOD_ROWS)}')
  if variant and variant not in ALC_VARIANTS:
    raise ValueError(f'unknown ALC variant {variant!r} in {row}@{variant}; valid variants: '
                     f'{", ".join(ALC_VARIANTS)}')
  if variant and not METHOD_ROWS[row].get('alc.enabled'):
    raise ValueError(f'row {row!r} has no ALC, so @{variant} would change nothing; use an ALC row '
                     f'such as mean_teacher_alc@{variant}')
  config.alc.enabled = False  # Rows without ALC turn it off explicitly.
  config.alc.imbalance = 'none'
  for key, value in {**METHOD_ROWS[row], **ALC_VARIANTS.get(variant, {})}.items():
    set_path(config, key, value)
  if methods.get(config.method).labeled_only:
    config.labeled_batch_size = 0  # Every row of its batches is labeled (config_lib refuses more).
  return config


def dataset_defaults(config, dataset):
  """Applies DATASET_DEFAULTS[dataset] (in place) and returns config."""
  if dataset not in DATASET_DEFAULTS:
    raise ValueError(f'unknown data set recipe {dataset!r}; choose one of {list(DATASET_DEFAULTS)}')
  for key, value in DATASET_DEFAULTS[dataset].items():
    set_path(config, key, value)
  return config


def experiment(dataset, num_labels, row, imbalance_ratio=1.0):
  """default (400 epochs, batch 100, lr 0.1 cosine, EMA 0.97) + data recipe + method row."""
  config = dataset_defaults(default.get_config(), dataset)
  config.dataset.num_labels = num_labels
  config.dataset.imbalance_ratio = float(imbalance_ratio)
  return apply_row(config, row)


def parse_row_ratio(arg, default_ratio=10):
  """'ROW,RATIO' -> (ROW, RATIO) for the imbalanced configs; a bare 'ROW' uses default_ratio."""
  row, _, ratio = arg.partition(',')
  try:
    ratio = float(ratio) if ratio else float(default_ratio)
  except ValueError:
    raise ValueError(f'expected ROW,RATIO (e.g. mean_teacher_alc_soft,10), got {arg!r}') from None
  if ratio < 1:
    raise ValueError(f'imbalance ratio must be >= 1, got {ratio} in {arg!r}')
  return row, ratio


def run_name(row, ratio=None):
  """Directory / table name of one row: 'ROW', or 'ROW_ratioR' for the imbalanced configs."""
  return row if ratio is None else f'{row}_ratio{float(ratio):g}'
