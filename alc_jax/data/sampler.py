"""Host-side batching: the two-stream training sampler and padded evaluation batches.

Training batches follow the Mean Teacher two-stream sampler: every global batch holds exactly
`labeled_batch_size` labeled examples followed by unlabeled ones (Sec. 5.2-5.4: 10 of 100 on
Fashion-MNIST, 30 on CIFAR-10, 3 on SVHN). Each stream cycles through its set with a fresh shuffle
per pass.

The batch of step t is a pure function of (seed, t): stream position p lives in pass k = p // N
whose order is a permutation seeded by (seed, stream, k). Nothing depends on what was drawn
before, so a run resumed from a checkpoint at step t sees the batches an uninterrupted run sees,
and every process of a multi-host run computes the same global batch and takes its own rows.
"""

import queue
import sys
import threading
from typing import Callable, Dict, Iterator, Sequence, Tuple

import numpy as np

_LABELED_STREAM = 0
_UNLABELED_STREAM = 1
_CACHED_PASSES = 4  # Per stream; a batch spans at most a few passes unless the set is tiny.


class BatchSampler:
  """Deterministic two-stream batch sampler over indices into the training set.

  Args:
    labeled: indices of labeled examples (non-empty).
    unlabeled: indices of unlabeled examples, disjoint from labeled. If empty, every row of every
      batch is labeled (supervised training on a fully labeled set).
    batch_size: global batch size B (all processes together).
    labeled_batch_size: labeled rows per global batch, 0 < Lb <= B; Lb == B gives all-labeled
      batches.
    seed: non-negative seed of both streams.
  """

  def __init__(self, labeled: np.ndarray, unlabeled: np.ndarray, batch_size: int,
               labeled_batch_size: int, seed: int):
    self.labeled = np.asarray(labeled, np.int64).ravel()
    self.unlabeled = np.asarray(unlabeled, np.int64).ravel()
    if batch_size <= 0:
      raise ValueError(f'batch_size must be positive, got {batch_size}')
    if not 0 < labeled_batch_size <= batch_size:
      raise ValueError(f'labeled_batch_size must satisfy 0 < labeled_batch_size <= batch_size, '
                       f'got {labeled_batch_size} with batch_size {batch_size}')
    if not self.labeled.size:
      raise ValueError('the labeled set is empty; every batch needs labeled examples')
    if seed < 0:
      raise ValueError(f'seed must be non-negative, got {seed}')
    if np.intersect1d(self.labeled, self.unlabeled).size:
      raise ValueError('labeled and unlabeled index sets overlap')
    self.batch_size = int(batch_size)
    self.seed = int(seed)
    # Without unlabeled data the whole batch comes from the labeled stream.
    self.labeled_batch_size = (int(labeled_batch_size) if self.unlabeled.size
                               else self.batch_size)
    self._cache = {_LABELED_STREAM: {}, _UNLABELED_STREAM: {}}
    self._lock = threading.Lock()

  def _permutation(self, stream: int, k: int) -> np.ndarray:
    """Order of pass k of a stream; cached because consecutive steps reuse the same pass."""
    # The lock makes the cache safe when the prefetch thread and the caller both sample.
    with self._lock:
      cache = self._cache[stream]
      perm = cache.get(k)
      if perm is None:
        if len(cache) >= _CACHED_PASSES:
          cache.pop(min(cache))  # Training moves forward, so the oldest pass is least useful.
        size = len(self.labeled if stream == _LABELED_STREAM else self.unlabeled)
        perm = np.random.default_rng([self.seed, stream, k]).permutation(size)
        cache[k] = perm
      return perm

  def _stream_slice(self, stream: int, start: int, count: int) -> np.ndarray:
    """Positions [start, start + count) of perm_0 ++ perm_1 ++ ... mapped to dataset indices."""
    pool = self.labeled if stream == _LABELED_STREAM else self.unlabeled
    n = len(pool)
    out = []
    while count > 0:
      k, offset = divmod(start, n)
      take = min(count, n - offset)
      out.append(self._permutation(stream, k)[offset:offset + take])
      start += take
      count -= take
    return pool[np.concatenate(out)] if out else pool[:0]

  def global_indices(self, step: int) -> Tuple[np.ndarray, np.ndarray]:
    """The global batch of a training step.

    Args:
      step: global step t >= 0.

    Returns:
      (indices int64 (B,), is_labeled bool (B,)): labeled rows first, then unlabeled rows.
    """
    if step < 0:
      raise ValueError(f'step must be non-negative, got {step}')
    n_lab = self.labeled_batch_size
    n_unl = self.batch_size - n_lab
    idx = np.concatenate([
        self._stream_slice(_LABELED_STREAM, step * n_lab, n_lab),
        self._stream_slice(_UNLABELED_STREAM, step * n_unl, n_unl),
    ])
    is_labeled = np.arange(self.batch_size) < n_lab
    return idx, is_labeled

  def __repr__(self):
    return (f'BatchSampler(labeled={len(self.labeled)}, unlabeled={len(self.unlabeled)}, '
            f'batch_size={self.batch_size}, labeled_batch_size={self.labeled_batch_size}, '
            f'seed={self.seed})')


