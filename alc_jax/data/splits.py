"""Labeled / unlabeled / validation splits of a training set (Sec. 5.2-5.7 of the paper).

Balanced splits take the same number of labels from every class: 25 or 50 per class on
Fashion-MNIST (Sec. 5.2), 100 on CIFAR-10 (Sec. 5.3), 25/50/100 on SVHN (Sec. 5.4). Everything
left over is the unlabeled set, whose labels the trainer never sees.

Imbalanced splits (Sec. 5.7: 1000 Fashion-MNIST and 3000 CIFAR-10 labels with "maximum imbalance
ratios" 1:5, 1:10, 1:15). The paper does not give the per-class counts, so we use a geometric
(exponential) profile, the usual long-tail schedule: the class ranked c = 0..K-1 gets a count
proportional to ratio^(-c / (K - 1)), scaled to num_labels. Integers are then chosen so that the
largest / smallest count is as close to the ratio as integers allow (usually exact): the two end
counts are picked near the profile with max/min closest to the ratio, the K-2 middle counts are
the profile rescaled to the remaining total and rounded by largest remainder. The result must sum
exactly to num_labels and keep max/min within 2% of the ratio. Which class gets which rank is a
seeded permutation of the classes (make_label_split), so the largest class is not always class 0.

Schedules for K = 10 (rank 0 = largest class):

  Fashion-MNIST, 1000 labels
    1:5   [195, 165, 138, 115, 96, 81, 68, 56, 47, 39]         (max/min 5)
    1:10  [240, 191, 148, 114, 88, 69, 53, 41, 32, 24]         (max/min 10)
    1:15  [270, 203, 151, 111, 83, 61, 45, 33, 25, 18]         (max/min 15)
  CIFAR-10, 3000 labels
    1:5   [590, 493, 413, 345, 288, 241, 202, 169, 141, 118]   (max/min 5)
    1:10  [730, 570, 441, 341, 264, 205, 158, 123, 95, 73]     (max/min 10)
    1:15  [825, 605, 448, 332, 245, 182, 134, 100, 74, 55]     (max/min 15)

A data set that says itself which images are labeled (a labeled/ folder, x_labeled) keeps its
labeled set as it is, uneven class counts included (given_label_split): all of it by default, or
a class-stratified subset for learning curves; its labeled images left out of the subset join the
unlabeled set, their labels hidden.

Determinism: every random choice comes from np.random.default_rng(seed). PCG64 gives the same
bits on every platform and numpy's permutation has not changed its algorithm, so a seed names
the same split on every machine and in every process of a multi-host run.
"""

import dataclasses

import numpy as np

# Largest relative error of max/min against the requested ratio that rounding may leave.
_RATIO_TOLERANCE = 0.02


@dataclasses.dataclass(frozen=True)
class LabelSplit:
  """Indices into the training set.

  Attributes:
    labeled: sorted int64 indices whose labels the trainer may use.
    unlabeled: sorted int64 indices of the rest of the training set (minus validation); their
      labels are hidden from the trainer.
    validation: sorted int64 held-out indices (possibly empty), disjoint from both.
  """
  labeled: np.ndarray
  unlabeled: np.ndarray
  validation: np.ndarray


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """Number of examples of each class, shape (num_classes,)."""
  return np.bincount(np.asarray(labels).astype(np.int64), minlength=num_classes)


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
  """Integers proportional to weights summing exactly to total (Hamilton's method)."""
  exact = np.asarray(weights, np.float64) / np.sum(weights) * total
  counts = np.floor(exact).astype(np.int64)
  # Stable sort: ties go to the earlier (larger) class, so the result does not depend on sort
  # implementation details.
  order = np.argsort(-(exact - counts), kind='stable')
  counts[order[:total - counts.sum()]] += 1
  return counts


