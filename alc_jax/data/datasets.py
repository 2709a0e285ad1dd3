"""Image classification data sets small enough to hold in host memory, as uint8 numpy arrays.

`load_dataset(config.dataset)` returns an `ArrayDataset` for

  * `fashion_mnist`: the IDX files of the Debian package `dataset-fashion-mnist` (read with numpy;
    TFDS cannot use them as a manual download because Debian recompressed the .gz files, so their
    checksums differ from those TFDS registers), else TFDS.
  * `cifar10`, `svhn_cropped`: TFDS (`tfds.load`, whole splits turned into arrays).
  * `npz`: a .npz file with `x_train, y_train, x_test, y_test`.
  * `folder`: `path/train/<class>/*.png|jpg|jpeg` and `path/test/<class>/...`.

ImageNet (`imagenet_1pct`) does not fit in memory and is streamed by `alc_jax.data.imagenet`.

Images stay uint8 (N, H, W, C) on the host (C = 1 for grayscale); `ArrayDataset.mean`/`std` are the
per-channel statistics of the training images in [0, 1] units, for normalisation on the device.
With `config.dataset.zca`, a ZCA whitening matrix is computed from the training set as well.

TFDS downloads: a data set missing from the TFDS data dir is downloaded as TFDS normally does,
unless the environment variable ALC_TFDS_DOWNLOAD=0 forbids it. Offline, TFDS' own download
retries for minutes before it fails; set ALC_TFDS_DOWNLOAD=0 there (the tests do) to fail at once.
"""

import dataclasses
import gzip
import logging
import os
import zipfile
from typing import Any, Optional, Sequence, Tuple

import numpy as np

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
# Data set names `load_dataset` accepts (config.dataset.name). 'imagenet_1pct' is streamed.
VALID_NAMES = ('fashion_mnist', 'cifar10', 'svhn_cropped', 'imagenet_1pct', 'npz', 'folder')
TFDS_NAMES = ('fashion_mnist', 'cifar10', 'svhn_cropped')

# Where Debian's `dataset-fashion-mnist` installs the IDX files; ALC_FASHION_MNIST_DIR overrides.
FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_ENV = 'ALC_FASHION_MNIST_DIR'
TFDS_DOWNLOAD_ENV = 'ALC_TFDS_DOWNLOAD'
_FASHION_MNIST_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')

# Ridge added to the covariance's eigenvalues by `compute_zca`. The Mean Teacher TensorFlow code
# (datasets/preprocess_cifar10.py) whitens global-contrast-normalised CIFAR-10 (scale 55, so each
# pixel has variance ~1) with filter_bias 0.1; our input is per-channel standardised, also variance
# ~1 per pixel, so the same 0.1 regularises the same amount.
ZCA_EPSILON = 0.1


class DataError(ValueError):
  """The data cannot be used as they are: the message names the file and says what to fix.
  main.py prints it as one line, `Data error: ...`, without a traceback."""


class DataFileNotFoundError(DataError, FileNotFoundError):
  """A data file or folder that the config names does not exist."""


