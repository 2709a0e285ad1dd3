"""Fashion-MNIST from IDX files: Debian's `dataset-fashion-mnist` (read with numpy; TFDS cannot
use them as a manual download because Debian recompressed the .gz files, so their checksums differ
from those TFDS registers), else TFDS."""

import gzip
import os
from typing import Optional, Tuple

import numpy as np

from alc_jax.data.base import DataError, DataFileNotFoundError
from alc_jax.data.tfds_data import NUM_CLASSES, TFDS_DOWNLOAD_ENV, load_tfds_arrays

# Where Debian's `dataset-fashion-mnist` installs the IDX files; ALC_FASHION_MNIST_DIR overrides.
FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_ENV = 'ALC_FASHION_MNIST_DIR'
_FASHION_MNIST_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


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


def load_fashion_mnist(path: str, data_dir: Optional[str]):
  directory = fashion_mnist_idx_dir(path)
  arrays = load_fashion_mnist_idx(directory)
  if arrays is not None:
    return arrays
  if path:  # A folder the user named: not a reason to train on TFDS' copy instead.
    stems = ', '.join(s + '[.gz]' for pair in _FASHION_MNIST_FILES.values() for s in pair)
    raise DataFileNotFoundError(
        f'config.dataset.path={path!r} does not hold the four Fashion-MNIST IDX files ({stems}). '
        'Point it to the folder that does, or leave it empty to use the Debian package, '
        f'${FASHION_MNIST_ENV} or TFDS.')
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

