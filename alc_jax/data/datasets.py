"""Image classification data sets small enough to hold in host memory, as uint8 numpy arrays.

`load_dataset(config.dataset)` returns an `ArrayDataset` for

  * `fashion_mnist`: Debian's IDX files, else TFDS (alc_jax/data/fashion_mnist.py);
  * `cifar10`, `svhn_cropped`: TFDS, whole splits turned into arrays (alc_jax/data/tfds_data.py);
  * `npz`: a .npz file, fully labeled (`x_train, y_train, x_test, y_test`) or semi-supervised
    (`x_labeled, y_labeled, x_unlabeled`, optional validation and test arrays;
    alc_jax/data/npz_files.py);
  * `folder`: `path/labeled/<class>/`, `path/unlabeled/`, optional `path/validation/<class>/`
    and `path/test/<class>/` (alc_jax/data/labeled_folder.py), or the fully labeled
    `path/train/<class>/` and `path/test/<class>/` (alc_jax/data/user_files.py).

A semi-supervised data set (`given_split`) says itself which images are labeled; it may lack a
test set (the run then reports its validation accuracy, or none).

ImageNet (`imagenet_1pct`) does not fit in memory and is streamed by `alc_jax.data.imagenet`;
alc_jax/data/pipeline.py puts both kinds behind the one object the trainer reads.

Images stay uint8 (N, H, W, C) on the host (C = 1 for grayscale); `ArrayDataset.mean`/`std` are the
per-channel statistics of the training images in [0, 1] units, for normalisation on the device
(alc_jax/data/normalization.py). With `config.dataset.zca`, a ZCA whitening matrix is computed
from the training set as well.
"""

import dataclasses
import os
from typing import Any, Optional, Tuple

import numpy as np

from alc_jax.data.base import DataError, ImageArrays, config_value
from alc_jax.data.fashion_mnist import load_fashion_mnist
from alc_jax.data.normalization import channel_stats, compute_zca
from alc_jax.data.npz_files import load_npz
from alc_jax.data.tfds_data import NUM_CLASSES, load_tfds_arrays
from alc_jax.data.user_files import load_folder

# The data sets `load_dataset` holds in memory (config.dataset.name).
IN_MEMORY_NAMES = ('fashion_mnist', 'cifar10', 'svhn_cropped', 'npz', 'folder')
# Those read from the user's files at config.dataset.path (an .npz file, a folder of images).
PATH_NAMES = ('npz', 'folder')
# Those decoded from image files, which config.dataset.image_size resizes and skip_unreadable may
# skip (in the labeled/ + unlabeled/ layout; user_files refuses both for train/ + test/).
IMAGE_FILE_NAMES = ('folder',)


@dataclasses.dataclass(kw_only=True)
class ArrayDataset(ImageArrays):
  """A data set held in host memory: the `ImageArrays` (images, labels, class names, which
  training images are labeled) and their statistics.

  Attributes:
    name: the data set's name ('fashion_mnist', 'cifar10', the .npz file's stem, ...).
    mean: float32 (C,) per-channel mean of x_train in [0, 1] units.
    std: float32 (C,) per-channel standard deviation of x_train in [0, 1] units.
    zca: None, or a float32 (D, D) ZCA whitening matrix, D = H * W * C, for images normalised as
      `(x / 255 - mean) / std` and flattened in (H, W, C) order. The trainer applies it on the
      device after normalisation: `(flat - zca_mean) @ zca` (the matrix is symmetric).
    zca_mean: None, or float32 (D,) the per-pixel mean of the normalised, flattened x_train.
  """
  name: str
  mean: np.ndarray
  std: np.ndarray
  zca: Optional[np.ndarray] = None
  zca_mean: Optional[np.ndarray] = None

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    """(H, W, C) of every image."""
    return tuple(self.x_train.shape[1:])

  @property
  def num_train(self) -> int:
    return int(self.x_train.shape[0])

  @property
  def num_test(self) -> int:
    """Test images; 0 for a data set without a test set."""
    return 0 if self.x_test is None else int(self.x_test.shape[0])


def load_dataset(dataset_config: Any) -> ArrayDataset:
  """Loads the in-memory data set that `dataset_config` (config.dataset) names.

  Args:
    dataset_config: a ConfigDict (or dict) with `name`, `path`, `data_dir` and `zca` (and, for
      image folders, `image_size`, `skip_unreadable`, `cache_dir`).

  Returns:
    An ArrayDataset with uint8 images, int32 labels and per-channel statistics (and the ZCA
    matrix if `dataset_config.zca`).

  Raises:
    DataError: for an unknown name or invalid data (the message says what to fix).
    DataFileNotFoundError: when the data cannot be found.
  """
  name = config_value(dataset_config, 'name', '')
  path = config_value(dataset_config, 'path', '') or ''
  data_dir = config_value(dataset_config, 'data_dir', '') or None
  if name == 'fashion_mnist':
    x_train, y_train, x_test, y_test = load_fashion_mnist(path, data_dir)
    arrays = ImageArrays(x_train, y_train, x_test, y_test, NUM_CLASSES[name])
  elif name in ('cifar10', 'svhn_cropped'):
    x_train, y_train = load_tfds_arrays(name, 'train', data_dir)
    x_test, y_test = load_tfds_arrays(name, 'test', data_dir)
    arrays = ImageArrays(x_train, y_train, x_test, y_test, NUM_CLASSES[name])
  elif name == 'npz':
    arrays = load_npz(path)
  elif name == 'folder':
    arrays = load_folder(path, dataset_config)
  elif name == 'imagenet_1pct':
    raise DataError(
        "config.dataset.name='imagenet_1pct' is streamed with tf.data, not held in memory: build "
        'it with alc_jax.data.pipeline.create_pipeline, not load_dataset.')
  else:
    raise DataError(f'Unknown config.dataset.name={name!r}; the data sets held in memory are: '
                    f'{", ".join(IN_MEMORY_NAMES)} (imagenet_1pct is streamed).')

  if name in PATH_NAMES:
    shown_name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or name
  else:
    shown_name = name
  x_train = arrays.x_train
  if x_train.min() == x_train.max():  # Checked before the statistics, which would be 0 / 0.
    raise DataError(
        f'Every training image of {shown_name} ({path or name}) has the value '
        f'{int(x_train.min())} in every pixel: there is nothing to learn from. Check how the '
        'images were written (e.g. floats in [0, 1] cast to uint8 give all zeros: use '
        '(x * 255).round().astype(np.uint8)).')
  mean, std = channel_stats(x_train)
  zca = zca_mean = None
  if config_value(dataset_config, 'zca', False):
    zca, zca_mean = compute_zca(x_train, mean, std)
  fields = {f.name: getattr(arrays, f.name) for f in dataclasses.fields(ImageArrays)}
  fields.update(y_train=arrays.y_train.astype(np.int32, copy=False),
                num_classes=int(arrays.num_classes))
  if arrays.y_test is not None:
    fields['y_test'] = arrays.y_test.astype(np.int32, copy=False)
  return ArrayDataset(name=shown_name, mean=mean, std=std, zca=zca, zca_mean=zca_mean, **fields)
