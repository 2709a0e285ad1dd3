"""TFDS data sets as whole numpy arrays, and the one place that keeps TensorFlow (which only
feeds data) off the accelerators.

Downloads: a data set missing from the TFDS data dir is downloaded as TFDS normally does, unless
the environment variable ALC_TFDS_DOWNLOAD=0 forbids it. Offline, TFDS' own download retries for
minutes before it fails; set ALC_TFDS_DOWNLOAD=0 there (the tests do) to fail at once.
"""

import logging
import os
from typing import Optional, Tuple

import numpy as np

from alc_jax.data.base import DataError

# Examples per split (train, test) of the TFDS data sets, for checks and sizes. Never read sizes
# from `builder.info.splits`: offline, the TFDS wheel lacks some data sets' metadata, and under
# `tfds.testing.mock_data` `info.splits` can be empty.
KNOWN_SIZES = {
    'fashion_mnist': (60000, 10000),
    'cifar10': (50000, 10000),
    'svhn_cropped': (73257, 26032),
    'imagenet2012': (1281167, 50000),
}
NUM_CLASSES = {
    'fashion_mnist': 10,
    'cifar10': 10,
    'svhn_cropped': 10,
    'imagenet2012': 1000,
}
TFDS_DOWNLOAD_ENV = 'ALC_TFDS_DOWNLOAD'


def tf_cpu_only():
  """Hides accelerators from TensorFlow, which only feeds data (and writes TensorBoard events):
  JAX owns the GPUs/TPUs. Called by main.py first thing, and by every loader that uses TF."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:  # Without TensorFlow there is nothing to hide.
    return
  try:
    tf.config.set_visible_devices([], 'GPU')
    tf.config.set_visible_devices([], 'TPU')
  except (RuntimeError, ValueError):  # Already initialised, or no such device type.
    pass


def _tfds_download_allowed(name: str, data_dir: Optional[str]) -> bool:
  """Whether tfds.load may download `name` (see ALC_TFDS_DOWNLOAD in the module docstring)."""
  del name, data_dir  # The same policy for every data set.
  policy = os.environ.get(TFDS_DOWNLOAD_ENV, '1').strip().lower()
  return policy not in ('0', 'false', 'no')


def load_tfds_arrays(name: str, split: str, data_dir: Optional[str] = None,
                     chunk_size: int = 10000) -> Tuple[np.ndarray, np.ndarray]:
  """A whole TFDS split as numpy arrays (images uint8 (N, H, W, C), labels int32 (N,)).

  Batches of `chunk_size` are concatenated: `tfds.load(batch_size=-1)` batches by
  `info.splits`, which is empty without metadata (offline, or under `tfds.testing.mock_data`),
  and then asks TensorFlow for a batch of sys.maxsize examples, which aborts the process.

  Args:
    name: TFDS name ('cifar10', 'svhn_cropped', 'fashion_mnist').
    split: 'train' or 'test'.
    data_dir: TFDS data dir; None = TFDS' default.
    chunk_size: examples per batch read.

  Returns:
    (images, labels).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  tf_cpu_only()
  ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=False, shuffle_files=False,
                 download=_tfds_download_allowed(name, data_dir))
  ds = ds.map(lambda ex: (ex['image'], ex['label'])).batch(chunk_size)
  images, labels = [], []
  for x, y in tfds.as_numpy(ds):
    images.append(x)
    labels.append(y)
  if not images:
    raise DataError(f'TFDS {name} split {split!r} (data_dir={data_dir}) is empty.')
  images = np.concatenate(images).astype(np.uint8, copy=False)
  labels = np.concatenate(labels).astype(np.int32)
  expected = KNOWN_SIZES.get(name, (None, None))[0 if split == 'train' else 1]
  if expected is not None and images.shape[0] != expected:
    logging.warning('TFDS %s %s has %d examples, expected %d (mock data or a partial copy?).',
                    name, split, images.shape[0], expected)
  num_classes = NUM_CLASSES.get(name)
  if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise DataError(f'TFDS {name} split {split!r} has labels outside [0, {num_classes}).')
  return images, labels
