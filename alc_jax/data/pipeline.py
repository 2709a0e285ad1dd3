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
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import jax
import numpy as np

from absl import logging

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
    eval_names: the evaluation sets: 'test' first when the data set has one, 'validation' when
      it gives one or config.dataset.validation_size holds one out; may be empty (the run then
      reports no accuracy).
    class_names: the class names (index = label) as a tuple of str, or None when the data set
      has none.
    num_labeled: labeled training images of each run (config.dataset.num_labels resolved: -1
      is all the labels the data set gives).
  """
  num_classes: int
  image_shape: Tuple[int, int, int]
  num_train: int
  labeled_batch_size: int
  priors: np.ndarray
  split_seeds: Sequence[int]
  normalization: Normalization
  eval_names: Tuple[str, ...]
  class_names: Optional[Tuple[str, ...]] = None

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
    self.dataset = data = datasets.load_dataset(dc)
    self.splits = [self._split(seed) for seed in self.split_seeds]
    self.num_classes = data.num_classes
    self.class_names = data.class_names
    self.image_shape = data.image_shape
    self.num_train = len(self.splits[0].labeled) + len(self.splits[0].unlabeled)
    self.num_labeled = len(self.splits[0].labeled)
    self.priors = np.stack([  # r of Eq. 14, per run: the class shares of its labeled set.
        np.bincount(data.y_train[s.labeled], minlength=self.num_classes) / len(s.labeled)
        for s in self.splits])
    self.normalization = Normalization.create(data.mean, data.std, data.zca, data.zca_mean)
    self.eval_names = tuple(
        name for name, present in (('test', data.x_test is not None),
                                   ('validation', data.x_validation is not None
                                    or dc.validation_size > 0)) if present)
    if data.given_split:
      self._describe_given_split()

  def _split(self, seed):
    """The label split of one run (splits.py): drawn from a fully labeled training set, or the
    data set's own labeled set (all of it, or a stratified subset)."""
    dc, data = self.config.dataset, self.dataset
    if data.given_split:
      if dc.imbalance_ratio != 1:
        raise DataError(
            f'config.dataset.imbalance_ratio={dc.imbalance_ratio} draws an imbalanced labeled '
            f'subset of a fully labeled data set; {dc.path} gives its own labeled set, whose '
            'class shares are used as they are: set config.dataset.imbalance_ratio=1.')
      if data.x_validation is not None and dc.validation_size > 0:
        raise DataError(
            f'{dc.path} gives its own validation set (validation/ or x_validation): set '
            f'config.dataset.validation_size=0 (it is {dc.validation_size}), or remove that set '
            'to hold validation images out of the labeled ones.')
      try:
        return splits.given_label_split(data.y_train, data.num_classes, dc.num_labels,
                                        dc.validation_size, seed=seed)
      except ValueError as e:
        raise DataError(f'{dc.path}: {e} (config.dataset.num_labels, validation_size).') from e
    if dc.num_labels == splits.ALL_LABELS:
      raise DataError(
          f'config.dataset.num_labels={splits.ALL_LABELS} keeps every label a data set gives, '
          f'but every training image of {dc.name!r} ({dc.path or dc.name}) is labeled: set how '
          'many labels the trainer keeps (it hides the others), e.g. '
          f'--config.dataset.num_labels={10 * data.num_classes}, or give a labeled/ + '
          'unlabeled/ folder or an x_labeled + x_unlabeled .npz.')
    wanted = dc.num_labels + dc.validation_size
    if wanted > data.num_train:
      raise DataError(
          f'config.dataset.num_labels + validation_size = {wanted} exceeds the '
          f'{data.num_train} training examples of {dc.name!r}: lower them.')
    return splits.make_label_split(data.y_train, data.num_classes, dc.num_labels,
                                   dc.imbalance_ratio, dc.validation_size, seed=seed)

  def _describe_given_split(self):
    """Says on stdout what the runs train and evaluate on, and warns when nothing is unlabeled."""
    dc, split = self.config.dataset, self.splits[0]
    given = int(np.sum(self.dataset.y_train >= 0))
    which = ('all of them' if dc.num_labels == splits.ALL_LABELS
             else f'a class-stratified subset of the {given:,} given (split seed per run)')
    print(f'{dc.path}: {len(split.labeled):,} labeled training images ({which}), '
          f'{len(split.unlabeled):,} unlabeled, {len(split.validation):,} held out for '
          'validation.', flush=True)
    if not self.eval_names:
      print(f'{dc.path} has neither a test nor a validation set: this run reports no accuracy '
            '(it trains, and writes results.json without accuracies).', flush=True)
    elif 'test' not in self.eval_names:
      print(f'{dc.path} has no test set: this run reports its validation accuracy.', flush=True)
    if not len(split.unlabeled):
      message = (f'{dc.path} gives no unlabeled image (an empty or absent unlabeled/, or an empty '
                 'x_unlabeled): the run is supervised, every batch holds labeled images only.')
      logging.warning(message)
      print(f'Warning: {message}', flush=True)

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
    data = self.dataset
    if name == 'test':
      n = self.config.dataset.eval_examples
      n = n if n > 0 else data.num_test
      x, y = data.x_test[:n], data.y_test[:n]
    elif data.x_validation is not None:  # The data set's own validation set.
      x, y = data.x_validation, data.y_validation
    else:  # The held-out validation split of the first run.
      idx = self.splits[0].validation
      x, y = data.x_train[idx], data.y_train[idx]
    return sampler.eval_batches(x, y, self.eval_batch_size, *self._process())


class StreamedPipeline(Pipeline):
  """ImageNet with TFDS' fixed 1% labeled subset, streamed by tf.data (one run). A resumed run's
  stream is reseeded with the step: it sees fresh, not identical, batches."""

  def __init__(self, config, seeds, train_sharding, eval_sharding, eval_batch_size):
    super().__init__(config, seeds, train_sharding, eval_sharding, eval_batch_size)
    self.num_classes = imagenet.NUM_CLASSES
    self.image_shape = (config.dataset.image_size, config.dataset.image_size, 3)
    self.num_train = imagenet.NUM_TRAIN
    self.num_labeled = imagenet.NUM_LABELED  # TFDS' fixed 1% subset.
    # ~13 labels per class: r of Eq. 14 is uniform.
    self.priors = np.full((len(self.seeds), self.num_classes), 1.0 / self.num_classes)
    self.normalization = Normalization.create(imagenet.MEAN, imagenet.STD)
    self.eval_names = ('test',)

  def _local_train_batches(self, start_step):
    proc, nproc = self._process()
    stream = imagenet.imagenet_train_iterator(
        self.config.dataset, self.config.batch_size, self.labeled_batch_size,
        seed=self.seeds[0] * 1_000_003 + start_step, process_index=proc, process_count=nproc,
        shuffle_buffer_size=self.config.dataset.get('shuffle_buffer',
                                                    imagenet.DEFAULT_SHUFFLE_BUFFER))
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
