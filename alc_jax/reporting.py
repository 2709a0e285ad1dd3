"""What a run tells people: metric writers, the terminal progress line, and results.json."""

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata

import jax
import numpy as np

try:
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  _WriterBase = metric_writers.MetricWriter
except ImportError:  # clu's TensorBoard writer imports TensorFlow; without it: JSON lines only.
  metric_writers = None
  _WriterBase = object

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'tensorflow-datasets',
            'ml-collections', 'clu', 'numpy')


class JsonlWriter(_WriterBase):
  """Appends one JSON object per write_scalars call to a file: easy to read without TensorBoard."""

  def __init__(self, path):
    self._file = open(path, 'a', encoding='utf-8')

  def write_scalars(self, step, scalars):
    row = {'step': int(step)}
    row.update({k: float(np.asarray(v)) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + '\n')
    self._file.flush()  # Readable while the run goes on, and complete up to a crash.

  def write_summaries(self, step, values, metadata=None):
    pass

  def write_images(self, step, images):
    pass

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_texts(self, step, texts):
    pass

  def write_histograms(self, step, arrays, num_buckets=None):
    pass

  def write_hparams(self, hparams):
    pass

  def flush(self):
    self._file.flush()

  def close(self):
    self._file.close()


def create_writer(workdir):
  """TensorBoard events + metrics.jsonl on the first process; logging only on the others."""
  if metric_writers is None:
    print('TensorFlow is not installed: writing metrics.jsonl only (no TensorBoard events).')
    return JsonlWriter(os.path.join(workdir, 'metrics.jsonl' if jax.process_index() == 0
                                    else f'metrics.{jax.process_index()}.jsonl'))
  if jax.process_index() > 0:
    return metric_writers.create_default_writer(workdir, just_logging=True)
  return metric_writers.MultiWriter([
      metric_writers.create_default_writer(workdir, asynchronous=False),
      JsonlWriter(os.path.join(workdir, 'metrics.jsonl')),
  ])


class Progress:
  """Prints 'step, steps/s, images/s, ETA, loss, accuracy' every `every_seconds` on process 0."""

  def __init__(self, total_steps, start_step, images_per_step, every_seconds):
    self.total, self.images_per_step, self.every = total_steps, images_per_step, every_seconds
    self._t0, self._s0 = time.time(), start_step
    self._last_print = 0.0
    self.last_accuracy = None

  def restart(self, step):
    """Starts the clock at `step` (call after the first, compiling, step so rates exclude it)."""
    self._t0, self._s0 = time.time(), step

  def steps_per_second(self, step):
    return (step - self._s0) / max(time.time() - self._t0, 1e-9)

  def maybe_print(self, step, loss, force=False):
    now = time.time()
    if jax.process_index() > 0 or (not force and now - self._last_print < self.every):
      return
    self._last_print = now
    rate = self.steps_per_second(step)
    eta = (self.total - step) / rate if rate > 0 else float('inf')
    acc = '' if self.last_accuracy is None else f' | test acc {self.last_accuracy}'
    print(f'step {step}/{self.total} ({100 * step / max(self.total, 1):.1f}%) | '
          f'{rate:.2f} steps/s, {rate * self.images_per_step:.0f} img/s | '
          f'ETA {format_seconds(eta)} | loss {loss:.4f}{acc}', flush=True)


def format_seconds(seconds):
  if not np.isfinite(seconds):
    return '?'
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'


def environment():
  """Device kind, package versions and git commit, for results.json."""
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  try:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                            text=True, timeout=10).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    commit = None
  return {
      'device_kind': jax.devices()[0].device_kind, 'platform': jax.default_backend(),
      'num_devices': jax.device_count(), 'num_processes': jax.process_count(),
      'python': sys.version.split()[0], 'machine': platform.machine(), 'versions': versions,
      'git_commit': commit,
  }


def write_json(path, payload):
  """Writes atomically (temp file + rename): a crash never leaves a half-written file."""
  tmp = f'{path}.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(payload, f, indent=2, default=lambda o: np.asarray(o).tolist())
  os.replace(tmp, path)
