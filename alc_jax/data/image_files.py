"""Image files to uint8 arrays: listing, reading headers, decoding many files with a progress line.

Every image becomes one `(H, W, C)` uint8 array of the size and channel count the data set asks
for (`decode_files`):

  * channels: 'L' (C = 1) or 'RGB' (C = 3). Alpha is dropped (RGBA -> RGB, LA -> L, as
    torchvision's folder loader does), palettes (P) and CMYK become RGB, RGB becomes L by PIL's
    ITU-R 601-2 luma, 16-bit grayscale is scaled to 8 bits (x * 255 / 65535; PIL's own
    conversion would clip it at 255).
  * size: PIL's bicubic filter (`RESAMPLE`). PIL widens a filter's support by the scale factor
    when it shrinks an image, so a downscale is antialiased (no moire), and bicubic is what the
    ImageNet pipeline resizes with (alc_jax/data/imagenet.py). Aspect ratios are not kept: an
    image of another shape is stretched to the target size.
  * EXIF orientation is applied first (photos from phones are otherwise sideways).

Large JPEGs are decoded at a reduced scale when that still covers the target size (PIL's `draft`:
the JPEG decoder's DCT scaling), which makes shrinking a photo several times faster.

Decoding runs on a thread pool (PIL releases the GIL while it decodes and resizes). Measured on
this project's 2-core CPU while a training run and other tests shared it (load average 4-8):
2,000 generated 32x32 RGB PNGs decode at 7,300-8,700 images/s, 2,000 256x192 JPEGs shrunk to
64x64 at 1,350 images/s, and a 50,000-image unlabeled folder of 32x32 PNGs took 14 s (3,600
images/s; load_dataset 19 s in all, 4 s when read back from alc_jax/data/decoded_cache.py).
"""

import concurrent.futures
import os
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from alc_jax.data.base import DataError

# The image files the folder layouts read (lower case; matched case-insensitively).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
# The channel counts images are converted to, by PIL mode.
CHANNELS = {'L': 1, 'RGB': 3}
# Modes without colour: a labeled set of these alone is converted to 'L', else to 'RGB'.
GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F')
_SIXTEEN_BIT_MODES = ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N')
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # Those that swap width and height.
PROGRESS_EVERY_SECONDS = 5.0

# PIL's resize filter (Image.Resampling.BICUBIC; the module docstring says why); cache keys hold it.
RESAMPLE = 'bicubic'


