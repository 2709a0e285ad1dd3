"""Whole-file reads and writes in a workdir, local or in a bucket.

Workdir files go through `etils.epath` (as orbax does), so a workdir may be local or a bucket
(`gs://...`, shared by the hosts of a TPU pod); plain local files are written atomically.
"""

import io
import json
import os

import numpy as np
from etils import epath


def is_remote(path):
  """Whether `path` is in an object store (gs://, s3://, ...) rather than on a local disk."""
  return '://' in str(path)


def write_bytes(path, data: bytes):
  """Writes a whole file; a crash never leaves it half-written (local: temp file + rename; an
  object store's upload is atomic by itself)."""
  if is_remote(path):
    epath.Path(path).write_bytes(data)
    return
  tmp = f'{path}.tmp'
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:  # No temporary file left behind either.
    if os.path.exists(tmp):
      os.remove(tmp)
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
