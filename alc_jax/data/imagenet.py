"""ImageNet with 1% of the labels, streamed from TFDS with tf.data (too big for host memory).

  * labeled set: `imagenet2012_subset/1pct`, split 'train' (12,811 images, ~13 per class);
  * unlabeled set: `imagenet2012`, split 'train' (all 1,281,167 images, labels dropped);
  * test set: `imagenet2012`, split 'validation' (50,000 images).

Training images get a random-resized crop (area 8%-100%, aspect ratio 3/4-4/3, the Inception
recipe) resized to `image_size`, and a random horizontal flip; evaluation images get the centre
crop of a 256 -> 224 resize (a centre square of image_size / (image_size + 32) of the shorter
side, resized to `image_size`). JPEGs are decoded only inside the crop window.

All randomness is stateless and keyed by (seed, process, stream, example counter), and the
tf.data pipelines are deterministic, so a run restarted with the same seed sees the same batches.
Each process (host) reads only its own `tfds.split_for_jax_process` shard of every split.

Preparing the data (once, needs the ILSVRC2012 tar files, which TFDS cannot download):
put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in DATA_DIR/downloads/manual and run
`tfds build imagenet2012 --data_dir=DATA_DIR` and `tfds build imagenet2012_subset/1pct
--data_dir=DATA_DIR` (the latter fetches the 1% file list online).
"""

import math
from typing import Any, Dict, Iterator, Optional

import numpy as np

from alc_jax.data.base import DataFileNotFoundError, config_value
from alc_jax.data.tfds_data import KNOWN_SIZES, NUM_CLASSES as TFDS_NUM_CLASSES, tf_cpu_only

LABELED_NAME = 'imagenet2012_subset/1pct'
UNLABELED_NAME = 'imagenet2012'
LABELED_SPLIT = 'train'
UNLABELED_SPLIT = 'train'
EVAL_SPLIT = 'validation'
STREAMED_NAMES = ('imagenet_1pct',)  # The config.dataset.name this module streams.
NUM_CLASSES = TFDS_NUM_CLASSES[UNLABELED_NAME]  # 1000.
NUM_TRAIN = KNOWN_SIZES[UNLABELED_NAME][0]  # Labeled and unlabeled images per epoch.
NUM_LABELED = 12811  # len(imagenet2012_subset/1pct train): the fixed 1% (dataset.num_labels).
# The per-channel statistics every ImageNet model uses (torchvision's, the Flax example's).
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Evaluation: centre crop of image_size / (image_size + CROP_PADDING) of the shorter side, i.e.
# 224 / 256 = "resize to 256, crop 224".
CROP_PADDING = 32
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
RESIZE_METHOD = 'bicubic'  # As the Flax ImageNet example.
DEFAULT_SHUFFLE_BUFFER = 10_000  # Encoded images (~110 kB each): ~1 GB per stream at most.


def _process(process_index: Optional[int], process_count: Optional[int]):
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} is not in [0, {process_count}).')
  return process_index, process_count


def _stream_seed(seed: int, process_index: int, stream: int) -> int:
  """An int31 seed for one (run seed, process, stream) triple."""
  state = np.random.SeedSequence([seed & 0xFFFFFFFF, process_index, stream]).generate_state(1)
  return int(state[0] & 0x7FFFFFFF)


# --------------------------------------------------------------------------------------------
# Image transforms (TensorFlow graph code).
# --------------------------------------------------------------------------------------------


def _center_window(shape, image_size: int):
  """[offset_y, offset_x, height, width] of the padded centre square of an image of `shape`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  height, width = shape[0], shape[1]
  side = tf.cast(
      image_size / (image_size + CROP_PADDING) *
      tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
  side = tf.maximum(side, 1)
  return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])


def _random_window(shape, seed, image_size: int):
  """Inception-style random crop window; the centre window when no sample fits in 10 tries."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.stack([shape[0], shape[1], 3]),
      bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
      seed=seed,
      min_object_covered=0.1,
      aspect_ratio_range=ASPECT_RATIO_RANGE,
      area_range=AREA_RANGE,
      max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  window = tf.stack([begin[0], begin[1], size[0], size[1]])
  # Failed tries return the whole image, whose resize would distort the aspect ratio.
  whole = tf.logical_and(tf.equal(size[0], shape[0]), tf.equal(size[1], shape[1]))
  return tf.where(whole, _center_window(shape, image_size), window)


