"""The one object the trainer reads its data through, built from config.dataset and the run seeds.

`create_pipeline` returns an `InMemoryPipeline` (data sets held in host memory, alc_jax/data/
datasets.py) or a `StreamedPipeline` (ImageNet 1%, streamed by tf.data, alc_jax/data/imagenet.py).
Both give the trainer the same things: global training batches from any step, named evaluation
sets, the sizes the model and schedule need, the class priors r of Eq. 14 per run, and the
`Normalization` applied on the device. Adding a data set touches only alc_jax/data/ and a config.

Batches come as global arrays (`jax.make_array_from_process_local_data`): each process feeds its
own rows, sharded as the trainer's mesh asks (`train_sharding` over the batch axis of (R, B, ...)
training batches, `eval_sharding` over the rows of evaluation batches).
"""

import abc
import collections
from typing import Any, Dict, Iterator, Sequence, Tuple

import jax
import numpy as np

from alc_jax import methods
from alc_jax.data import datasets, imagenet, sampler, splits
from alc_jax.data.base import DataError
from alc_jax.data.normalization import Normalization

# Every valid config.dataset.name.
DATASET_NAMES = datasets.IN_MEMORY_NAMES + imagenet.STREAMED_NAMES

Batch = Dict[str, jax.Array]


def to_global(local: np.ndarray, sharding, global_rows: int, axis: int) -> jax.Array:
  """A global array from this process's rows (`axis` is the batch axis)."""
  shape = list(local.shape)
  shape[axis] = global_rows
  return jax.make_array_from_process_local_data(sharding, local, tuple(shape))


class DevicePrefetch:
  """Iterator over `batches` (a generator of device arrays) that keeps `size` of them started
  ahead; close() closes the generator (and so the host-side producer behind it)."""

  def __init__(self, batches, size):
    self._batches, self._ahead = batches, collections.deque()
    self._size = max(size, 0)

  def __iter__(self):
    return self

  def __next__(self):
    while len(self._ahead) <= self._size:
      try:
        self._ahead.append(next(self._batches))
      except StopIteration:
        break
    if not self._ahead:
      raise StopIteration
    return self._ahead.popleft()

  def close(self):
    self._ahead.clear()
    self._batches.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class Pipeline(abc.ABC):
  """What the trainer reads. Attributes set by the implementations:

    num_classes: K.
    image_shape: (H, W, C) of the network's inputs.
    num_train: training examples per epoch (labeled + unlabeled).
    labeled_batch_size: labeled rows of every training batch (all rows for `supervised`).
    priors: float (R, K), r of Eq. 14: the class shares of each run's labeled set.
    split_seeds: the label-split seed of each run (recorded in results.json).
    normalization: the `Normalization` the model's inputs get on the device.
    eval_names: the evaluation sets, 'test' first ('validation' when config asks for one).
  """
  num_classes: int
  image_shape: Tuple[int, int, int]
  num_train: int
  labeled_batch_size: int
  priors: np.ndarray
  split_seeds: Sequence[int]
  normalization: Normalization
  eval_names: Tuple[str, ...]

  def __init__(self, config, seeds, train_sharding, eval_sharding, eval_batch_size):
    self.config, self.seeds = config, list(seeds)
    self.train_sharding, self.eval_sharding = train_sharding, eval_sharding
    self.eval_batch_size = eval_batch_size
    # A method that learns from labels only (the supervised baseline) gets whole batches of
    # labeled examples.
    self.labeled_batch_size = (config.batch_size if methods.get(config.method).labeled_only
                               else config.labeled_batch_size)
    split_seed = config.dataset.split_seed  # >= 0: one label split shared by every run.
    self.split_seeds = [split_seed if split_seed >= 0 else s for s in self.seeds]

  @abc.abstractmethod
  def _local_train_batches(self, start_step: int) -> Iterator[Dict[str, np.ndarray]]:
    """This process's rows of the (R, B, ...) training batches from `start_step` on."""

  @abc.abstractmethod
  def local_eval_batches(self, name: str) -> Iterator[Dict[str, np.ndarray]]:
    """This process's rows (numpy) of evaluation set `name`, padded, with a mask."""

  def train_batches(self, start_step: int = 0, prefetch: int = 2) -> Iterator[Batch]:
    """Global training batches dict(image (R, B, ...), label, labeled, diagnostic_label) from
    `start_step` on, put on the devices `prefetch` batches ahead of the step that uses them.

    flax's prefetch_to_device pattern: each batch taken starts the copy of a later one, and copies
    are asynchronous, so they overlap the steps running on the devices. The copies are started
    from the caller's thread: a copy from a background thread, beside steps with collectives on
    several CPU devices, left one device's half of a collective waiting forever (XLA's rendezvous
    aborted the process). The host-side gathering of batches runs ahead in its own thread
    (sampler.make_train_iterator, NumPy only). close() (or a `with` block) stops it.
    """
    return DevicePrefetch(self._global_train_batches(start_step), prefetch)

  def _global_train_batches(self, start_step):
    local = self._local_train_batches(start_step)
    try:
      for batch in local:
        yield {k: to_global(v, self.train_sharding, self.config.batch_size, 1)
               for k, v in batch.items()}
    finally:  # Stops the host-side producer thread with the iterator.
      if hasattr(local, 'close'):
        local.close()

  def eval_batches(self, name: str = 'test') -> Iterator[Batch]:
    """Global batches dict(image, label, mask) of one pass over evaluation set `name`."""
    if name not in self.eval_names:
      raise ValueError(f'no evaluation set {name!r}; this pipeline has {list(self.eval_names)}.')
    for local in self.local_eval_batches(name):
      yield {k: to_global(v, self.eval_sharding, self.eval_batch_size, 0)
             for k, v in local.items()}

  @staticmethod
  def _process():
    return jax.process_index(), jax.process_count()


