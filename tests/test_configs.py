"""Every experiment config loads for every row and carries the paper's hyperparameters."""

import importlib
import os
import re

import pytest

from alc_jax import config_lib
from configs import common
from tests.conftest import ROOT

STEMS = ('fashion_mnist_250', 'fashion_mnist_500', 'cifar10_1000', 'svhn_250', 'svhn_350',
         'svhn_500', 'imagenet_1pct', 'wrn_cifar10_4000', 'wrn_svhn_1000', 'cifar10_imbalanced',
         'fashion_mnist_imbalanced', 'ablation_cifar10', 'ablation_svhn', 'similarity_cifar10',
         'fashion_mnist_cpu', 'fashion_mnist_100_cpu', 'ablation_fashion_mnist',
         'similarity_fashion_mnist')
# Ours, not the paper's: the CPU protocol and the Fashion-MNIST analogues of Tables 8 and 9.
NOT_IN_THE_PAPER = ('fashion_mnist_cpu', 'fashion_mnist_100_cpu', 'ablation_fashion_mnist',
                    'similarity_fashion_mnist')


def _args(stem):
  module = importlib.import_module(f'configs.{stem}')
  ratios = getattr(module, 'RATIOS', None)
  if ratios:
    return [f'{row},{ratio}' for row in module.ROWS for ratio in ratios]
  return list(module.ROWS)


CASES = [(stem, arg) for stem in STEMS for arg in _args(stem)]


def get(stem, arg=None):
  module = importlib.import_module(f'configs.{stem}')
  return module.get_config() if arg is None else module.get_config(arg)


@pytest.mark.parametrize('stem,arg', CASES + [(s, None) for s in STEMS])
def test_config_loads_and_validates(stem, arg):
  config_lib.validate(get(stem, arg))


def test_every_method_row_loads_everywhere():
  for row in common.METHOD_ROWS:
    config = get('svhn_500', row)
    config_lib.validate(config)
    assert config.alc.enabled == ('alc' in row)
    assert config.alc.imbalance == ({'hard', 'soft'} & set(row.split('_')) or {'none'}).pop()


@pytest.mark.parametrize('stem,arg', [('fashion_mnist_250', 'nope'), ('ablation_svhn', 'f'),
                                      ('similarity_cifar10', 'l2'),
                                      ('cifar10_imbalanced', 'mean_teacher,x'),
                                      ('cifar10_imbalanced', 'bogus,5')])
def test_bad_rows_list_the_valid_ones(stem, arg):
  with pytest.raises(ValueError, match='valid rows|ROW,RATIO'):
    get(stem, arg)


@pytest.mark.parametrize('stem,labels,w1,w2,labeled,flip,model', [
    ('fashion_mnist_250', 250, 5, 1, 10, False, 'cnn13'),
    ('fashion_mnist_500', 500, 5, 1, 10, False, 'cnn13'),
    ('cifar10_1000', 1000, 100, 100, 30, True, 'cnn13'),
    ('svhn_250', 250, 5, 1, 3, False, 'cnn13'),
    ('svhn_350', 350, 5, 1, 3, False, 'cnn13'),
    ('svhn_500', 500, 5, 1, 3, False, 'cnn13'),
    ('wrn_cifar10_4000', 4000, 100, 100, 30, True, 'wrn28_2'),
    ('wrn_svhn_1000', 1000, 5, 1, 3, False, 'wrn28_2'),
    ('cifar10_imbalanced', 3000, 100, 100, 30, True, 'cnn13'),
    ('fashion_mnist_imbalanced', 1000, 5, 1, 10, False, 'cnn13'),
    ('ablation_cifar10', 1000, 100, 100, 30, True, 'cnn13'),
    ('ablation_svhn', 250, 5, 1, 3, False, 'cnn13'),
    ('similarity_cifar10', 1000, 100, 100, 30, True, 'cnn13'),
])
def test_paper_hyperparameters(stem, labels, w1, w2, labeled, flip, model):
  config = get(stem)
  assert config.dataset.num_labels == labels
  assert config.consistency_weight == w1
  assert config.alc.weight == w2
  assert config.labeled_batch_size == labeled
  assert config.augment.flip == flip
  assert config.model.name == model
  # Sec. 5: batch 100, 400 epochs, cosine lr from 0.1, EMA 0.97, in every CNN-13 / WRN table.
  assert (config.batch_size, config.num_epochs, config.learning_rate, config.ema_decay) == (
      100, 400, 0.1, 0.97)


