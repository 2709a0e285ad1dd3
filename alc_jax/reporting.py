"""What a run tells people: metric writers, the terminal progress line, and results.json.

Files are written through alc_jax/workdir_io.py (local or gs://, atomic).
"""

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata

import jax
import numpy as np
from etils import epath

from alc_jax import host, workdir_io

# What an evaluation measures of a model, by its key's infix (accuracy_key): the accuracy (R,),
# the top-5 accuracy (R,) with config.eval_top5, the accuracy of each class (R, K). Which values
# are per class is read from their shape (`is_per_class`), never from their names.
ACCURACY_KINDS = {'accuracy': '', 'top5': '_top5', 'per_class': '_class'}


def accuracy_key(model, split='test', kind='accuracy'):
  """The key of a model's accuracy in evaluations.json, results.json and metrics.jsonl ('eval/'
  +): '[<split>_]<model><infix>_accuracy', e.g. 'teacher_accuracy' (test set),
  'validation_student_top5_accuracy'. `model`: 'student', 'teacher', 'ema' (Experiment.models);
  `kind`: one of ACCURACY_KINDS."""
  prefix = '' if split == 'test' else f'{split}_'
  return f'{prefix}{model}{ACCURACY_KINDS[kind]}_accuracy'


def is_per_class(value):
  """Whether an evaluation value holds one accuracy per class of each run, (R, K), rather than
  one per run, (R,)."""
  return np.ndim(value) == 2
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'tensorflow-datasets',
            'ml-collections', 'clu', 'numpy')


class JsonlWriter:
  """One JSON object per write_scalars call, a line each: easy to read without TensorBoard.

  clu's MetricWriter interface, by duck typing: subclassing it would import clu.metric_writers,
  whose TensorBoard writer imports TensorFlow (see create_writer).

  A local file is appended to line by line, unbuffered (readable while the run goes on, complete
  up to a crash). Object stores cannot append, so a remote file (`gs://...`) is rewritten whole
  on flush(), which the training loop calls at every checkpoint.
  """

  def __init__(self, path, remote=None, resume_step=None):
    """`resume_step`: the step the run resumes from; the rows of later steps (logged by a run
    that crashed after its last checkpoint, trained again now) and a line cut short by a crash
    are dropped, so that every step appears once."""
    self._path = epath.Path(path)
    self._remote = workdir_io.is_remote(path) if remote is None else remote
    text = self._path.read_text() if self._path.exists() else ''
    lines = text.splitlines()
    kept = [line for line in lines if _row_step(line) is not None
            and (resume_step is None or _row_step(line) <= resume_step)]
    if self._remote:
      self._lines = kept
    else:
      # Also a last row whole but for its newline (a write cut there): the next row would join it.
      if kept != lines or (text and not text.endswith('\n')):
        workdir_io.write_bytes(path, ''.join(line + '\n' for line in kept).encode('utf-8'))
      # Unbuffered bytes: a line is written whole by one call or not at all, and a failed write
      # (a full disk) leaves nothing buffered for a later flush to retry.
      self._file = open(path, 'ab', buffering=0)

  def write_scalars(self, step, scalars):
    row = {'step': int(step)}
    row.update({k: float(np.asarray(v)) for k, v in scalars.items()})
    if self._remote:
      self._lines.append(json.dumps(row))
    else:
      self._file.write((json.dumps(row) + '\n').encode('utf-8'))

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
    if self._remote:
      self._path.write_text(''.join(line + '\n' for line in self._lines))

  def close(self):
    self.flush()
    if not self._remote:
      self._file.close()


def _row_step(line):
  """The step of a metrics.jsonl line, or None for a line cut short by a crash."""
  try:
    return int(json.loads(line)['step'])
  except (ValueError, KeyError, TypeError):
    return None


def create_writer(workdir, resume_step=0, tensorboard=True):
  """TensorBoard events + metrics.jsonl on the first process; logging only on the others.
  metrics.jsonl keeps the rows up to `resume_step` (see JsonlWriter).

  clu.metric_writers is imported here, not with this module: its TensorBoard writer imports
  TensorFlow (~4 s), which a run without TensorBoard (`tensorboard=False`, config.tensorboard),
  a notebook and every script that does not train never need."""
  metric_writers = None
  if tensorboard:
    try:
      from clu import metric_writers  # pylint: disable=g-import-not-at-top
    except ImportError:
      print('TensorFlow is not installed: writing metrics.jsonl only (no TensorBoard events).')
  if metric_writers is None:
    return JsonlWriter(f'{workdir}/metrics.jsonl' if jax.process_index() == 0
                       else f'{workdir}/metrics.{jax.process_index()}.jsonl',
                       resume_step=resume_step)
  if jax.process_index() > 0:
    return metric_writers.create_default_writer(workdir, just_logging=True)
  return metric_writers.MultiWriter([
      metric_writers.create_default_writer(workdir, asynchronous=False),
      JsonlWriter(f'{workdir}/metrics.jsonl', resume_step=resume_step),
  ])