def _local_rows(batch_size: int, process_index: int, process_count: int) -> slice:
  if process_count <= 0 or not 0 <= process_index < process_count:
    raise ValueError(f'need 0 <= process_index < process_count, got {process_index} of '
                     f'{process_count}')
  if batch_size % process_count:
    raise ValueError(f'batch size {batch_size} is not divisible by process_count '
                     f'{process_count}')
  local = batch_size // process_count
  return slice(process_index * local, (process_index + 1) * local)


def _with_channels(x: np.ndarray) -> np.ndarray:
  # Grayscale sets may come as (N, H, W); the models expect NHWC.
  return x[..., None] if x.ndim == 3 else x


def _produce(make_batch: Callable[[int], Dict[str, np.ndarray]], step: int, out: queue.Queue,
             stop: threading.Event):
  """Producer loop. A free function: a bound method would keep the iterator alive forever."""
  while not stop.is_set():
    try:
      item = (True, make_batch(step))
    except BaseException as e:  # Handed to the consumer, which re-raises it.
      item = (False, e)
    while not stop.is_set():
      try:
        out.put(item, timeout=0.1)
        break
      except queue.Full:
        continue
    if not item[0]:
      return
    step += 1


class _Prefetcher:
  """Iterator over make_batch(start), make_batch(start + 1), ... filled by a daemon thread.

  One producer thread computes the batches in step order, so the output is identical to calling
  make_batch in a loop; it only runs ahead by `prefetch` batches. close(), leaving a `with` block
  or dropping the last reference stops the thread.
  """

  def __init__(self, make_batch: Callable[[int], Dict[str, np.ndarray]], start: int,
               prefetch: int):
    self._make_batch = make_batch
    self._step = start
    self._stop = threading.Event()
    self._queue = None
    self._thread = None
    if prefetch > 0:
      self._queue = queue.Queue(maxsize=prefetch)
      self._thread = threading.Thread(target=_produce,
                                      args=(make_batch, start, self._queue, self._stop),
                                      daemon=True, name='train-batch-prefetch')
      self._thread.start()

  def __iter__(self):
    return self

  def __next__(self) -> Dict[str, np.ndarray]:
    if self._stop.is_set():
      raise StopIteration
    if self._queue is None:
      batch = self._make_batch(self._step)
      self._step += 1
      return batch
    ok, value = self._queue.get()
    if not ok:
      self.close()
      raise value
    return value

  def close(self, _finalizing=sys.is_finalizing):
    """Stops the producer thread; later next() calls raise StopIteration."""
    self._stop.set()
    # At interpreter exit (a generator that holds this iterator finalised late) the modules'
    # globals, threading's and ours, may be gone already (hence `_finalizing` bound here): no
    # join then, the daemon thread dies with the process.
    if self._thread is not None and not _finalizing():
      self._thread.join(timeout=1.0)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def __del__(self):
    self._stop.set()