@dataclasses.dataclass
class ArrayDataset:
  """A labelled image data set held in host memory.

  Attributes:
    name: the data set's name ('fashion_mnist', 'cifar10', the .npz file's stem, ...).
    x_train: uint8 (N, H, W, C) training images; C = 1 for grayscale.
    y_train: int32 (N,) labels in [0, num_classes).
    x_test: uint8 (M, H, W, C) test images.
    y_test: int32 (M,) labels.
    num_classes: number of classes.
    mean: float32 (C,) per-channel mean of x_train in [0, 1] units.
    std: float32 (C,) per-channel standard deviation of x_train in [0, 1] units.
    zca: None, or a float32 (D, D) ZCA whitening matrix, D = H * W * C, for images normalised as
      `(x / 255 - mean) / std` and flattened in (H, W, C) order. The trainer applies it on the
      device after normalisation: `(flat - zca_mean) @ zca` (the matrix is symmetric).
    zca_mean: None, or float32 (D,) the per-pixel mean of the normalised, flattened x_train.
    class_names: optional class names, index = label.
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  mean: np.ndarray
  std: np.ndarray
  zca: Optional[np.ndarray] = None
  zca_mean: Optional[np.ndarray] = None
  class_names: Optional[Tuple[str, ...]] = None

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    """(H, W, C) of every image."""
    return tuple(self.x_train.shape[1:])

  @property
  def num_train(self) -> int:
    return int(self.x_train.shape[0])

  @property
  def num_test(self) -> int:
    return int(self.x_test.shape[0])


def _get(config: Any, key: str, default: Any) -> Any:
  """`config.key` for a ConfigDict, a dict or any object; `default` when absent."""
  if isinstance(config, dict):
    return config.get(key, default)
  return getattr(config, key, default)


def load_dataset(dataset_config: Any) -> ArrayDataset:
  """Loads the in-memory data set that `dataset_config` (config.dataset) names.

  Args:
    dataset_config: a ConfigDict (or dict) with `name`, `path`, `data_dir` and `zca`.

  Returns:
    An ArrayDataset with uint8 images, int32 labels and per-channel statistics (and the ZCA
    matrix if `dataset_config.zca`).

  Raises:
    DataError: for an unknown name or invalid data (the message says what to fix).
    DataFileNotFoundError: when the data cannot be found.
  """
  name = _get(dataset_config, 'name', '')
  path = _get(dataset_config, 'path', '') or ''
  data_dir = _get(dataset_config, 'data_dir', '') or None
  if name == 'fashion_mnist':
    x_train, y_train, x_test, y_test = _load_fashion_mnist(path, data_dir)
    num_classes, class_names = NUM_CLASSES[name], None
  elif name in ('cifar10', 'svhn_cropped'):
    x_train, y_train = load_tfds_arrays(name, 'train', data_dir)
    x_test, y_test = load_tfds_arrays(name, 'test', data_dir)
    num_classes, class_names = NUM_CLASSES[name], None
  elif name == 'npz':
    x_train, y_train, x_test, y_test, num_classes = load_npz(path)
    class_names = None
  elif name == 'folder':
    x_train, y_train, x_test, y_test, class_names = load_folder(path)
    num_classes = len(class_names)
  elif name == 'imagenet_1pct':
    raise DataError(
        "config.dataset.name='imagenet_1pct' is streamed with tf.data, not held in memory: use "
        'alc_jax.data.imagenet.imagenet_train_iterator / imagenet_eval_iterator instead of '
        'load_dataset.')
  else:
    raise DataError(
        f'Unknown config.dataset.name={name!r}; valid names are: {", ".join(VALID_NAMES)}.')

  if name in ('npz', 'folder'):
    shown_name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or name
  else:
    shown_name = name
  if x_train.min() == x_train.max():  # Checked before the statistics, which would be 0 / 0.
    raise DataError(
        f'Every training image of {shown_name} ({path or name}) has the value '
        f'{int(x_train.min())} in every pixel: there is nothing to learn from. Check how the '
        'images were written (e.g. floats in [0, 1] cast to uint8 give all zeros: use '
        '(x * 255).round().astype(np.uint8)).')
  mean, std = channel_stats(x_train)
  zca = zca_mean = None
  if _get(dataset_config, 'zca', False):
    zca, zca_mean = compute_zca(x_train, mean, std)
  return ArrayDataset(
      name=shown_name, x_train=x_train, y_train=y_train.astype(np.int32), x_test=x_test,
      y_test=y_test.astype(np.int32), num_classes=int(num_classes), mean=mean, std=std, zca=zca,
      zca_mean=zca_mean, class_names=class_names)


# --------------------------------------------------------------------------------------------
# Statistics and ZCA.
# --------------------------------------------------------------------------------------------


def channel_stats(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Exact per-channel mean and standard deviation of uint8 images, in [0, 1] units.

  Uses a 256-bin histogram per channel, so no float copy of the data set is made.

  Args:
    images: uint8 (N, H, W, C).

  Returns:
    (mean, std), float32 (C,) each.
  """
  values = np.arange(256, dtype=np.float64) / 255.0
  means, stds = [], []
  for c in range(images.shape[-1]):
    counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    mean = (counts * values).sum() / total
    var = (counts * (values - mean) ** 2).sum() / total
    means.append(mean)
    stds.append(np.sqrt(var))
  std = np.maximum(np.asarray(stds), 1e-8)  # A constant channel must not divide by zero.
  return np.asarray(means, np.float32), std.astype(np.float32)