def test_imagenet():
  config = get('imagenet_1pct')
  assert (config.model.name, config.batch_size, config.labeled_batch_size) == ('resnet18', 240, 120)
  assert config.dataset.name == 'imagenet_1pct' and config.dataset.num_labels == 12811
  assert config.dataset.imbalance_ratio == 1 and config.num_runs == 1
  assert config.alc.enabled and config.alc.weight == 1 and config.ema_decay == 0.97
  config_lib.validate(config)


def test_imbalanced_rows_and_ratios():
  config = get('cifar10_imbalanced', 'pi_model_alc_hard,15')
  assert (config.method, config.alc.enabled, config.alc.imbalance) == ('pi_model', True, 'hard')
  assert config.dataset.imbalance_ratio == 15
  assert get('fashion_mnist_imbalanced', 'supervised').dataset.imbalance_ratio == 10
  assert not get('fashion_mnist_imbalanced', 'mean_teacher,5').alc.enabled


def test_ablation_rows():
  a, b, c, d, e = (get('ablation_svhn', r) for r in 'abcde')
  assert (a.alc.pooling, b.alc.pooling, c.alc.pooling, d.alc.pooling) == (
      'max', 'avg', 'max_avg', 'max_avg')
  assert not c.alc.channel_attention and d.alc.channel_attention and a.alc.channel_attention
  assert all(x.alc.enabled for x in (a, b, c, d)) and not e.alc.enabled
  assert e.method == 'mean_teacher' and get('ablation_cifar10', 'a').dataset.name == 'cifar10'
  analogue = get('ablation_fashion_mnist', 'b')
  assert (analogue.dataset.name, analogue.dataset.num_labels, analogue.alc.pooling) == (
      'fashion_mnist', 250, 'avg')


def test_similarity_rows():
  rows = {r: get('similarity_cifar10', r) for r in ('sample', 'gaussian', 'cosine', 'average',
                                                    'gmp_avg', 'alc', 'mean_teacher')}
  assert rows['sample'].alc.similarity == 'sample' and rows['cosine'].alc.similarity == 'cosine'
  assert rows['gaussian'].alc.similarity == 'gaussian'
  assert rows['gaussian'].alc.gaussian_temperature == 0.06
  assert rows['average'].alc.pooling == 'mean_of_max_and_avg'
  assert rows['gmp_avg'].alc.pooling == 'gmp_avg'
  assert rows['alc'].alc.similarity == 'attention' and rows['alc'].alc.pooling == 'max_avg'
  assert not rows['mean_teacher'].alc.enabled
  analogue = get('similarity_fashion_mnist', 'gaussian')
  assert (analogue.dataset.name, analogue.alc.similarity) == ('fashion_mnist', 'gaussian')


def test_paper_numbers_cover_the_config_rows():
  from launch import paper_numbers  # pylint: disable=g-import-not-at-top
  # cifar10_1000 is a figure (Fig. 5, 7); ours have no table numbers.
  missing = [(stem, arg) for stem, arg in CASES
             if stem not in ('cifar10_1000',) + NOT_IN_THE_PAPER
             and paper_numbers.lookup(stem, common.run_name(*common.parse_row_ratio(arg))
                                      if ',' in arg else arg) is None]
  assert not missing
  assert paper_numbers.lookup('svhn_250', 'sntg').mean is None
  assert paper_numbers.lookup('cifar10_imbalanced', 'mean_teacher_alc_soft_ratio15').mean == 86.69
  assert paper_numbers.lookup('imagenet_1pct', 'mean_teacher_alc').top5 == 34.77


