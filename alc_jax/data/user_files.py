"""Users' own data sets: a .npz file of arrays, or a folder of images per class."""

import os
import zipfile
from typing import Sequence, Tuple

import numpy as np

from alc_jax.data.base import DataError, DataFileNotFoundError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
_NPZ_KEYS = ('x_train', 'y_train', 'x_test', 'y_test')


def load_npz(path: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
  """Loads and validates a .npz data set.

  The file holds `x_train, y_train, x_test, y_test`: uint8 images (N, H, W) or (N, H, W, C) and
  integer labels (N,). The number of classes is max(y_train) + 1; every class must appear in
  y_train, and test labels must lie in the same range.

  Args:
    path: the .npz file.

  Returns:
    (x_train (N, H, W, C), y_train int32, x_test, y_test int32, num_classes).

  Raises:
    DataFileNotFoundError: if the file does not exist.
    DataError: naming the file and what to fix, for any invalid content.
  """
  if not path:
    raise DataError("config.dataset.name='npz' needs config.dataset.path, the .npz file.")
  if not os.path.isfile(path):
    raise DataFileNotFoundError(f'npz data set {path} does not exist (config.dataset.path).')
  try:
    with np.load(path, allow_pickle=False) as f:
      keys = list(f.files)
      arrays = {k: f[k] for k in _NPZ_KEYS if k in keys}
  except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(
        f'Cannot read npz data set {path}: {type(e).__name__}: {e}. Write it with '
        'np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) using plain numeric '
        'arrays (object arrays are not supported).') from e
  missing = [k for k in _NPZ_KEYS if k not in arrays]
  if missing:
    raise DataError(
        f'npz data set {path} lacks the key(s) {", ".join(missing)} (it has: '
        f'{", ".join(keys) or "nothing"}). Save it with np.savez(path, x_train=..., '
        'y_train=..., x_test=..., y_test=...).')

  images = {}
  for split in ('train', 'test'):
    x = arrays['x_' + split]
    if x.dtype != np.uint8:
      raise DataError(
          f'npz data set {path}: x_{split} has dtype {x.dtype}, expected uint8 images in '
          '[0, 255]. Convert with (x * 255).round().astype(np.uint8) for images in [0, 1], or '
          'x.astype(np.uint8) for integer pixels.')
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4:
      raise DataError(
          f'npz data set {path}: x_{split} has shape {x.shape} (rank {x.ndim}); expected '
          '(N, H, W) or (N, H, W, C) images.')
    if x.shape[0] == 0:
      raise DataError(f'npz data set {path}: x_{split} is empty; it needs at least one image.')
    y = arrays['y_' + split]
    if not np.issubdtype(y.dtype, np.integer):
      raise DataError(
          f'npz data set {path}: y_{split} has dtype {y.dtype}; expected integer class ids '
          '0..K-1 (convert with y.astype(np.int32)).')
    if y.ndim != 1:
      raise DataError(f'npz data set {path}: y_{split} has shape {y.shape}; expected (N,) '
                       '(flatten it with y.reshape(-1)).')
    if y.shape[0] != x.shape[0]:
      raise DataError(
          f'npz data set {path}: x_{split} holds {x.shape[0]} images but y_{split} holds '
          f'{y.shape[0]} labels; they must have the same length.')
    if y.min() < 0:
      raise DataError(f'npz data set {path}: y_{split} has negative label {y.min()}; labels '
                       'must be class ids 0..K-1.')
    images[split] = (x, y)
  (x_train, y_train), (x_test, y_test) = images['train'], images['test']
  if x_train.shape[1:] != x_test.shape[1:]:
    raise DataError(
        f'npz data set {path}: train images are {x_train.shape[1:]} (H, W, C) but test images '
        f'are {x_test.shape[1:]}; both must have the same size and channels.')
  num_classes = int(y_train.max()) + 1
  absent = np.setdiff1d(np.arange(num_classes), y_train)
  if absent.size:
    raise DataError(
        f'npz data set {path}: classes {absent.tolist()[:10]} never appear in y_train, though '
        f'labels go up to {num_classes - 1}; number classes 0..K-1 with every class present in '
        'the training set.')
  if y_test.max() >= num_classes:
    raise DataError(
        f'npz data set {path}: y_test has label {int(y_test.max())}, out of range for the '
        f'{num_classes} classes of y_train (0..{num_classes - 1}).')
  return (np.ascontiguousarray(x_train), y_train.astype(np.int32),
          np.ascontiguousarray(x_test), y_test.astype(np.int32), num_classes)




def _list_classes(split_dir: str) -> Sequence[str]:
  return sorted(d for d in os.listdir(split_dir)
                if os.path.isdir(os.path.join(split_dir, d)) and not d.startswith('.'))


def _read_image(path: str):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as img:
      img.load()
      return img.mode, img.size, np.asarray(img)
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    raise DataError(f'Cannot read image {path}: {type(e).__name__}: {e}. Remove or replace '
                     'the file.') from e


def load_folder(path: str):
  """Loads `path/train/<class>/*.png|jpg|jpeg` and `path/test/<class>/...`.

  Class names, sorted, give the label ids; train and test must have the same class folders. All
  images must share one size and one PIL mode, 'L' (grayscale, C = 1) or 'RGB' (C = 3); nothing
  is resized or converted.

  Args:
    path: the folder holding train/ and test/.

  Returns:
    (x_train uint8 (N, H, W, C), y_train int32, x_test, y_test, class_names).

  Raises:
    DataFileNotFoundError: if a folder is missing.
    DataError: naming the file or folder, for unreadable images, size or mode mismatches, or
      mismatched class folders.
  """
  if not path:
    raise DataError("config.dataset.name='folder' needs config.dataset.path, the folder with "
                     'train/ and test/.')
  classes = {}
  for split in ('train', 'test'):
    split_dir = os.path.join(path, split)
    if not os.path.isdir(split_dir):
      raise DataFileNotFoundError(
          f'Image folder data set {path}: {split_dir} does not exist; expected '
          f'{path}/train/<class_name>/*.png and {path}/test/<class_name>/*.png.')
    classes[split] = _list_classes(split_dir)
    if not classes[split]:
      raise DataError(f'Image folder data set {path}: {split_dir} has no class folders; '
                       f'expected {split_dir}/<class_name>/*.png.')
  if classes['train'] != classes['test']:
    only_train = sorted(set(classes['train']) - set(classes['test']))
    only_test = sorted(set(classes['test']) - set(classes['train']))
    raise DataError(
        f'Image folder data set {path}: train/ and test/ must have the same class folders; only '
        f'in train/: {only_train}, only in test/: {only_test}.')
  class_names = tuple(classes['train'])

  reference = None  # (path, mode, size) of the first image.
  out = []
  for split in ('train', 'test'):
    images, labels = [], []
    for label, class_name in enumerate(class_names):
      class_dir = os.path.join(path, split, class_name)
      files = sorted(f for f in os.listdir(class_dir)
                     if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith('.'))
      if split == 'train' and not files:
        raise DataError(f'Image folder data set {path}: {class_dir} holds no .png/.jpg/.jpeg '
                         'image; every class needs training images.')
      for f in files:
        file_path = os.path.join(class_dir, f)
        mode, size, array = _read_image(file_path)
        if mode not in ('L', 'RGB'):
          raise DataError(
              f'Image {file_path} has PIL mode {mode!r}; only \'L\' (grayscale) and \'RGB\' are '
              "supported. Convert it, e.g. Image.open(f).convert('RGB').save(f).")
        if reference is None:
          reference = (file_path, mode, size)
        elif size != reference[2]:
          raise DataError(
              f'Image {file_path} is {size[0]}x{size[1]} (width x height) but the expected size '
              f'is {reference[2][0]}x{reference[2][1]}, that of {reference[0]}; all images must '
              'have the same size (resize them beforehand).')
        elif mode != reference[1]:
          raise DataError(
              f'Image {file_path} has mode {mode!r} but {reference[0]} has {reference[1]!r}; all '
              'images must be grayscale or all RGB.')
        images.append(array.reshape(array.shape[0], array.shape[1], -1).astype(np.uint8))
        labels.append(label)
    if not images:
      raise DataError(f'Image folder data set {path}: {os.path.join(path, split)} holds no '
                       '.png/.jpg/.jpeg image.')
    out += [np.stack(images), np.asarray(labels, np.int32)]
  return out[0], out[1], out[2], out[3], class_names