def imbalanced_class_counts(num_labels: int, num_classes: int, ratio: float) -> np.ndarray:
  """Per-class label counts of an (im)balanced split, largest first.

  Args:
    num_labels: total number of labels; the counts sum exactly to it.
    num_classes: K.
    ratio: largest / smallest count; 1 gives a balanced split.

  Returns:
    int64 array (K,), non-increasing: the geometric schedule of the module docstring.

  Raises:
    ValueError: ratio < 1; a balanced split whose num_labels is not divisible by num_classes; too
      few labels to realise the ratio within 2% with at least one label per class.
  """
  if num_classes < 1:
    raise ValueError(f'num_classes must be >= 1, got {num_classes}')
  if num_labels < num_classes:
    raise ValueError(f'need at least one label per class: num_labels={num_labels} < '
                     f'num_classes={num_classes}')
  if ratio < 1:
    raise ValueError(f'imbalance ratio is largest/smallest class, must be >= 1, got {ratio}')
  if ratio == 1 or num_classes == 1:
    if ratio != 1:
      raise ValueError(f'a single class cannot have imbalance ratio {ratio}')
    if num_labels % num_classes:
      raise ValueError(f'a balanced split needs num_labels divisible by num_classes: '
                       f'{num_labels} labels over {num_classes} classes')
    return np.full(num_classes, num_labels // num_classes, np.int64)

  profile = float(ratio) ** (-np.arange(num_classes) / (num_classes - 1))
  target = profile / profile.sum() * num_labels
  if num_classes == 2:
    smallest = max(1, int(round(num_labels / (1 + ratio))))
    candidates = [np.array([num_labels - smallest, smallest], np.int64)]
  else:
    # Search the end counts near the profile; the middle is the profile fitted to what is left.
    candidates = []
    for smallest in range(max(1, int(np.floor(target[-1])) - 1), int(np.ceil(target[-1])) + 2):
      for largest in sorted({int(np.floor(ratio * smallest)), int(np.ceil(ratio * smallest))}):
        rest = num_labels - smallest - largest
        if rest < 0:
          continue
        middle = _largest_remainder(target[1:-1], rest)
        if middle.min() >= smallest and middle.max() <= largest:
          candidates.append(np.concatenate([[largest], middle, [smallest]]))
  # Closest ratio first, then closest to the profile; the tuple order makes ties deterministic.
  scored = [(abs(c[0] / c[-1] - ratio), float(np.abs(c - target).sum()), i)
            for i, c in enumerate(candidates) if c[-1] >= 1]
  if not scored:
    raise ValueError(f'{num_labels} labels are too few for imbalance ratio {ratio} over '
                     f'{num_classes} classes')
  counts = np.sort(candidates[min(scored)[2]])[::-1].copy()
  achieved = counts[0] / counts[-1]
  if abs(achieved - ratio) > _RATIO_TOLERANCE * ratio:
    raise ValueError(f'{num_labels} labels over {num_classes} classes can only reach imbalance '
                     f'ratio {achieved:.3f}, not {ratio} (tolerance 2%); use more labels')
  assert counts.sum() == num_labels
  return counts


def make_label_split(labels: np.ndarray,
                     num_classes: int,
                     num_labels: int,
                     imbalance_ratio: float = 1.0,
                     validation_size: int = 0,
                     seed: int = 0) -> LabelSplit:
  """Draws a labeled / unlabeled / validation split of a training set.

  Each class's examples are shuffled once with the seeded generator; the validation examples are
  the first ones of each class (stratified: per-class shares proportional to class frequency,
  rounded by largest remainder), the labeled examples the next ones. So with the same seed a
  25-per-class split is contained in the 50-per-class split, and the validation set does not
  depend on num_labels.

  Args:
    labels: (N,) integer labels of the whole training set.
    num_classes: K; labels must lie in [0, K).
    num_labels: size of the labeled set (e.g. 250 = 25 per class on Fashion-MNIST).
    imbalance_ratio: largest / smallest labeled class (Sec. 5.7: 5, 10, 15); 1 = balanced.
    validation_size: examples held out of both the labeled and the unlabeled set.
    seed: non-negative split seed; the same seed gives the same split on any machine.

  Returns:
    A LabelSplit of sorted int64 indices into labels; the three sets are disjoint and cover
    range(N).

  Raises:
    ValueError: bad sizes, labels out of range, or a class with fewer examples than requested.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f'labels must be 1-D, got shape {labels.shape}')
  n = len(labels)
  if num_labels <= 0:
    raise ValueError(f'num_labels must be positive, got {num_labels}')
  if num_labels > n:
    raise ValueError(f'num_labels={num_labels} exceeds the training set size {n}')
  if not 0 <= validation_size <= n - num_labels:
    raise ValueError(f'validation_size={validation_size} must be in [0, {n - num_labels}] '
                     f'(training set {n}, num_labels {num_labels})')
  if n and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f'labels must lie in [0, {num_classes}), got range '
                     f'[{labels.min()}, {labels.max()}]')

  per_rank = imbalanced_class_counts(num_labels, num_classes, imbalance_ratio)
  rng = np.random.default_rng(seed)
  # Drawn even when balanced so that the per-class shuffles below use the same stream either way.
  class_of_rank = rng.permutation(num_classes)
  wanted = np.empty(num_classes, np.int64)
  wanted[class_of_rank] = per_rank

  available = class_counts(labels, num_classes)
  held_out = (_largest_remainder(available, validation_size) if validation_size
              else np.zeros(num_classes, np.int64))
  short = [(c, wanted[c], available[c] - held_out[c])
           for c in range(num_classes) if wanted[c] > available[c] - held_out[c]]
  if short:
    c, want, have = short[0]
    raise ValueError(f'class {c} needs {want} labeled examples but has only {have} '
                     f'(after holding out {held_out[c]} for validation); '
                     f'{len(short)} class(es) short in total')

  return _draw_split(labels, num_classes, held_out, wanted, rng)


def _draw_split(labels, num_classes, held_out, wanted, rng) -> LabelSplit:
  """Per class, in class order: one permutation of its members, the first held_out[c] for
  validation, the next wanted[c] labeled; every other image is unlabeled."""
  labeled, validation = [], []
  for c in range(num_classes):
    members = rng.permutation(np.flatnonzero(labels == c))
    validation.append(members[:held_out[c]])
    labeled.append(members[held_out[c]:held_out[c] + wanted[c]])
  labeled = np.sort(np.concatenate(labeled)).astype(np.int64)
  validation = np.sort(np.concatenate(validation)).astype(np.int64)
  rest = np.ones(len(labels), bool)
  rest[labeled] = False
  rest[validation] = False
  return LabelSplit(labeled=labeled, unlabeled=np.flatnonzero(rest).astype(np.int64),
                    validation=validation)


ALL_LABELS = -1  # config.dataset.num_labels: every label a data set gives.


def given_label_split(labels: np.ndarray,
                      num_classes: int,
                      num_labels: int = ALL_LABELS,
                      validation_size: int = 0,
                      seed: int = 0) -> LabelSplit:
  """The split of a training set whose unlabeled images carry label -1 (a given labeled set).

  Each class's labeled images are shuffled once with the seeded generator; the validation images
  are the first ones of each class (shares proportional to the class counts, rounded by largest
  remainder, at least one labeled image left per class), the labeled subset the next ones. The
  subset keeps one image per class and shares the rest in proportion to each class's further
  images (largest remainder), so its class shares follow the labeled set's.

  Args:
    labels: (N,) labels of the training set, -1 on the unlabeled images.
    num_classes: K; every class must have a labeled image.
    num_labels: size of the labeled subset, K <= num_labels <= the labeled images left after
      validation; ALL_LABELS (-1) keeps all of them.
    validation_size: labeled images held out of both sets.
    seed: non-negative split seed (only used for a subset or a validation hold-out).

  Returns:
    A LabelSplit of sorted int64 indices; the unlabeled set is the given unlabeled images plus the
    labeled ones the subset leaves out.

  Raises:
    ValueError: sizes out of range (the message gives the counts).
  """
  labels = np.asarray(labels)
  given = class_counts(labels[labels >= 0], num_classes)
  if given.min() < 1:
    raise ValueError(f'class {int(np.argmin(given))} has no labeled image; every class needs one')
  if not 0 <= validation_size <= given.sum() - num_classes:
    raise ValueError(f'validation_size={validation_size} must leave at least one labeled image '
                     f'per class: at most {given.sum() - num_classes} of the {given.sum()} '
                     f'labeled images over {num_classes} classes')
  held_out = (_largest_remainder(given, validation_size) if validation_size
              else np.zeros(num_classes, np.int64))
  # Largest remainder may hand a class all its images: move such units to the largest classes.
  while (given - held_out).min() < 1:
    c = int(np.argmin(given - held_out))
    held_out[c] -= 1
    held_out[int(np.argmax(given - held_out))] += 1
  left = given - held_out
  if num_labels == ALL_LABELS:
    wanted = left
  elif not num_classes <= num_labels <= left.sum():
    raise ValueError(
        f'num_labels={num_labels} is out of range: the labeled set holds {left.sum()} images '
        f'({given.sum()} given, {validation_size} held out for validation) over {num_classes} '
        f'classes; choose {num_classes}..{left.sum()}, or -1 for all of them')
  elif num_labels == num_classes or left.sum() == num_classes:
    wanted = np.ones(num_classes, np.int64)
  else:
    wanted = 1 + _largest_remainder(left - 1, num_labels - num_classes)

  rng = np.random.default_rng(seed)
  return _draw_split(labels, num_classes, held_out, wanted, rng)