def is_image_file(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith('.')


def list_images(directory: str, recursive: bool) -> List[str]:
  """Paths relative to `directory` of its image files, sorted ('/'-separated); hidden files and
  folders are skipped."""
  found = []

  def unreadable(error):  # os.walk would skip the folder, and its images would silently vanish.
    if not (isinstance(error, FileNotFoundError) and error.filename == directory):
      raise DataError(f'Cannot list the folder {error.filename}: {type(error).__name__}: '
                      f'{error.strerror}. Make it readable (or move it out of {directory}).')

  for root, dirs, files in os.walk(directory, onerror=unreadable, followlinks=True):  # And links.
    dirs[:] = sorted(d for d in dirs if not d.startswith('.')) if recursive else []
    rel = os.path.relpath(root, directory)
    for name in files:
      if is_image_file(name):
        found.append(name if rel == '.' else os.path.join(rel, name).replace(os.sep, '/'))
  return sorted(found)


def read_header(path: str) -> Optional[Tuple[Tuple[int, int], str]]:
  """((width, height) as displayed, PIL mode) from the file's header, without decoding it; None
  if PIL cannot open it (decode_files reports it)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as img:
      size, mode = img.size, img.mode
      if img.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
        size = size[::-1]
      return size, mode
  except Exception:  # pylint: disable=broad-except  (PIL raises many kinds)
    return None


def target_mode(modes: Sequence[str]) -> str:
  """'L' when every mode is grayscale, else 'RGB' (converting colour to gray would lose it)."""
  return 'L' if modes and all(m in GRAY_MODES for m in modes) else 'RGB'


def _to_mode(img, mode: str):
  """`img` converted to 'L' or 'RGB' (see the module docstring)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if img.mode in _SIXTEEN_BIT_MODES:  # PIL's own conversion would clip at 255, not scale.
    wide = np.asarray(img).astype(np.float64) * (255.0 / 65535.0)
    img = Image.fromarray(np.clip(np.round(wide), 0, 255).astype(np.uint8), 'L')
  elif img.mode == 'P' and 'transparency' in img.info:
    img = img.convert('RGBA')  # PIL warns when a palette with transparency goes straight to RGB.
  return img if img.mode == mode else img.convert(mode)


def decode_image(path: str, size: Tuple[int, int], mode: str) -> np.ndarray:
  """One image file as uint8 (height, width, C) of `size` (width, height) and `mode`.

  Raises:
    Exception: whatever PIL raises for a file it cannot read (decode_files names the file).
  """
  from PIL import Image, ImageOps  # pylint: disable=g-import-not-at-top
  with Image.open(path) as img:
    if img.format == 'JPEG':
      side = max(size)  # Covers the target whatever the EXIF orientation does.
      img.draft(mode, (side, side))
    return conform(ImageOps.exif_transpose(img), size, mode)


def conform(img, size: Tuple[int, int], mode: str) -> np.ndarray:
  """A PIL image as uint8 (height, width, C): converted to `mode` ('L' or 'RGB') and resized to
  `size` (width, height) with RESAMPLE. The one conversion of files (decode_image) and of arrays
  given for inference (alc_jax/inference.py fit_images)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  img = _to_mode(img, mode)
  if img.size != tuple(size):
    img = img.resize(tuple(size), getattr(Image.Resampling, RESAMPLE.upper()))
  return np.asarray(img, np.uint8).reshape(size[1], size[0], CHANNELS[mode])


def _try_decode(path, size, mode):
  try:
    return decode_image(path, size, mode), None
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    return None, f'{type(e).__name__}: {e}'


class DecodeProgress:
  """Prints 'what: done/total images (rate images/s, ETA s)' at most every
  PROGRESS_EVERY_SECONDS, and a last line with the total time."""

  def __init__(self, what: str, total: int):
    self.what, self.total = what, total
    self.start = self.last = time.perf_counter()
    print(f'Decoding {total:,} images of {what} ...', flush=True)

  def update(self, done: int):
    now = time.perf_counter()
    if now - self.last >= PROGRESS_EVERY_SECONDS and done < self.total:
      self.last = now
      rate = done / max(now - self.start, 1e-9)
      eta = (self.total - done) / max(rate, 1e-9)
      print(f'  {self.what}: {done:,}/{self.total:,} images ({rate:,.0f} images/s, ETA '
            f'{eta:,.0f} s)', flush=True)

  def finish(self):
    elapsed = time.perf_counter() - self.start
    print(f'  {self.what}: {self.total:,} images decoded in {elapsed:,.1f} s '
          f'({self.total / max(elapsed, 1e-9):,.0f} images/s).', flush=True)


def decode_files(directory: str, files: Sequence[str], size: Tuple[int, int], mode: str,
                 skip_unreadable: bool, what: str,
                 out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, List[str], List[str]]:
  """Decodes `files` (relative to `directory`) in order, on all cores, with a progress line.

  Args:
    directory: the folder the paths are relative to.
    files: relative paths (list_images).
    size: (width, height) of every output image.
    mode: 'L' or 'RGB'.
    skip_unreadable: skip (and return) the files PIL cannot read, instead of raising.
    what: the folder's name in the progress line (e.g. 'unlabeled/').
    out: optional uint8 (len(files), height, width, C) array to fill, so that a large set is not
      copied once more; the decoded images are its first rows.

  Returns:
    (images uint8 (M, height, width, C), the M files decoded, the files skipped), M = len(files)
    minus the skipped ones.

  Raises:
    DataError: naming the first unreadable file (without skip_unreadable).
  """
  shape = (len(files), size[1], size[0], CHANNELS[mode])
  images = np.empty(shape, np.uint8) if out is None else out
  kept, skipped = [], []
  progress = DecodeProgress(what, len(files)) if files else None
  decode = lambda f: _try_decode(os.path.join(directory, f), size, mode)
  workers = max(1, min(8, os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    # In chunks, so that a failure stops the work early and the queue stays short.
    for start in range(0, len(files), 256):
      chunk = files[start:start + 256]
      for name, (array, error) in zip(chunk, pool.map(decode, chunk)):
        if error is not None:
          if not skip_unreadable:
            raise DataError(
                f'Cannot read image {os.path.join(directory, name)}: {error}. Remove or replace '
                'the file, or set config.dataset.skip_unreadable=True to skip such files.')
          skipped.append(name)
          continue
        images[len(kept)] = array
        kept.append(name)
      progress.update(start + len(chunk))
  if progress:
    progress.finish()
  return images[:len(kept)], kept, skipped