class InMemoryPipeline(Pipeline):
  """A data set held in host memory, one label split per run (split seed = run seed unless
  config.dataset.split_seed fixes it). Batches are a pure function of (seed, step), so a resumed
  run sees exactly the batches of an uninterrupted one."""

  def __init__(self, config, seeds, train_sharding, eval_sharding, eval_batch_size):
    super().__init__(config, seeds, train_sharding, eval_sharding, eval_batch_size)
    dc = config.dataset
    self.dataset = datasets.load_dataset(dc)
    wanted = dc.num_labels + dc.validation_size
    if wanted > self.dataset.num_train:
      raise DataError(
          f'config.dataset.num_labels + validation_size = {wanted} exceeds the '
          f'{self.dataset.num_train} training examples of {dc.name!r}: lower them.')
    self.splits = [splits.make_label_split(self.dataset.y_train, self.dataset.num_classes,
                                           dc.num_labels, dc.imbalance_ratio, dc.validation_size,
                                           seed=s)
                   for s in self.split_seeds]
    self.num_classes = self.dataset.num_classes
    self.image_shape = self.dataset.image_shape
    self.num_train = len(self.splits[0].labeled) + len(self.splits[0].unlabeled)
    self.priors = np.stack([  # r of Eq. 14, per run.
        np.bincount(self.dataset.y_train[s.labeled], minlength=self.num_classes) / len(s.labeled)
        for s in self.splits])
    self.normalization = Normalization.create(self.dataset.mean, self.dataset.std,
                                              self.dataset.zca, self.dataset.zca_mean)
    self.eval_names = ('test', 'validation') if dc.validation_size > 0 else ('test',)

  def _local_train_batches(self, start_step):
    # Rows keep the sampler's order (labeled first) on any number of devices: every row costs the
    # same compute, and per-row random draws then match the single-device run exactly.
    samplers = [sampler.BatchSampler(s.labeled, s.unlabeled, self.config.batch_size,
                                     self.labeled_batch_size, seed=seed)
                for s, seed in zip(self.splits, self.seeds)]
    proc, nproc = self._process()
    return sampler.make_train_iterator(self.dataset.x_train, self.dataset.y_train, samplers,
                                       start_step=start_step, process_index=proc,
                                       process_count=nproc)

  def local_eval_batches(self, name):
    if name == 'test':
      n = self.config.dataset.eval_examples
      n = n if n > 0 else self.dataset.num_test
      x, y = self.dataset.x_test[:n], self.dataset.y_test[:n]
    else:  # The held-out validation split of the first run.
      idx = self.splits[0].validation
      x, y = self.dataset.x_train[idx], self.dataset.y_train[idx]
    return sampler.eval_batches(x, y, self.eval_batch_size, *self._process())


class StreamedPipeline(Pipeline):
  """ImageNet with TFDS' fixed 1% labeled subset, streamed by tf.data (one run). A resumed run's
  stream is reseeded with the step: it sees fresh, not identical, batches."""

  def __init__(self, config, seeds, train_sharding, eval_sharding, eval_batch_size):
    super().__init__(config, seeds, train_sharding, eval_sharding, eval_batch_size)
    self.num_classes = imagenet.NUM_CLASSES
    self.image_shape = (config.dataset.image_size, config.dataset.image_size, 3)
    self.num_train = imagenet.NUM_TRAIN
    # ~13 labels per class: r of Eq. 14 is uniform.
    self.priors = np.full((len(self.seeds), self.num_classes), 1.0 / self.num_classes)
    self.normalization = Normalization.create(imagenet.MEAN, imagenet.STD)
    self.eval_names = ('test',)

  def _local_train_batches(self, start_step):
    proc, nproc = self._process()
    stream = imagenet.imagenet_train_iterator(
        self.config.dataset, self.config.batch_size, self.labeled_batch_size,
        seed=self.seeds[0] * 1_000_003 + start_step, process_index=proc, process_count=nproc)
    return ({k: v[None] for k, v in b.items()} for b in stream)  # The run axis (R = 1).

  def local_eval_batches(self, name):
    del name  # 'test': ImageNet's validation split, as the paper's Table 4.
    n = self.config.dataset.eval_examples
    return imagenet.imagenet_eval_iterator(self.config.dataset, self.eval_batch_size,
                                           *self._process(), num_examples=n if n > 0 else None)


def create_pipeline(config: Any, seeds: Sequence[int], train_sharding, eval_sharding,
                    eval_batch_size: int) -> Pipeline:
  """The pipeline of `config.dataset` for runs with `seeds` (one per run).

  Raises:
    DataError: unknown name, unusable data (the message says what to fix).
  """
  name = config.dataset.name
  if name in imagenet.STREAMED_NAMES:
    return StreamedPipeline(config, seeds, train_sharding, eval_sharding, eval_batch_size)
  if name in datasets.IN_MEMORY_NAMES:
    return InMemoryPipeline(config, seeds, train_sharding, eval_sharding, eval_batch_size)
  raise DataError(f'Unknown config.dataset.name={name!r}; valid names are: '
                  f'{", ".join(DATASET_NAMES)}.')
