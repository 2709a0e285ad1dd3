"""A user's semi-supervised image folder: labeled/, unlabeled/ and optional validation/, test/.

    ROOT/labeled/<class>/**      images with labels: the class is the first folder's name
    ROOT/unlabeled/**            images without labels, in any sub-folders
    ROOT/validation/<class>/**   optional; evaluated as eval/validation_*
    ROOT/test/<class>/**         optional; the accuracy a run reports

JPEG, PNG, WebP and BMP files are read (alc_jax/data/image_files.py); any other file is ignored,
as are hidden files and folders. Every class needs at least one labeled image; classes may hold
any number. validation/ and test/ may lack classes but not add any.

Images of any sizes and modes are converted to one size and channel count:
  * size: config.dataset.image_size x image_size when it is > 0, else (0, the default) the most
    common size in labeled/ (width x height, ties to the larger), stated on stdout;
  * channels: 'L' (grayscale) if every labeled image is grayscale, else 'RGB'.

Memory: the decoded images are held in host memory whole (labeled + unlabeled + validation + test
= N x H x W x C bytes: 50,000 images of 32x32 RGB take 0.15 GB, of 96x96 1.4 GB, of 224x224
7.5 GB). A data set whose decoded images would take more than MEMORY_FRACTION of the memory
available when it loads is refused before anything is decoded, with an error saying how much it
needs: lower config.dataset.image_size or use fewer unlabeled images. Only ImageNet is streamed
(config.dataset.name=imagenet_1pct, alc_jax/data/imagenet.py, tf.data over TFDS files).

The first run decodes everything, with a progress line; the arrays are then cached beside the data
(alc_jax/data/decoded_cache.py), so later runs only read them back.
"""

import collections
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
from absl import logging

from alc_jax.data import image_files
from alc_jax.data.base import DataError, ImageArrays, config_value
from alc_jax.data.decoded_cache import DecodedCache, entry_key

LABELED, UNLABELED, VALIDATION, TEST = 'labeled', 'unlabeled', 'validation', 'test'
# Refuse a data set whose decoded images exceed this share of the available memory: the trainer
# needs the rest (batches, the model, and a transient copy of one channel for the statistics).
MEMORY_FRACTION = 0.5


def available_memory() -> int:
  """Bytes of memory available to this process now (Linux' MemAvailable; else all of it)."""
  try:
    with open('/proc/meminfo', encoding='ascii') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def _class_files(root: str, split: str, class_names: Sequence[str]) -> List[Tuple[str, int]]:
  """(path relative to ROOT/split, label) of every image of split/<class>/; refuses images that
  lie in split/ itself and classes that labeled/ lacks."""
  directory = os.path.join(root, split)
  files = image_files.list_images(directory, recursive=True)
  loose = [f for f in files if '/' not in f]
  if loose:
    raise DataError(
        f'Image folder data set {root}: {os.path.join(directory, loose[0])} lies in {split}/ '
        f'itself, outside any class folder ({len(loose)} such image(s)); put every image of '
        f'{split}/ in {split}/<class_name>/.')
  index = {name: label for label, name in enumerate(class_names)}
  folders = sorted({f.split('/', 1)[0] for f in files} | set(_folders(directory)))
  unknown = [name for name in folders if name not in index]
  if unknown:
    raise DataError(
        f'Image folder data set {root}: {split}/ has the class folder(s) {unknown}, which '
        f'{LABELED}/ lacks (its classes: {list(class_names)}); the network can only learn '
        f'classes with labeled images: add them to {LABELED}/ or remove them from {split}/.')
  return [(f, index[f.split('/', 1)[0]]) for f in files]


def _folders(directory: str) -> List[str]:
  return sorted(d for d in os.listdir(directory)
                if os.path.isdir(os.path.join(directory, d)) and not d.startswith('.'))


