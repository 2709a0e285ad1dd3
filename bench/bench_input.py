"""Input pipeline throughput on this machine (a benchmark, not a test).

  python bench/bench_input.py [--quick]

Measures, in images per second:
  * Fashion-MNIST from the Debian IDX files: load (parse + per-channel statistics), then random
    batches of 100 gathered by index from the in-memory arrays (what the trainer's sampler does);
  * CIFAR-10 and SVHN loaded through TFDS into arrays under `tfds.testing.mock_data` (offline, so
    this measures the TFDS -> numpy path on random examples, not disk reads);
  * the ImageNet 1% tf.data stream (random-resized crop + flip, and the eval centre crop) at
    224x224 under mock data, once with TFDS' tiny random mock images and once with synthetic
    500x375 JPEGs (ImageNet's typical resolution; ~60 kB against ImageNet's ~110 kB average), the
    realistic number. Start-up (graph tracing, first batches) is excluded from the timings.
"""

import argparse
import io
import os
import platform
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('ALC_TFDS_DOWNLOAD', '0')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from alc_jax.data import datasets, tfds_data  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax.data import imagenet  # pylint: disable=g-import-not-at-top,wrong-import-position


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def bench_fashion_mnist(rows, seconds):
  ds, elapsed = _timed(lambda: datasets.load_dataset({'name': 'fashion_mnist'}))
  n = ds.num_train + ds.num_test
  rows.append(('Fashion-MNIST load (IDX + stats)', n, elapsed, n / elapsed))
  rng = np.random.default_rng(0)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    idx = rng.integers(0, ds.num_train, 100)
    x, y = ds.x_train[idx], ds.y_train[idx]
    count += min(x.shape[0], y.shape[0])
  elapsed = time.perf_counter() - start
  rows.append(('Fashion-MNIST gather batch 100', count, elapsed, count / elapsed))


def bench_mock_tfds(rows, num_examples):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=10):  # Warm-up: TensorFlow and TFDS start-up.
    tfds_data.load_tfds_arrays('cifar10', 'test')
  for name in ('cifar10', 'svhn_cropped'):
    with tfds.testing.mock_data(num_examples=num_examples):
      (x, _), elapsed = _timed(
          lambda: tfds_data.load_tfds_arrays(name, 'train'))  # pylint: disable=cell-var-from-loop
    rows.append((f'{name} TFDS -> arrays (mock)', x.shape[0], elapsed, x.shape[0] / elapsed))


def _synthetic_jpegs(count, size=(500, 375), seed=0):
  """Smooth random images with mild noise, JPEG-encoded at quality 90 (~ImageNet-like bytes)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    low = rng.integers(0, 256, (size[1] // 25, size[0] // 25, 3)).astype(np.uint8)
    image = np.asarray(Image.fromarray(low).resize(size, Image.BICUBIC), np.int16)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='JPEG', quality=90)
    out.append(buffer.getvalue())
  return out


def _jpeg_as_dataset_fn(jpegs, n):
  """Mock `_as_dataset` for every split: `n` examples cycling through `jpegs`."""
  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    del self, split, decoders, read_config, kwargs
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    images = [jpegs[i % len(jpegs)] for i in range(n)]
    return tf.data.Dataset.from_tensor_slices({
        'image': tf.constant(images), 'label': tf.range(n, dtype=tf.int64) % 1000,
        'file_name': tf.constant([f'{i}.JPEG' for i in range(n)])})
  return as_dataset


def bench_imagenet(rows, batches, batch_size, realistic, num_examples):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  label = 'synthetic 500x375 JPEG' if realistic else 'TFDS tiny mock images'
  kwargs = {}
  if realistic:
    jpegs = _synthetic_jpegs(64)
    kwargs['as_dataset_fn'] = _jpeg_as_dataset_fn(jpegs, num_examples)
    print(f'  synthetic JPEGs: ~{np.mean([len(j) for j in jpegs]) / 1e3:.0f} kB each')
  config = {'name': 'imagenet_1pct', 'image_size': 224, 'data_dir': ''}
  with tfds.testing.mock_data(num_examples=num_examples, **kwargs):
    it = imagenet.imagenet_train_iterator(config, batch_size, batch_size // 4, seed=0,
                                          process_index=0, process_count=1,
                                          shuffle_buffer_size=256)
    for _ in range(2):  # Warm-up: graph tracing, buffers filling.
      next(it)
    start = time.perf_counter()
    for _ in range(batches):
      batch = next(it)
    elapsed = time.perf_counter() - start
    assert batch['image'].shape == (batch_size, 224, 224, 3)
    n = batches * batch_size
    rows.append((f'ImageNet train 224 crop+flip ({label})', n, elapsed, n / elapsed))

    # One pass over the (mock) validation shard; the first batch (start-up) is not timed.
    eval_it = imagenet.imagenet_eval_iterator(config, batch_size, 0, 1,
                                              num_examples=num_examples)
    next(eval_it)
    start = time.perf_counter()
    count = 0
    for batch in eval_it:
      count += int(batch['mask'].sum())
    elapsed = time.perf_counter() - start
    rows.append((f'ImageNet eval 224 centre crop ({label})', count, elapsed, count / elapsed))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true', help='fewer examples and batches')
  args = parser.parse_args()
  mock_examples = 2000 if args.quick else 10000
  batches = 10 if args.quick else 40
  batch_size = 32 if args.quick else 64

  print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
        f'{platform.platform()}')
  rows = []
  try:
    bench_fashion_mnist(rows, 1.0 if args.quick else 3.0)
  except FileNotFoundError as e:
    print(f'Fashion-MNIST skipped: {str(e).splitlines()[0]}')
  bench_mock_tfds(rows, mock_examples)
  imagenet_examples = 512 if args.quick else 1536  # Per mocked split (each shard sees them all).
  bench_imagenet(rows, batches, batch_size, False, imagenet_examples)
  bench_imagenet(rows, batches, batch_size, True, imagenet_examples)

  width = max(len(r[0]) for r in rows)
  print(f'\n{"pipeline":<{width}}  {"images":>9}  {"seconds":>8}  {"images/s":>10}')
  for name, n, elapsed, rate in rows:
    print(f'{name:<{width}}  {n:>9d}  {elapsed:>8.2f}  {rate:>10.0f}')


if __name__ == '__main__':
  main()