class Progress:
  """Prints 'step, steps/s, images/s, ETA, loss, accuracy' every `every_seconds` on process 0."""

  def __init__(self, total_steps, start_step, images_per_step, every_seconds):
    self.total, self.images_per_step, self.every = total_steps, images_per_step, every_seconds
    self._t0, self._s0 = time.time(), start_step
    self._last_print = 0.0
    self.last_accuracy = None  # The latest evaluation, as the line shows it: 'test acc 81.20%'.

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
    acc = '' if self.last_accuracy is None else f' | {self.last_accuracy}'
    print(f'step {step}/{self.total} ({100 * step / max(self.total, 1):.1f}%) | '
          f'{rate:.2f} steps/s, {rate * self.images_per_step:.0f} img/s | '
          f'ETA {format_seconds(eta)} | loss {loss:.4f}{acc}', flush=True)


def format_seconds(seconds):
  if not np.isfinite(seconds):
    return '?'
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'


def environment():
  """Device kind, CPU, package versions and git commit, for results.json."""
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
  cpu, cpu_isa = host.cpu()
  return {
      'device_kind': jax.devices()[0].device_kind, 'platform': jax.default_backend(),
      'num_devices': jax.device_count(), 'num_processes': jax.process_count(),
      'python': sys.version.split()[0], 'machine': platform.machine(), 'cpu': cpu,
      'cpu_isa': cpu_isa, 'versions': versions,
      'git_commit': commit,
  }


def evaluation_row(step, result):
  """One row of evaluations.json: the step and every accuracy (per run) as lists."""
  return {'step': step, **{k: np.asarray(v).tolist() for k, v in result.items()}}


def final_accuracy_line(summary, eval_names):
  """The line a finished run prints: the accuracies of results.json's `summary` (mean over runs,
  in %), named after the first evaluation set (the test set, else the validation set), or that
  it reports none when the data set has neither."""
  if not eval_names:
    return ('Final accuracy: none; the data set has neither a test nor a validation set, so this '
            'run reports no accuracy (results.json records the training only).')
  return f'Final {eval_names[0]} accuracy (%): ' + ', '.join(
      f'{k} {v:.2f}' for k, v in summary.items() if k.endswith('accuracy_mean'))


def results_record(config, history, *, seeds, split_seeds, priors, steps, steps_per_epoch,
                   labeled_batch_size, mesh_devices, wall_time_s, resumed_from_step,
                   images_per_second, models, reported_model, num_labels, hosts=()):
  """results.json of a finished run: what ran, the final and best evaluation (per run, from the
  `evaluation_row`s in `history`), their mean/std over runs in %, the final per-class accuracies,
  each run's labeled class shares (`priors`, r of Eq. 14) and the environment.
  `models`: the models evaluated ('student', 'teacher' or 'ema'); `reported_model`: the one whose
  accuracy the method reports; `num_labels`: labeled images per run (config.dataset.num_labels
  resolved); `hosts`: which steps ran on which host (alc_jax/host.py: a run reproduces to the
  digit only on the same kind of host)."""
  last = {k: v for k, v in history[-1].items() if k != 'step'}
  final = {k: v for k, v in last.items() if not is_per_class(v)}
  best = {k: np.max([row[k] for row in history if k in row], axis=0) for k in final}
  return {
      'method': config.method, 'alc': bool(config.alc.enabled),
      'alc_imbalance': config.alc.imbalance if config.alc.enabled else 'none',
      'dataset': config.dataset.name, 'num_labels': num_labels,
      'imbalance_ratio': config.dataset.imbalance_ratio, 'model': config.model.name,
      'model_width': config.model.width, 'num_runs': config.num_runs, 'seeds': seeds,
      'split_seeds': split_seeds,
      # r of Eq. 14 per run: the class shares of that run's labeled split, [run][class] (under
      # imbalance each split draws which classes are large; per-class tables read it).
      'labeled_class_prior': np.asarray(priors, float).tolist(),
      'steps': steps, 'epochs': steps / steps_per_epoch,
      'steps_per_epoch': steps_per_epoch, 'batch_size': config.batch_size,
      'labeled_batch_size': labeled_batch_size, 'mesh_devices': mesh_devices,
      'wall_time_s': wall_time_s, 'resumed_from_step': resumed_from_step,
      'images_per_second': images_per_second,
      # Which model each accuracy belongs to: '<model>_accuracy' for every model evaluated;
      # 'reported_model' is the one the method's tables report.
      'models': list(models),
      'reported_model': reported_model,
      # 'best': each run's largest value of each key over the evaluations, key by key (the
      # student's and the teacher's best, or test's and validation's, may be of other steps).
      'final': final, 'best': {k: np.asarray(v).tolist() for k, v in best.items()},
      # Final accuracy of each class, per run: [run][class].
      'final_per_class': {k: v for k, v in last.items() if is_per_class(v)},
      'summary': {f'{k}_{stat}': float(fn(100 * np.asarray(v))) for k, v in final.items()
                  for stat, fn in (('mean', np.mean), ('std', np.std))},
      'config': config.to_dict(), **environment(), 'hosts': list(hosts),
  }