def _target(root: str, labeled: Sequence[Tuple[str, int]], image_size: int):
  """((width, height), mode, why) of every converted image, from the labeled images' headers."""
  headers = [image_files.read_header(os.path.join(root, LABELED, f)) for f, _ in labeled]
  headers = [h for h in headers if h is not None]  # decode_files reports the unreadable ones.
  mode = image_files.target_mode([m for _, m in headers])
  if image_size > 0:
    return (image_size, image_size), mode, f'config.dataset.image_size={image_size}'
  counts = collections.Counter(size for size, _ in headers)
  if not counts:  # Nothing readable: decode_files names the first file.
    return (1, 1), mode, ''
  size = max(counts, key=lambda s: (counts[s], s[0] * s[1], s))
  share = counts[size] / len(headers)
  return size, mode, (f'the most common size in {LABELED}/, {100 * share:.0f}% of its images; '
                      'set config.dataset.image_size to choose another')


def _check_memory(root: str, total: int, size, mode):
  needed = total * size[0] * size[1] * image_files.CHANNELS[mode]
  available = available_memory()
  if needed > MEMORY_FRACTION * available:
    raise DataError(
        f'Image folder data set {root}: its {total:,} images decoded at {size[0]}x{size[1]} '
        f'{mode} take {needed / 1e9:.1f} GB, more than {MEMORY_FRACTION:.0%} of the '
        f'{available / 1e9:.1f} GB of memory available; image folders are held in memory whole. '
        'Lower config.dataset.image_size (half the side takes a quarter of the memory) or use '
        'fewer unlabeled images. Data this large must be streamed, which only '
        'config.dataset.name=imagenet_1pct does (tf.data over TFDS files, '
        'alc_jax/data/imagenet.py).')


class _Decoder:
  """Decodes the split folders of one data set at one size and mode, through the cache."""

  def __init__(self, root, size, mode, skip_unreadable, cache_dir):
    self.root, self.size, self.mode, self.skip = root, size, mode, skip_unreadable
    self.cache = DecodedCache(root, cache_dir)
    self.skipped: List[str] = []

  def __call__(self, split: str, files: Sequence[str], out=None):
    """(images, files kept) of ROOT/split; `out` as image_files.decode_files."""
    directory = os.path.join(self.root, split)
    if not files:  # Nothing to decode or cache (an empty or absent unlabeled/).
      return np.zeros((0, self.size[1], self.size[0], image_files.CHANNELS[self.mode]),
                      np.uint8), []
    key = entry_key(directory, files, self.size, self.mode, self.skip)
    hit = self.cache.load(split, key)
    if hit is not None:
      cached, kept, skipped = hit
      images = np.empty(cached.shape, np.uint8) if out is None else out[:len(kept)]
      images[...] = cached  # Copied from the memory map once.
      print(f'{split}/: {len(kept):,} decoded images read from the cache.', flush=True)
    else:
      images, kept, skipped = image_files.decode_files(
          directory, files, self.size, self.mode, self.skip, f'{split}/', out=out)
      self.cache.store(split, key, images, kept, skipped)
    self.skipped += [os.path.join(directory, f) for f in skipped]
    return images, kept