def _decode_and_crop(image_bytes, window_fn):
  """Decodes an encoded image inside `window_fn(shape)`; JPEGs decode only that window."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def jpeg():
    window = window_fn(tf.io.extract_jpeg_shape(image_bytes))
    return tf.io.decode_and_crop_jpeg(image_bytes, window, channels=3)

  def other():  # PNG, GIF, BMP: decode everything, then slice.
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    window = window_fn(tf.shape(image))
    return image[window[0]:window[0] + window[2], window[1]:window[1] + window[3]]

  image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
  image.set_shape([None, None, 3])
  return image


def _resize_uint8(image, image_size: int):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  image = tf.image.resize(image, [image_size, image_size], method=RESIZE_METHOD)
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def preprocess_train(image_bytes, seed, image_size: int):
  """Random-resized crop + horizontal flip; uint8 (image_size, image_size, 3).

  Args:
    image_bytes: scalar tf.string, an encoded image.
    seed: int64 (2,) stateless seed.
    image_size: output side.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  seeds = tf.random.experimental.stateless_split(seed, num=2)
  image = _decode_and_crop(image_bytes, lambda s: _random_window(s, seeds[0], image_size))
  image = _resize_uint8(image, image_size)
  return tf.image.stateless_random_flip_left_right(image, seeds[1])


def preprocess_eval(image_bytes, image_size: int):
  """Centre crop (the 256 -> 224 recipe); uint8 (image_size, image_size, 3)."""
  image = _decode_and_crop(image_bytes, lambda s: _center_window(s, image_size))
  return _resize_uint8(image, image_size)


# --------------------------------------------------------------------------------------------
# Pipelines.
# --------------------------------------------------------------------------------------------


def _options():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  return options


def _load_shard(name: str, split: str, data_dir: Optional[str], process_index: int,
                process_count: int, shuffle_seed: Optional[int]):
  """This process's shard of `name`/`split`, images still encoded."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  shard = tfds.split_for_jax_process(split, process_index=process_index,
                                     process_count=process_count)
  read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, options=_options(),
                                shuffle_reshuffle_each_iteration=True)
  try:
    return tfds.load(
        name, split=shard, data_dir=data_dir, shuffle_files=shuffle_seed is not None,
        download=False, read_config=read_config,
        decoders={'image': tfds.decode.SkipDecoding()})
  except Exception as e:  # pylint: disable=broad-except
    raise DataFileNotFoundError(
        f'Cannot read TFDS {name} split {split!r} (data_dir={data_dir or "TFDS default"}): '
        f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}. ImageNet must be '
        'prepared by hand: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in '
        'DATA_DIR/downloads/manual, then run `tfds build imagenet2012 --data_dir=DATA_DIR` and '
        '`tfds build imagenet2012_subset/1pct --data_dir=DATA_DIR`, and set '
        'config.dataset.data_dir=DATA_DIR.') from e


def _train_stream(name, split, data_dir, seed, process_index, process_count, stream, batch,
                  image_size, labeled, shuffle_buffer_size):
  """Infinite stream of batches of `batch` preprocessed (image, label, labeled) examples."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  stream_seed = _stream_seed(seed, process_index, stream)
  ds = _load_shard(name, split, data_dir, process_index, process_count, stream_seed)
  ds = ds.repeat().shuffle(shuffle_buffer_size, seed=stream_seed, reshuffle_each_iteration=True)

  def prepare(index, example):
    image = preprocess_train(example['image'], tf.stack([tf.constant(stream_seed, tf.int64),
                                                         index]), image_size)
    if labeled:
      label = tf.cast(example['label'], tf.int32)
    else:
      label = tf.constant(-1, tf.int32)
    return {'image': image, 'label': label, 'labeled': tf.constant(labeled)}

  ds = ds.enumerate().map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch, drop_remainder=True)


