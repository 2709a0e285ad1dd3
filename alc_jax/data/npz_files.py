"""A user's data set as one .npz file of arrays, in either of two layouts.

  * Fully labeled: `x_train, y_train, x_test, y_test`. The trainer keeps config.dataset.num_labels
    of the training labels and hides the rest (the paper's protocol).
  * Semi-supervised: `x_labeled, y_labeled, x_unlabeled` (x_unlabeled may hold no image: the run
    is then supervised), and optionally `x_validation, y_validation` and `x_test, y_test`.

Images are uint8 (N, H, W) or (N, H, W, C), all of one size and channel count (they are used as
they are: resize them beforehand); labels are integer class ids 0..K-1, each class present in the
training (labeled) labels. Either layout may add `class_names`, an array of K strings (label id =
index); K is its length, else the largest training label + 1.
"""

import os
import zipfile
from typing import Dict, Optional, Tuple

import numpy as np

from alc_jax.data.base import DataError, DataFileNotFoundError, ImageArrays

TRAIN_TEST_KEYS = ('x_train', 'y_train', 'x_test', 'y_test')
LABELED_KEYS = ('x_labeled', 'y_labeled', 'x_unlabeled')
# Optional pairs of the semi-supervised layout: give both arrays of a pair, or neither.
OPTIONAL_PAIRS = (('x_validation', 'y_validation'), ('x_test', 'y_test'))
CLASS_NAMES_KEY = 'class_names'
_SAVE_HINT = ('np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) or '
              'np.savez(path, x_labeled=..., y_labeled=..., x_unlabeled=...)')


def _read(path: str) -> Tuple[Dict[str, np.ndarray], list]:
  """(the arrays of the keys this module knows, every key of the file)."""
  if not path:
    raise DataError("config.dataset.name='npz' needs config.dataset.path, the .npz file.")
  if not os.path.isfile(path):
    raise DataFileNotFoundError(f'npz data set {path} does not exist (config.dataset.path).')
  try:
    with np.load(path, allow_pickle=False) as f:
      known = set(TRAIN_TEST_KEYS + LABELED_KEYS + sum(OPTIONAL_PAIRS, ()) + (CLASS_NAMES_KEY,))
      return {k: f[k] for k in f.files if k in known}, sorted(f.files)
  except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(
        f'Cannot read npz data set {path}: {type(e).__name__}: {e}. Write it with {_SAVE_HINT} '
        'using plain numeric arrays (object arrays are not supported; class_names as an array '
        'of str).') from e


def _images(path: str, key: str, x: np.ndarray, may_be_empty: bool = False) -> np.ndarray:
  if x.dtype != np.uint8:
    raise DataError(
        f'npz data set {path}: {key} has dtype {x.dtype}, expected uint8 images in [0, 255]. '
        'Convert with (x * 255).round().astype(np.uint8) for images in [0, 1], or '
        'x.astype(np.uint8) for integer pixels.')
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise DataError(f'npz data set {path}: {key} has shape {x.shape} (rank {x.ndim}); expected '
                    '(N, H, W) or (N, H, W, C) images.')
  if x.shape[0] == 0 and not may_be_empty:
    raise DataError(f'npz data set {path}: {key} is empty; it needs at least one image.')
  return np.ascontiguousarray(x)


def _labels(path: str, key: str, y: np.ndarray, x_key: str, count: int) -> np.ndarray:
  if not np.issubdtype(y.dtype, np.integer):
    raise DataError(f'npz data set {path}: {key} has dtype {y.dtype}; expected integer class ids '
                    '0..K-1 (convert with y.astype(np.int32)).')
  if y.ndim != 1:
    raise DataError(f'npz data set {path}: {key} has shape {y.shape}; expected (N,) (flatten it '
                    'with y.reshape(-1)).')
  if y.shape[0] != count:
    raise DataError(f'npz data set {path}: {x_key} holds {count} images but {key} holds '
                    f'{y.shape[0]} labels; they must have the same length.')
  if y.size and y.min() < 0:
    raise DataError(f'npz data set {path}: {key} has negative label {y.min()}; labels must be '
                    'class ids 0..K-1.')
  return y.astype(np.int32)