def compute_zca(images: np.ndarray, mean: np.ndarray, std: np.ndarray,
                epsilon: float = ZCA_EPSILON,
                chunk_size: int = 5000) -> Tuple[np.ndarray, np.ndarray]:
  """ZCA whitening matrix of the per-channel standardised training images.

  With z = flatten((x / 255 - mean) / std) in (H, W, C) order, mu = E[z] and the covariance
  C = E[(z - mu)(z - mu)^T] = E diag(d) E^T, the matrix is W = E diag((d + epsilon)^-1/2) E^T
  (symmetric), and `(z - mu) @ W` has approximately identity covariance. The covariance is
  accumulated in float64 over chunks, so memory stays at a few chunks of float64 images.

  Args:
    images: uint8 (N, H, W, C) training images.
    mean: float32 (C,) per-channel mean in [0, 1] units (`channel_stats`).
    std: float32 (C,) per-channel standard deviation in [0, 1] units.
    epsilon: ridge added to the eigenvalues (see ZCA_EPSILON).
    chunk_size: images per chunk of the covariance accumulation.

  Returns:
    (W float32 (D, D), mu float32 (D,)), D = H * W * C.
  """
  n = images.shape[0]
  dim = int(np.prod(images.shape[1:]))
  scale = np.asarray(std, np.float64) * 255.0
  shift = np.asarray(mean, np.float64) * 255.0

  def standardised(chunk):
    return ((chunk.astype(np.float64) - shift) / scale).reshape(chunk.shape[0], dim)

  mu = np.zeros(dim, np.float64)
  for start in range(0, n, chunk_size):
    mu += standardised(images[start:start + chunk_size]).sum(axis=0)
  mu /= n
  cov = np.zeros((dim, dim), np.float64)
  for start in range(0, n, chunk_size):
    z = standardised(images[start:start + chunk_size]) - mu
    cov += z.T @ z
  cov /= max(n - 1, 1)
  eigvals, eigvecs = np.linalg.eigh(cov)
  eigvals = np.maximum(eigvals, 0.0)  # Round-off can make tiny eigenvalues negative.
  whiten = (eigvecs * (1.0 / np.sqrt(eigvals + epsilon))) @ eigvecs.T
  return whiten.astype(np.float32), mu.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST from IDX files.
# --------------------------------------------------------------------------------------------


def _find_idx_file(directory: str, stem: str) -> Optional[str]:
  for candidate in (stem + '.gz', stem):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  return None


def read_idx(path: str, expected_ndim: int) -> np.ndarray:
  """Reads an uint8 IDX file (gzip-compressed or not) into a numpy array.

  The IDX format: 2 zero bytes, a type byte (0x08 = uint8), the number of dimensions, then one
  big-endian uint32 per dimension, then the data.

  Args:
    path: the file (`*.gz` is decompressed).
    expected_ndim: 1 for labels, 3 for images.

  Returns:
    uint8 array of the file's shape.

  Raises:
    DataError: naming the file, if it is truncated, corrupt or not an uint8 IDX file.
  """
  try:
    if path.endswith('.gz'):
      with gzip.open(path, 'rb') as f:
        raw = f.read()
    else:
      with open(path, 'rb') as f:
        raw = f.read()
  except (OSError, EOFError, gzip.BadGzipFile) as e:  # Truncated or corrupt gzip stream.
    raise DataError(
        f'Cannot read the IDX file {path}: {type(e).__name__}: {e}. The file is truncated or '
        'corrupt; reinstall it (e.g. `apt-get install --reinstall dataset-fashion-mnist`).'
    ) from e
  header_len = 4 + 4 * expected_ndim
  if len(raw) < header_len:
    raise DataError(f'IDX file {path} is truncated: {len(raw)} bytes, shorter than its header.')
  magic = int.from_bytes(raw[:4], 'big')
  expected_magic = 0x0800 | expected_ndim
  if magic != expected_magic:
    raise DataError(
        f'IDX file {path} has magic number 0x{magic:08x}, expected 0x{expected_magic:08x} (uint8 '
        f'data with {expected_ndim} dimension(s)); it is not the IDX file it is named after.')
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(expected_ndim))
  size = int(np.prod(shape))
  if len(raw) - header_len != size:
    raise DataError(
        f'IDX file {path} is truncated or corrupt: its header says shape {shape} ({size} bytes) '
        f'but it holds {len(raw) - header_len} data bytes.')
  return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def fashion_mnist_idx_dir(path: str = '') -> str:
  """The folder searched for Fashion-MNIST IDX files: `path`, else $ALC_FASHION_MNIST_DIR, else
  the Debian package's folder."""
  return path or os.environ.get(FASHION_MNIST_ENV, '') or FASHION_MNIST_SYSTEM_DIR