def load_labeled_folder(root: str, dataset_config) -> ImageArrays:
  """Loads ROOT/labeled/, unlabeled/, validation/, test/ (the module docstring).

  Args:
    root: the data set's folder.
    dataset_config: config.dataset (`image_size`, `skip_unreadable`, `cache_dir`).

  Returns:
    ImageArrays with given_split: x_train = the labeled images then the unlabeled ones (label
    -1), the class names (the labeled/ folder names, sorted: label ids).

  Raises:
    DataError: naming the file or folder and the fix (module docstring); nothing is cached for a
      split that fails.
  """
  image_size = int(config_value(dataset_config, 'image_size', 0))
  skip = bool(config_value(dataset_config, 'skip_unreadable', False))
  class_names = tuple(_folders(os.path.join(root, LABELED)))
  labeled = _class_files(root, LABELED, class_names)  # First: it names a stray image.
  if not class_names:
    raise DataError(f'Image folder data set {root}: {LABELED}/ has no class folders; expected '
                    f'{root}/{LABELED}/<class_name>/*.png.')
  counts = np.bincount(np.asarray([label for _, label in labeled], np.int64),
                       minlength=len(class_names))
  if counts.min() == 0:
    empty = [class_names[c] for c in np.flatnonzero(counts == 0)]
    raise DataError(f'Image folder data set {root}: {LABELED}/ class folder(s) {empty} hold no '
                    f'image ({"/".join(image_files.IMAGE_EXTENSIONS)}); every class needs at '
                    'least one labeled image.')
  evaluation = {split: _class_files(root, split, class_names) for split in (VALIDATION, TEST)
                if os.path.isdir(os.path.join(root, split))}
  for split, files in evaluation.items():
    if not files:
      raise DataError(f'Image folder data set {root}: {split}/ holds no image; add images to '
                      f'{split}/<class_name>/ or remove the folder.')
  unlabeled_dir = os.path.join(root, UNLABELED)
  unlabeled = (image_files.list_images(unlabeled_dir, recursive=True)
               if os.path.isdir(unlabeled_dir) else [])

  size, mode, why = _target(root, labeled, image_size)
  total = len(labeled) + len(unlabeled) + sum(len(f) for f in evaluation.values())
  _check_memory(root, total, size, mode)
  print(f'Image folder data set {root}: {len(labeled):,} labeled images in {len(class_names)} '
        f'classes, {len(unlabeled):,} unlabeled, '
        + ', '.join(f'{len(f):,} {s}' for s, f in evaluation.items())
        + f'{"; " if evaluation else ""}images converted to {size[0]}x{size[1]} {mode}'
        + (f': {why}.' if why else '.'), flush=True)

  decode = _Decoder(root, size, mode, skip, config_value(dataset_config, 'cache_dir', '') or '')
  x_train = np.empty((len(labeled) + len(unlabeled), size[1], size[0],
                      image_files.CHANNELS[mode]), np.uint8)
  label_of = dict(labeled)
  _, kept = decode(LABELED, [f for f, _ in labeled], out=x_train)
  y_labeled = np.asarray([label_of[f] for f in kept], np.int32)
  missing = sorted(set(range(len(class_names))) - set(y_labeled.tolist()))
  if missing:  # Every image of a class was skipped.
    raise DataError(f'Image folder data set {root}: no readable labeled image is left in class '
                    f'folder(s) {[class_names[c] for c in missing]}; every class needs one.')
  _, kept_unlabeled = decode(UNLABELED, unlabeled, out=x_train[len(kept):])
  x_train = x_train[:len(kept) + len(kept_unlabeled)]
  y_train = np.concatenate([y_labeled, np.full(len(kept_unlabeled), -1, np.int32)])
  arrays: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
  for split, files in evaluation.items():
    label_of = dict(files)
    images, kept = decode(split, [f for f, _ in files])
    if not kept:
      raise DataError(f'Image folder data set {root}: no readable image is left in {split}/; '
                      'replace its images or remove the folder.')
    arrays[split] = (images, np.asarray([label_of[f] for f in kept], np.int32))
  if decode.skipped:
    message = (f'Skipped {len(decode.skipped)} unreadable image(s) of {root} '
               f'(config.dataset.skip_unreadable=True), e.g. {decode.skipped[0]}.')
    logging.warning(message)
    print(f'Warning: {message}', flush=True)
  x_test, y_test = arrays.get(TEST, (None, None))
  x_validation, y_validation = arrays.get(VALIDATION, (None, None))
  return ImageArrays(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     num_classes=len(class_names), class_names=class_names,
                     x_validation=x_validation, y_validation=y_validation, given_split=True)
