"""A user's image folder, in either of two layouts (config.dataset.name='folder'):

  * ROOT/labeled/<class>/, ROOT/unlabeled/ and optional ROOT/validation/<class>/ and
    ROOT/test/<class>/: semi-supervised, any sizes and modes (alc_jax/data/labeled_folder.py);
  * ROOT/train/<class>/ and ROOT/test/<class>/: fully labeled, all images of one size and mode;
    the trainer keeps config.dataset.num_labels of the training labels (the paper's protocol).
    Read here, as it always was.

.npz files are read by alc_jax/data/npz_files.py.
"""

import os
from typing import Any, Sequence

import numpy as np

from alc_jax.data.base import DataError, DataFileNotFoundError, ImageArrays, config_value
from alc_jax.data.labeled_folder import LABELED, load_labeled_folder

# What the train/test layout reads (the labeled/ layout reads image_files.IMAGE_EXTENSIONS).
TRAIN_TEST_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def load_folder(path: str, dataset_config: Any) -> ImageArrays:
  """Loads an image folder of either layout (the module docstring).

  Raises:
    DataFileNotFoundError: if neither layout's folders exist.
    DataError: naming the file or folder and the fix.
  """
  if not path:
    raise DataError("config.dataset.name='folder' needs config.dataset.path, the folder with "
                    f'{LABELED}/ (and unlabeled/, test/) or train/ and test/.')
  if os.path.isdir(os.path.join(path, LABELED)):
    if os.path.isdir(os.path.join(path, 'train')):
      raise DataError(f'Image folder data set {path} has both {LABELED}/ and train/: keep '
                      f'{LABELED}/ + unlabeled/ (semi-supervised) or train/ + test/ (fully '
                      'labeled), not both.')
    return load_labeled_folder(path, dataset_config)
  ignored = [f'config.dataset.{field}={config_value(dataset_config, field, None)!r}'
             for field in ('image_size', 'skip_unreadable')
             if config_value(dataset_config, field, None)]
  if ignored:
    raise DataError(f'{", ".join(ignored)} would be ignored: the train/ + test/ folder {path} is '
                    'read as it is (images of one size, every file readable; only a labeled/ + '
                    'unlabeled/ folder is resized and may skip files). Leave '
                    f'{"them" if ignored[1:] else "it"} at the default.')
  x_train, y_train, x_test, y_test, class_names = load_train_test_folder(path)
  return ImageArrays(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     num_classes=len(class_names), class_names=class_names)


def _list_classes(split_dir: str) -> Sequence[str]:
  return sorted(d for d in os.listdir(split_dir)
                if os.path.isdir(os.path.join(split_dir, d)) and not d.startswith('.'))


def _read_image(path: str):
  from PIL import Image, ImageOps  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as img:
      # The image as shown (EXIF orientation applied), as image_files.decode_image reads the
      # other layout's files and alc_jax.predict / evaluate read every file.
      img = ImageOps.exif_transpose(img)
      img.load()
      return img.mode, img.size, np.asarray(img)
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    raise DataError(f'Cannot read image {path}: {type(e).__name__}: {e}. Remove or replace '
                     'the file.') from e


def load_train_test_folder(path: str):
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
  classes = {}
  for split in ('train', 'test'):
    split_dir = os.path.join(path, split)
    if not os.path.isdir(split_dir):
      raise DataFileNotFoundError(
          f'Image folder data set {path}: {split_dir} does not exist; expected '
          f'{path}/train/<class_name>/*.png and {path}/test/<class_name>/*.png, or '
          f'{path}/{LABELED}/<class_name>/*.png and {path}/unlabeled/*.png.')
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
                     if f.lower().endswith(TRAIN_TEST_EXTENSIONS) and not f.startswith('.'))
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
              f'Image {file_path} is {size[0]}x{size[1]} (width x height, as shown: EXIF '
              f'orientation applied) but the expected size is {reference[2][0]}x'
              f'{reference[2][1]}, that of {reference[0]}; all images must have the same size '
              '(resize them beforehand, or use the labeled/ layout, which resizes).')
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
