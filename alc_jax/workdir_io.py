"""Whole-file reads and writes in a workdir, local or in a bucket.

Workdir files go through `etils.epath` (as orbax does), so a workdir may be local or a bucket
(`gs://...`, shared by the hosts of a TPU pod); plain local files are written atomically.
"""

import io
import json
import os
import tempfile

import numpy as np
from etils import epath


def _file_mode():
  """The mode open() gives a new file under this process's umask (mkstemp's is 0600). Read once,
  at import: os.umask can only be read by setting it, which must not race another thread."""
  umask = os.umask(0o022)
  os.umask(umask)
  return 0o666 & ~umask


_FILE_MODE = _file_mode()


def is_remote(path):
  """Whether `path` is in an object store (gs://, s3://, ...) rather than on a local disk."""
  return '://' in str(path)


def make_dirs(path):
  """Creates the local folder `path` and its parents; nothing for an object store, which has no
  folders (each file is written under its full name)."""
  if not is_remote(path):
    os.makedirs(path, exist_ok=True)


def write_bytes(path, data: bytes):
  """Writes a whole file; a crash never leaves it half-written (local: `write_atomically`; an
  object store's upload is atomic by itself)."""
  if is_remote(path):
    epath.Path(path).write_bytes(data)
  else:
    write_atomically(path, lambda f: f.write(data))


def write_atomically(path, write):
  """Calls write(file) on a temporary file beside the local `path`, flushes it to disk and renames
  it to `path`: a crash, a full disk or an error in `write` leaves the old file whole (or none)
  and removes the temporary file. Its name is unique (`<name>.<random>.tmp`), so that processes
  writing the same path (the decoded-image cache a data folder's users share) never write into
  one file."""
  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + '.', suffix='.tmp',
                             dir=os.path.dirname(path) or '.')
  try:
    with os.fdopen(fd, 'wb') as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())  # The bytes on disk before the rename makes them the file.
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)
  except BaseException:
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise


def write_json(path, payload):
  text = json.dumps(payload, indent=2, default=lambda o: np.asarray(o).tolist())
  write_bytes(path, text.encode('utf-8'))


def read_json(path, default=None):
  """The JSON in `path`, or `default` when there is no such file."""
  path = epath.Path(path)
  return json.loads(path.read_text()) if path.exists() else default


def write_npz(path, **arrays):
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_bytes(path, buffer.getvalue())