PAPER_TEXT = os.path.join(os.path.dirname(ROOT), 'shared', 'paper', 'alc-paper.md')


def _paper_table(text, number):
  """The decimals of Table `number`'s rows in the paper's text, in reading order: the block of
  lines after its caption (up to a blank line), except lines that begin with white space (column
  headers, and Table 6's stray line of its text extraction)."""
  after_caption = text.split(f'**Table {number}**', 1)[1].split('\n', 1)[1]
  lines = after_caption.lstrip('\n').split('\n\n', 1)[0].splitlines()
  return [float(x) for line in lines if line[:1].strip() for x in re.findall(r'\d+\.\d+', line)]


def test_paper_numbers_are_the_papers_tables():
  """Every number launch/paper_numbers.py transcribed, against the paper's text, table by table
  (rows and columns in the paper's order)."""
  from launch import paper_numbers as p  # pylint: disable=g-import-not-at-top
  if not os.path.exists(PAPER_TEXT):
    pytest.skip(f'the paper is not at {PAPER_TEXT} (../shared beside the clone)')
  with open(PAPER_TEXT, encoding='utf-8') as f:
    text = f.read()
  ours = {
      2: [x for cols in p.TABLE2.values() for mean_std in cols.values() for x in mean_std],
      3: [x for cols in p.TABLE3.values() for mean_std in cols.values() for x in mean_std],
      4: [x for top1_top5 in p.TABLE4.values() for x in top1_top5],
      5: [x for cols in p.TABLE5.values() for mean_std in cols.values() for x in mean_std],
      6: [x for values in p.TABLE6.values() for x in values],
      7: [x for values in p.TABLE7.values() for x in values],
      # Table 8's columns are SVHN then CIFAR-10, as in the paper.
      8: [x for cols in p.TABLE8.values() for mean_std in cols.values() for x in mean_std],
      9: [x for mean_std in p.TABLE9.values() for x in mean_std],
  }
  for number, values in ours.items():
    assert values == _paper_table(text, number), f'Table {number}'


def test_alc_variants_set_every_switch_whatever_the_defaults():
  for variant, switches in common.ALC_VARIANTS.items():
    config = get('fashion_mnist_250', f'pi_model_alc@{variant}')
    config_lib.validate(config)
    assert config.method == 'pi_model' and config.alc.enabled
    for key, value in switches.items():
      section, field = key.split('.')
      assert config[section][field] == value, (variant, key)
    # A variant means the same thing whatever the defaults: flip every default, apply again.
    flipped = get('fashion_mnist_250', 'mean_teacher_alc')
    flipped.alc.attention_logits, flipped.alc.pairwise_scale = 'scaled_dot', 'pairs_classes'
    flipped.alc.head_training, flipped.alc.entropy_weight = 'decoupled', 3.0
    common.apply_row(flipped, f'mean_teacher_alc@{variant}')
    assert {k: flipped.alc[k.split('.')[1]] for k in switches} == {
        k: config.alc[k.split('.')[1]] for k in switches}
  assert set(common.PAPER_ALC.items()) <= set(common.ALC_VARIANTS['paper'].items())


def test_shipped_alc_defaults_are_the_decoupled_variant():
  """configs/default.py and docs/results.md say the defaults are `@decoupled`: keep them equal,
  so the main job's row and the study's `mean_teacher_alc@decoupled` runs are one config."""
  for name in ('fashion_mnist_250', 'fashion_mnist_cpu'):
    shipped = get(name, 'mean_teacher_alc')
    assert shipped.to_dict() == get(name, 'mean_teacher_alc@decoupled').to_dict(), name
    assert shipped.to_dict() != get(name, 'mean_teacher_alc@cosine').to_dict(), name


@pytest.mark.parametrize('arg,match', [('mean_teacher_alc@stable2', 'valid variants'),
                                       ('mean_teacher@paper', 'has no ALC')])
def test_bad_alc_variants_are_rejected(arg, match):
  with pytest.raises(ValueError, match=match):
    get('fashion_mnist_250', arg)
