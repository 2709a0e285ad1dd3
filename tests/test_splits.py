"""Tests of the label splits (alc_jax/data/splits.py)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alc_jax.data import splits
from alc_jax.data.splits import class_counts, imbalanced_class_counts, make_label_split


def _fashion_like_labels(per_class=6000, num_classes=10, seed=0):
  """Shuffled labels with per_class examples of each class, like Fashion-MNIST's training set."""
  labels = np.repeat(np.arange(num_classes), per_class)
  return np.random.default_rng(seed).permutation(labels)


@pytest.fixture(scope='module')
def labels():
  return _fashion_like_labels()


def _check_partition(split, n):
  for part in (split.labeled, split.unlabeled, split.validation):
    assert part.dtype == np.int64
    assert np.all(np.diff(part) > 0)  # Sorted and without duplicates.
  everything = np.concatenate([split.labeled, split.unlabeled, split.validation])
  np.testing.assert_array_equal(np.sort(everything), np.arange(n))


@pytest.mark.parametrize('per_class', [25, 50])
def test_balanced_counts_exact(labels, per_class):
  split = make_label_split(labels, 10, 10 * per_class, seed=3)
  np.testing.assert_array_equal(class_counts(labels[split.labeled], 10), [per_class] * 10)
  _check_partition(split, len(labels))
  assert split.validation.size == 0


@pytest.mark.parametrize('num_labels,ratio', [(1000, 5), (1000, 10), (1000, 15), (3000, 5),
                                              (3000, 10), (3000, 15)])
def test_imbalanced_counts(labels, num_labels, ratio):
  counts = imbalanced_class_counts(num_labels, 10, ratio)
  assert counts.sum() == num_labels
  assert np.all(np.diff(counts) <= 0)
  assert counts[0] / counts[-1] == pytest.approx(ratio, rel=0.02)
  split = make_label_split(labels, 10, num_labels, imbalance_ratio=ratio, seed=1)
  got = class_counts(labels[split.labeled], 10)
  assert got.sum() == num_labels
  np.testing.assert_array_equal(np.sort(got)[::-1], counts)
  assert got.max() / got.min() == pytest.approx(ratio, rel=0.02)
  _check_partition(split, len(labels))


def test_documented_schedules():
  # The schedules written in the module docstring.
  assert imbalanced_class_counts(1000, 10, 10).tolist() == [
      240, 191, 148, 114, 88, 69, 53, 41, 32, 24]
  assert imbalanced_class_counts(3000, 10, 15).tolist() == [
      825, 605, 448, 332, 245, 182, 134, 100, 74, 55]
  for n, r in [(1000, 5), (1000, 10), (1000, 15), (3000, 5), (3000, 10), (3000, 15)]:
    assert str(imbalanced_class_counts(n, 10, r).tolist()) in splits.__doc__


def test_largest_class_is_seeded(labels):
  largest = {int(np.argmax(class_counts(labels[make_label_split(
      labels, 10, 1000, imbalance_ratio=10, seed=s).labeled], 10))) for s in range(8)}
  assert len(largest) > 1


def test_balanced_and_two_class_schedules():
  np.testing.assert_array_equal(imbalanced_class_counts(250, 10, 1), [25] * 10)
  np.testing.assert_array_equal(imbalanced_class_counts(100, 2, 3), [75, 25])


def test_validation_holdout(labels):
  split = make_label_split(labels, 10, 250, validation_size=5000, seed=2)
  _check_partition(split, len(labels))
  assert split.validation.size == 5000
  assert split.labeled.size == 250
  # Stratified: 500 per class for equal class frequencies.
  np.testing.assert_array_equal(class_counts(labels[split.validation], 10), [500] * 10)
  # The validation set does not depend on how many labels are drawn after it.
  other = make_label_split(labels, 10, 500, validation_size=5000, seed=2)
  np.testing.assert_array_equal(split.validation, other.validation)
  assert set(split.labeled) <= set(other.labeled)


def test_seeds(labels):
  a = make_label_split(labels, 10, 250, seed=7)
  b = make_label_split(labels, 10, 250, seed=7)
  c = make_label_split(labels, 10, 250, seed=8)
  np.testing.assert_array_equal(a.labeled, b.labeled)
  np.testing.assert_array_equal(a.unlabeled, b.unlabeled)
  assert not np.array_equal(a.labeled, c.labeled)


def test_same_split_in_another_process(labels):
  # Load the module by file path: the subprocess should not depend on the rest of the package.
  path = Path(splits.__file__).resolve()
  code = f"""
import importlib.util, numpy as np
spec = importlib.util.spec_from_file_location('splits_copy', {str(path)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 6000))
s = m.make_label_split(labels, 10, 1000, imbalance_ratio=15, validation_size=1000, seed=11)
print(','.join(map(str, s.labeled)))
print(','.join(map(str, s.validation)))
"""
  out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                       text=True).stdout.split()
  split = make_label_split(labels, 10, 1000, imbalance_ratio=15, validation_size=1000, seed=11)
  np.testing.assert_array_equal(np.array(out[0].split(','), np.int64), split.labeled)
  np.testing.assert_array_equal(np.array(out[1].split(','), np.int64), split.validation)


def test_errors(labels):
  small = np.repeat(np.arange(3), [10, 40, 40])
  with pytest.raises(ValueError, match='class 0 needs 20 labeled examples but has only 10'):
    make_label_split(small, 3, 60)
  with pytest.raises(ValueError, match='must be >= 1'):
    imbalanced_class_counts(1000, 10, 0.5)
  with pytest.raises(ValueError, match='must be >= 1'):
    make_label_split(labels, 10, 1000, imbalance_ratio=0.2)
  with pytest.raises(ValueError, match='divisible by num_classes'):
    make_label_split(labels, 10, 255)
  with pytest.raises(ValueError, match='positive'):
    make_label_split(labels, 10, 0)
  with pytest.raises(ValueError, match='exceeds the training set size'):
    make_label_split(labels, 10, len(labels) + 10)
  with pytest.raises(ValueError, match='validation_size'):
    make_label_split(labels, 10, 250, validation_size=len(labels))
  with pytest.raises(ValueError, match='too few|can only reach'):
    imbalanced_class_counts(20, 10, 15)