def _class_names(path: str, arrays) -> Optional[Tuple[str, ...]]:
  names = arrays.get(CLASS_NAMES_KEY)
  if names is None:
    return None
  if names.ndim != 1 or names.dtype.kind not in 'US' or not names.size:
    raise DataError(f'npz data set {path}: {CLASS_NAMES_KEY} has dtype {names.dtype} and shape '
                    f'{names.shape}; expected a 1-D array of strings, one per class '
                    "(np.array(['cat', 'dog'])).")
  return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())


def load_npz(path: str) -> ImageArrays:
  """Loads and validates a .npz data set of either layout (the module docstring).

  Raises:
    DataFileNotFoundError: if the file does not exist.
    DataError: naming the file and what to fix, for any invalid content.
  """
  arrays, keys = _read(path)
  semi = [k for k in LABELED_KEYS if k in arrays]
  if semi and any(k in arrays for k in ('x_train', 'y_train')):
    raise DataError(f'npz data set {path} mixes the two layouts (it has {", ".join(keys)}); '
                    'give either x_train/y_train/x_test/y_test or x_labeled/y_labeled/'
                    'x_unlabeled (+ optional x_validation/y_validation, x_test/y_test).')
  wanted = LABELED_KEYS if semi else TRAIN_TEST_KEYS
  missing = [k for k in wanted if k not in arrays]
  missing += [k for pair in OPTIONAL_PAIRS if semi and any(p in arrays for p in pair)
              for k in pair if k not in arrays]
  if missing:
    raise DataError(f'npz data set {path} lacks the key(s) {", ".join(missing)} (it has: '
                    f'{", ".join(keys) or "nothing"}). Save it with {_SAVE_HINT}.')
  train = 'labeled' if semi else 'train'
  pairs = {train: ('x_' + train, 'y_' + train)}
  pairs.update({p[0][2:]: p for p in OPTIONAL_PAIRS if p[0] in arrays})
  sets = {}
  for name, (x_key, y_key) in pairs.items():
    x = _images(path, x_key, arrays[x_key])
    sets[name] = (x, _labels(path, y_key, arrays[y_key], x_key, x.shape[0]))
  x_unlabeled = _images(path, 'x_unlabeled', arrays['x_unlabeled'], True) if semi else None

  x_train, y_train = sets[train]
  shaped = [(pairs[n][0], x) for n, (x, _) in sets.items()]
  if semi:
    shaped.append(('x_unlabeled', x_unlabeled))
  for key, x in shaped[1:]:
    if x.shape[1:] != x_train.shape[1:]:
      raise DataError(
          f'npz data set {path}: {key} images are {x.shape[1:]} (H, W, C) but '
          f'x_{train} images are {x_train.shape[1:]}; all must have the same size and channels.')
  class_names = _class_names(path, arrays)
  num_classes = len(class_names) if class_names else int(y_train.max()) + 1
  absent = np.setdiff1d(np.arange(num_classes), y_train)
  if absent.size:
    raise DataError(
        f'npz data set {path}: classes {absent.tolist()[:10]} never appear in y_{train}, though '
        f'there are {num_classes} classes; number classes 0..K-1 with every class present in '
        f'y_{train}.')
  for name, (_, y) in sets.items():
    if y.size and y.max() >= num_classes:
      raise DataError(
          f'npz data set {path}: y_{name} has label {int(y.max())}, out of range for the '
          f'{num_classes} classes (0..{num_classes - 1}'
          f'{f", the length of {CLASS_NAMES_KEY}" if class_names else f" of y_{train}"}).')
  if semi:
    x_train = np.concatenate([x_train, x_unlabeled])
    y_train = np.concatenate([y_train, np.full(len(x_unlabeled), -1, np.int32)])
  x_test, y_test = sets.get('test', (None, None))
  x_validation, y_validation = sets.get('validation', (None, None))
  return ImageArrays(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     num_classes=num_classes, class_names=class_names,
                     x_validation=x_validation, y_validation=y_validation, given_split=bool(semi))
