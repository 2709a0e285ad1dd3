"""The decoded images of an image folder, kept on disk so that a rerun does not decode them again.

Where: `ROOT/.alc_jax_cache/` beside the data (hidden, so no folder layout reads it), or, when that
cannot be written (a read-only mount, someone else's files), `config.dataset.cache_dir` if set,
else `$XDG_CACHE_HOME/alc_jax` (default `~/.cache/alc_jax`). If no place can be written the
images are decoded every run and a warning says so.

What: one entry per split folder (labeled/, unlabeled/, ...): `<prefix>-<key>.npy`, the uint8
images (read back memory-mapped and copied once into the training array), and
`<prefix>-<key>.json`, the files decoded and those skipped. The key hashes everything the
images depend on: each file's relative path, size and modification time (nanoseconds), the
target size and mode, the resize filter, skip_unreadable and a format version. So adding,
removing, replacing or touching a file, or changing config.dataset.image_size, makes a new entry;
the older entries of the same folder are then deleted.

Atomic: each file is written by `workdir_io.write_atomically` (a unique temporary name in the same
folder, flushed to disk, renamed into place; the .json first, the .npy last: an entry counts only
when its .npy exists), so a crash or a full disk leaves either a whole entry or none (a stray
temporary file at worst).
"""

import hashlib
import json
import os
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from alc_jax import workdir_io
from alc_jax.data.image_files import RESAMPLE

CACHE_FOLDER = '.alc_jax_cache'  # Beside the data: ROOT/.alc_jax_cache/.
_FORMAT_VERSION = 1


def _default_fallback() -> str:
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'alc_jax')


def entry_key(directory: str, files: Sequence[str], size: Tuple[int, int], mode: str,
              skip_unreadable: bool) -> str:
  """The hash that names an entry (see the module docstring)."""
  digest = hashlib.sha256()
  digest.update(json.dumps([_FORMAT_VERSION, list(size), mode, RESAMPLE,
                            bool(skip_unreadable)]).encode())
  for name in files:
    try:
      stat = os.stat(os.path.join(directory, name))
      entry = f'\t{stat.st_size}\t{stat.st_mtime_ns}'
    except OSError:  # A dangling link, a file gone since the listing: decoding reports it.
      entry = '\tunreadable'
    # os.fsencode: a name in another encoding than UTF-8 (its bytes as the file system has them).
    digest.update(b'\n' + os.fsencode(name) + entry.encode())
  return digest.hexdigest()[:32]


class DecodedCache:
  """The cache entries of one data root.

  Args:
    root: the data set's folder.
    cache_dir: config.dataset.cache_dir: where to cache when beside the data cannot be written
      ('' = `$XDG_CACHE_HOME/alc_jax`).
  """

  def __init__(self, root: str, cache_dir: str = ''):
    self.root = os.path.abspath(root)
    # Entries outside the data root are named after it, so that several roots share a folder.
    root_tag = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:12]
    self.places = [(os.path.join(self.root, CACHE_FOLDER), ''),
                   (cache_dir or _default_fallback(), f'{root_tag}-')]

  def _paths(self, place, split, key):
    folder, tag = place
    stem = os.path.join(folder, f'{tag}{split}-{key}')
    return stem + '.npy', stem + '.json'

  def load(self, split: str, key: str) -> Optional[Tuple[np.ndarray, List[str], List[str]]]:
    """(images memory-mapped read-only, files decoded, files skipped) of an entry, or None."""
    for place in self.places:
      npy, meta = self._paths(place, split, key)
      if os.path.isfile(npy) and os.path.isfile(meta):
        try:
          with open(meta, encoding='utf-8') as f:
            record = json.load(f)
          return np.load(npy, mmap_mode='r'), record['files'], record['skipped']
        except (OSError, ValueError, KeyError) as e:  # A damaged entry: decode again.
          logging.warning('Ignoring the damaged cache entry %s: %s', npy, e)
    return None

  def store(self, split: str, key: str, images: np.ndarray, files: Sequence[str],
            skipped: Sequence[str]) -> Optional[str]:
    """Writes an entry at the first place that takes it; returns its .npy path, or None (with a
    warning) when none does. Older entries of the split at that place are deleted."""
    errors = []
    for place in self.places:
      npy, meta = self._paths(place, split, key)
      try:
        os.makedirs(place[0], exist_ok=True)
        record = json.dumps({'files': list(files), 'skipped': list(skipped)}).encode()
        workdir_io.write_atomically(meta, lambda f: f.write(record))
        workdir_io.write_atomically(npy, lambda f: np.save(f, images, allow_pickle=False))
      except OSError as e:
        errors.append(f'{place[0]}: {e.strerror or e}')
        for path in (npy, meta):  # A .json whose .npy failed is useless.
          _remove(path)
        continue
      self._delete_older(place, split, key)
      return npy
    message = ('Could not cache the decoded images (' + '; '.join(errors) + '); they will be '
               'decoded again next run. Set config.dataset.cache_dir to a writable folder.')
    logging.warning(message)
    print(f'Warning: {message}', flush=True)
    return None

  def _delete_older(self, place, split, key):
    """Deletes the split's other entries at `place`, and temporary files a crash left there
    (those older than a day: a younger one may be another process's write in progress)."""
    folder, tag = place
    prefix = f'{tag}{split}-'
    for name in os.listdir(folder):
      path = os.path.join(folder, name)
      stem, ext = os.path.splitext(name)
      if not name.startswith(prefix):
        continue
      if ext == '.tmp':
        try:
          if time.time() - os.path.getmtime(path) > 24 * 3600:
            _remove(path)
        except OSError:
          pass
      elif ext in ('.npy', '.json') and stem != prefix + key and len(stem) == len(prefix + key):
        _remove(path)


def _remove(path):
  try:
    os.remove(path)
  except OSError:
    pass