def load_fashion_mnist_idx(directory: str) -> Optional[Tuple[np.ndarray, ...]]:
  """Fashion-MNIST from the four IDX files in `directory`; None when they are not all there.

  Returns:
    None, or (x_train uint8 (60000, 28, 28, 1), y_train, x_test (10000, 28, 28, 1), y_test).

  Raises:
    DataError: naming the file, if a file is corrupt or the files disagree.
  """
  files = {}
  for split, stems in _FASHION_MNIST_FILES.items():
    for kind, stem in zip(('images', 'labels'), stems):
      found = _find_idx_file(directory, stem)
      if found is None:
        return None
      files[split, kind] = found
  arrays = []
  for split in ('train', 'test'):
    images = read_idx(files[split, 'images'], 3)
    labels = read_idx(files[split, 'labels'], 1)
    if images.shape[0] != labels.shape[0]:
      raise DataError(
          f'{files[split, "images"]} holds {images.shape[0]} images but '
          f'{files[split, "labels"]} holds {labels.shape[0]} labels.')
    if images.shape[1:] != (28, 28):
      raise DataError(f'{files[split, "images"]} holds images of shape {images.shape[1:]}, '
                       'expected (28, 28) for Fashion-MNIST.')
    if labels.size and labels.max() >= NUM_CLASSES['fashion_mnist']:
      raise DataError(f'{files[split, "labels"]} holds label {labels.max()}, expected 0..9.')
    arrays += [images[..., None], labels.astype(np.int32)]
  return tuple(arrays)


def _load_fashion_mnist(path: str, data_dir: Optional[str]):
  directory = fashion_mnist_idx_dir(path)
  arrays = load_fashion_mnist_idx(directory)
  if arrays is not None:
    return arrays
  try:
    x_train, y_train = load_tfds_arrays('fashion_mnist', 'train', data_dir)
    x_test, y_test = load_tfds_arrays('fashion_mnist', 'test', data_dir)
  except Exception as e:  # pylint: disable=broad-except
    stems = ', '.join(s + '.gz' for pair in _FASHION_MNIST_FILES.values() for s in pair)
    raise DataFileNotFoundError(
        'Fashion-MNIST not found. Neither source worked:\n'
        f'  1. IDX files ({stems}) in {directory}: missing. Install them with '
        '`apt-get install dataset-fashion-mnist` (into /usr/share/datasets/fashion-mnist), or '
        f'point ${FASHION_MNIST_ENV} or config.dataset.path to a folder holding them.\n'
        f'  2. TFDS (data_dir={data_dir or "TFDS default"}): {type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""}. Be online (TFDS then downloads it; '
        f'{TFDS_DOWNLOAD_ENV}=1 forces the attempt) or pre-populate the TFDS data_dir, e.g. '
        '`tfds build fashion_mnist --data_dir=DIR` on a machine that is online, then copy DIR.'
    ) from e
  return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------------------------
# TFDS.
# --------------------------------------------------------------------------------------------


def tf_cpu_only():
  """Hides accelerators from TensorFlow, which only feeds data: JAX owns the GPUs/TPUs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
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


# --------------------------------------------------------------------------------------------
# .npz files.
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Image folders.
# --------------------------------------------------------------------------------------------


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