def make_train_iterator(x_train: np.ndarray,
                        y_train: np.ndarray,
                        samplers: Sequence[BatchSampler],
                        start_step: int = 0,
                        process_index: int = 0,
                        process_count: int = 1,
                        prefetch: int = 2) -> Iterator[Dict[str, np.ndarray]]:
  """Endless iterator of this process's training batches, one per step from start_step.

  Args:
    x_train: (N, H, W, C) or (N, H, W) uint8 training images.
    y_train: (N,) integer training labels (only labeled rows' labels are passed on).
    samplers: one BatchSampler per independent run (R runs trained side by side with vmap); all
      must have the same batch size.
    start_step: first global step (the step of the restored checkpoint when resuming).
    process_index: this process; it gets rows [p * B_local, (p + 1) * B_local) of every global
      batch, B_local = B / process_count.
    process_count: number of processes sharing the global batch.
    prefetch: batches gathered ahead by a background thread; 0 gathers on demand.

  Returns:
    An iterator (with close(), usable in a `with` block) of dicts:
      image: uint8 (R, B_local, H, W, C);
      label: int32 (R, B_local), the true label on labeled rows and -1 on unlabeled rows, so the
        trainer cannot see the labels of unlabeled data;
      labeled: bool (R, B_local);
      diagnostic_label: int32 (R, B_local), the true label of every row, for the attention
        diagnostics only (`attention.similarity_diagnostics`); it never reaches a loss.
  """
  if not samplers:
    raise ValueError('samplers is empty; pass one BatchSampler per run')
  batch_size = samplers[0].batch_size
  if any(s.batch_size != batch_size for s in samplers):
    raise ValueError(f'all samplers must share one batch size, got '
                     f'{[s.batch_size for s in samplers]}')
  if start_step < 0:
    raise ValueError(f'start_step must be non-negative, got {start_step}')
  rows = _local_rows(batch_size, process_index, process_count)
  x_train = _with_channels(np.asarray(x_train))
  y_train = np.asarray(y_train)

  def make_batch(step: int) -> Dict[str, np.ndarray]:
    images, labels, labeled, true_labels = [], [], [], []
    for sampler in samplers:
      idx, is_labeled = sampler.global_indices(step)
      idx, is_labeled = idx[rows], is_labeled[rows]
      images.append(x_train[idx])
      labels.append(np.where(is_labeled, y_train[idx], -1).astype(np.int32))
      labeled.append(is_labeled)
      true_labels.append(y_train[idx].astype(np.int32))
    return {'image': np.stack(images), 'label': np.stack(labels), 'labeled': np.stack(labeled),
            'diagnostic_label': np.stack(true_labels)}

  return _Prefetcher(make_batch, start_step, prefetch)


def eval_batches(x: np.ndarray,
                 y: np.ndarray,
                 batch_size: int,
                 process_index: int = 0,
                 process_count: int = 1) -> Iterator[Dict[str, np.ndarray]]:
  """Fixed-shape evaluation batches covering every example exactly once.

  The examples are cut in order into global batches of batch_size; the last one is padded with
  zero images and label -1 (mask False) so every batch has the same shape and compiles once.
  Each process gets rows [p * B_local, (p + 1) * B_local) of every global batch.

  Args:
    x: (N, H, W, C) or (N, H, W) uint8 images.
    y: (N,) integer labels.
    batch_size: global batch size, divisible by process_count.
    process_index: this process.
    process_count: number of processes.

  Yields:
    dicts with image uint8 (B_local, H, W, C), label int32 (B_local,), mask bool (B_local,).
  """
  rows = _local_rows(batch_size, process_index, process_count)
  x = _with_channels(np.asarray(x))
  y = np.asarray(y)
  for start in range(0, len(x), batch_size):
    positions = np.arange(start, start + batch_size)[rows]
    mask = positions < len(x)
    safe = np.where(mask, positions, 0)
    image = x[safe]
    image[~mask] = 0
    yield {'image': image, 'label': np.where(mask, y[safe], -1).astype(np.int32), 'mask': mask}