def imagenet_train_iterator(dataset_config: Any, global_batch_size: int,
                            labeled_batch_size: int, seed: int,
                            process_index: Optional[int] = None,
                            process_count: Optional[int] = None, *,
                            shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER
                            ) -> Iterator[Dict[str, np.ndarray]]:
  """Endless iterator over this process's training batches of ImageNet with 1% labels.

  Every local batch holds labeled_batch_size / process_count labeled images (from
  `imagenet2012_subset/1pct`) first, then the unlabeled rest (from `imagenet2012` train, labels
  replaced by -1).

  Args:
    dataset_config: config.dataset (`data_dir`, `image_size`).
    global_batch_size: images per step over all processes.
    labeled_batch_size: labeled images per step over all processes.
    seed: run seed (shuffling, crops, flips).
    process_index: this process; None = jax.process_index().
    process_count: number of processes; None = jax.process_count().
    shuffle_buffer_size: examples in each stream's shuffle buffer (encoded images).

  Returns:
    Iterator of dict(image=uint8 (B, S, S, 3), label=int32 (B,), labeled=bool (B,)), with
    B = global_batch_size / process_count and S = image_size.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tf_cpu_only()
  process_index, process_count = _process(process_index, process_count)
  if global_batch_size % process_count or labeled_batch_size % process_count:
    raise ValueError(
        f'batch_size={global_batch_size} and labeled_batch_size={labeled_batch_size} must both '
        f'be multiples of the number of processes ({process_count}).')
  if not 0 <= labeled_batch_size <= global_batch_size or global_batch_size <= 0:
    raise ValueError(f'Need 0 <= labeled_batch_size ({labeled_batch_size}) <= batch_size '
                     f'({global_batch_size}) and batch_size > 0.')
  data_dir = config_value(dataset_config, 'data_dir', '') or None
  image_size = int(config_value(dataset_config, 'image_size', 224))
  local_labeled = labeled_batch_size // process_count
  local_unlabeled = (global_batch_size - labeled_batch_size) // process_count
  streams = []
  if local_labeled:
    streams.append(_train_stream(LABELED_NAME, LABELED_SPLIT, data_dir, seed, process_index,
                                 process_count, 0, local_labeled, image_size, True,
                                 shuffle_buffer_size))
  if local_unlabeled:
    streams.append(_train_stream(UNLABELED_NAME, UNLABELED_SPLIT, data_dir, seed, process_index,
                                 process_count, 1, local_unlabeled, image_size, False,
                                 shuffle_buffer_size))
  if len(streams) == 2:
    ds = tf.data.Dataset.zip(tuple(streams)).map(
        lambda a, b: {k: tf.concat([a[k], b[k]], axis=0) for k in a})
  else:
    ds = streams[0]
  ds = ds.with_options(_options()).prefetch(tf.data.AUTOTUNE)
  return iter(tfds.as_numpy(ds))


def imagenet_eval_iterator(dataset_config: Any, batch_size: int,
                           process_index: Optional[int] = None,
                           process_count: Optional[int] = None, *,
                           num_examples: Optional[int] = None
                           ) -> Iterator[Dict[str, np.ndarray]]:
  """One pass over this process's shard of the ImageNet validation set, in full batches.

  Every process yields the same number of batches, ceil(ceil(N / P) / B) (N examples, P
  processes, B local batch), so that a multi-host evaluation step runs equally often everywhere;
  rows past the end of the data are zero images with label -1 and mask False.

  Args:
    dataset_config: config.dataset (`data_dir`, `image_size`).
    batch_size: global evaluation batch; each process gets batch_size / process_count rows.
    process_index: this process; None = jax.process_index().
    process_count: number of processes; None = jax.process_count().
    num_examples: how many validation images to evaluate (config.dataset.eval_examples): the
      first ceil(num_examples / P) of each process's shard; None = all 50,000 (KNOWN_SIZES).

  Returns:
    Iterator of dict(image=uint8 (B, S, S, 3), label=int32 (B,), mask=bool (B,)).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tf_cpu_only()
  process_index, process_count = _process(process_index, process_count)
  if batch_size % process_count or batch_size <= 0:
    raise ValueError(f'eval batch_size={batch_size} must be a positive multiple of the number of '
                     f'processes ({process_count}).')
  local = batch_size // process_count
  data_dir = config_value(dataset_config, 'data_dir', '') or None
  image_size = int(config_value(dataset_config, 'image_size', 224))
  if num_examples is None:
    num_examples = KNOWN_SIZES[UNLABELED_NAME][1]
  num_batches = math.ceil(math.ceil(num_examples / process_count) / local)

  ds = _load_shard(UNLABELED_NAME, EVAL_SPLIT, data_dir, process_index, process_count, None)
  ds = ds.take(math.ceil(num_examples / process_count))  # All of a shard for all 50,000.

  def prepare(example):
    return {'image': preprocess_eval(example['image'], image_size),
            'label': tf.cast(example['label'], tf.int32),
            'mask': tf.constant(True)}

  ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(local)
  ds = ds.with_options(_options()).prefetch(tf.data.AUTOTUNE)

  def pad(batch, rows):
    return {k: np.concatenate([v, np.full((rows,) + v.shape[1:], -1 if k == 'label' else 0,
                                          v.dtype)]) for k, v in batch.items()}

  def generate():
    count = 0
    for batch in tfds.as_numpy(ds):
      rows = local - batch['label'].shape[0]
      yield pad(batch, rows) if rows else batch
      count += 1
    empty = {'image': np.zeros((local, image_size, image_size, 3), np.uint8),
             'label': np.full((local,), -1, np.int32), 'mask': np.zeros((local,), bool)}
    for _ in range(count, num_batches):
      yield {k: v.copy() for k, v in empty.items()}

  return generate()

