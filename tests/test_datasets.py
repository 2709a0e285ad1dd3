"""Data sets: TFDS (under mock data), Fashion-MNIST IDX files, .npz, image folders, ImageNet 1%."""

import gzip
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,wrong-import-position

from alc_jax.data import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax.data import fashion_mnist  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax.data import tfds_data  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax.data import image_files  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax.data import imagenet  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax.data import DataError, DataFileNotFoundError  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(autouse=True)
def _no_tfds_download(monkeypatch):
  """Never let TFDS try to download here (offline, its retries take minutes)."""
  monkeypatch.setenv(tfds_data.TFDS_DOWNLOAD_ENV, '0')


def _config(**kwargs):
  config = {'name': 'npz', 'path': '', 'data_dir': '', 'zca': False, 'image_size': 0}
  config.update(kwargs)
  return config


# --------------------------------------------------------------------------------------------
# TFDS data sets under mock data.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name,shape', [('cifar10', (32, 32, 3)), ('svhn_cropped', (32, 32, 3)),
                                        ('fashion_mnist', (28, 28, 1))])
def test_tfds_mock(name, shape, tmp_path, monkeypatch):
  # An empty IDX folder sends fashion_mnist to TFDS.
  monkeypatch.setenv(fashion_mnist.FASHION_MNIST_ENV, str(tmp_path))
  with tfds.testing.mock_data(num_examples=30):
    ds = datasets.load_dataset(_config(name=name))
  assert ds.name == name
  assert ds.x_train.shape == (30,) + shape and ds.x_test.shape == (30,) + shape
  assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
  assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
  assert ds.num_classes == 10
  for y in (ds.y_train, ds.y_test):
    assert y.min() >= 0 and y.max() < 10
  assert ds.mean.shape == ds.std.shape == (shape[-1],)
  assert ds.mean.dtype == np.float32 and np.all((ds.mean > 0) & (ds.mean < 1))
  assert np.all(ds.std > 0)
  assert ds.zca is None


@pytest.mark.parametrize('policy,download', [
    ('0', False), ('false', False), (' No ', False), ('1', True), ('yes', True), (None, True)])
def test_tfds_downloads_unless_the_environment_forbids_it(policy, download, monkeypatch):
  # ALC_TFDS_DOWNLOAD=0 (the suite, offline machines): a missing data set fails at once instead
  # of TFDS retrying its download for minutes.
  asked = []

  def load(name, **kwargs):
    asked.append(kwargs['download'])
    raise RuntimeError('stop here')

  if policy is None:
    monkeypatch.delenv(tfds_data.TFDS_DOWNLOAD_ENV)
  else:
    monkeypatch.setenv(tfds_data.TFDS_DOWNLOAD_ENV, policy)
  monkeypatch.setattr(tfds, 'load', load)
  with pytest.raises(RuntimeError, match='stop here'):
    tfds_data.load_tfds_arrays('cifar10', 'train')
  assert asked == [download]


def test_tfds_labels_outside_the_classes_are_refused(monkeypatch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  labels = {'good': [0, 9, 3], 'high': [0, 10, 3], 'negative': [0, -1, 3]}

  def load(name, split, **kwargs):
    del name, kwargs
    return tf.data.Dataset.from_tensor_slices({
        'image': tf.zeros((3, 32, 32, 3), tf.uint8), 'label': tf.constant(labels[split])})

  monkeypatch.setattr(tfds, 'load', load)
  assert tfds_data.load_tfds_arrays('cifar10', 'good')[1].tolist() == [0, 9, 3]
  for split in ('high', 'negative'):
    with pytest.raises(DataError, match=r"cifar10 split '\w+' has labels outside \[0, 10\)"):
      tfds_data.load_tfds_arrays('cifar10', split)


# --------------------------------------------------------------------------------------------
# ImageNet 1% stream under mock data.
# --------------------------------------------------------------------------------------------


def test_imagenet_train_stream_composition():
  config = _config(name='imagenet_1pct', image_size=32)
  firsts = []
  with tfds.testing.mock_data(num_examples=12):
    for process_index in range(2):
      it = imagenet.imagenet_train_iterator(config, global_batch_size=12, labeled_batch_size=4,
                                            seed=3, process_index=process_index,
                                            process_count=2, shuffle_buffer_size=8)
      for step in range(3):
        batch = next(it)
        assert set(batch) == {'image', 'label', 'labeled'}
        assert batch['image'].shape == (6, 32, 32, 3) and batch['image'].dtype == np.uint8
        assert batch['label'].dtype == np.int32 and batch['labeled'].dtype == np.bool_
        np.testing.assert_array_equal(batch['labeled'], [True] * 2 + [False] * 4)
        assert np.all((batch['label'][:2] >= 0) & (batch['label'][:2] < 1000))
        np.testing.assert_array_equal(batch['label'][2:], -1)
        if step == 0:
          firsts.append(batch)
    # Same seed and process: the same batch; another seed: other crops.
    again = next(imagenet.imagenet_train_iterator(config, 12, 4, seed=3, process_index=1,
                                                  process_count=2, shuffle_buffer_size=8))
    other = next(imagenet.imagenet_train_iterator(config, 12, 4, seed=4, process_index=1,
                                                  process_count=2, shuffle_buffer_size=8))
  np.testing.assert_array_equal(again['image'], firsts[1]['image'])
  np.testing.assert_array_equal(again['label'], firsts[1]['label'])
  assert not np.array_equal(other['image'], firsts[1]['image'])


def test_imagenet_train_stream_all_labeled_or_unlabeled():
  config = _config(name='imagenet_1pct', image_size=16)
  with tfds.testing.mock_data(num_examples=4):
    sup = next(imagenet.imagenet_train_iterator(config, 4, 4, 0, 0, 1, shuffle_buffer_size=4))
    uns = next(imagenet.imagenet_train_iterator(config, 4, 0, 0, 0, 1, shuffle_buffer_size=4))
  assert sup['labeled'].all() and (sup['label'] >= 0).all()
  assert not uns['labeled'].any() and (uns['label'] == -1).all()


def test_imagenet_reads_the_process_shard_of_each_split():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  seen, shuffle_seeds = [], []

  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    del decoders
    config = self.builder_config.name if self.builder_config else None
    seen.append((self.name, config, split.split, split.index, split.count,
                 kwargs.get('shuffle_files'), read_config.shuffle_seed is not None))
    shuffle_seeds.append(read_config.shuffle_seed)
    return tf.data.Dataset.from_tensor_slices({
        'image': tf.constant([b'unused'] * 4), 'label': tf.range(4, dtype=tf.int64),
        'file_name': tf.constant(['x.JPEG'] * 4)})

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    imagenet.imagenet_train_iterator(_config(image_size=8), 8, 4, 0, process_index=2,
                                     process_count=4)
    imagenet.imagenet_eval_iterator(_config(image_size=8), 8, process_index=2, process_count=4)
  assert seen == [
      ('imagenet2012_subset', '1pct', 'train', 2, 4, True, True),
      ('imagenet2012', None, 'train', 2, 4, True, True),
      ('imagenet2012', None, 'validation', 2, 4, False, False),
  ]
  # The labeled and the unlabeled stream are shuffled (and cropped) from seeds of their own.
  assert shuffle_seeds[0] != shuffle_seeds[1]


def _encoded(image, fmt):
  import io  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=fmt, quality=95)
  return buffer.getvalue()


@pytest.mark.parametrize('fmt', ['PNG', 'JPEG'])
def test_imagenet_eval_image_is_the_centre_crop_of_the_256_to_224_recipe(fmt):
  # The centre square of 24 / (24 + 32) of the shorter side, at the centre (the odd pixel
  # after), resized to 24 (bicubic, rounded): on 40 x 60 pixels, side int(24/56 * 40) = 17 at
  # rows 12..28 and columns 22..38. JPEGs are decoded inside the window only: the same pixels.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
  encoded = _encoded(image, fmt)
  decoded = tf.io.decode_image(encoded, channels=3).numpy()
  want = tf.image.resize(decoded[12:29, 22:39], [24, 24], method='bicubic')
  want = np.clip(np.round(want.numpy()), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(imagenet.preprocess_eval(tf.constant(encoded), 24).numpy(), want)


def test_imagenet_train_crops_are_flipped_half_the_time():
  # Dark on the left, bright on the right: an unflipped crop keeps its dark side left.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  image = np.zeros((48, 48, 3), np.uint8)
  image[:, 24:] = 255
  encoded = tf.constant(_encoded(image, 'PNG'))
  sides = []
  for i in range(40):
    out = imagenet.preprocess_train(encoded, tf.constant([7, i], tf.int64), 16).numpy()
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    left, right = out[:, :4].mean(), out[:, -4:].mean()
    if abs(left - right) > 100:  # The crop holds the edge (else it is one colour).
      sides.append(left < right)
  assert len(sides) > 10 and 0.2 < np.mean(sides) < 0.8


def test_a_fashion_mnist_path_without_its_files_is_refused_not_replaced_by_tfds(tmp_path):
  """A folder the user named must hold the IDX files: TFDS' copy is only the fallback of no path."""
  with pytest.raises(DataFileNotFoundError, match=r"config.dataset.path='.*' does not hold the "
                                                  r'four Fashion-MNIST IDX files'):
    fashion_mnist.load_fashion_mnist(str(tmp_path), None)


def test_imagenet_missing_data_says_how_to_prepare(tmp_path):
  with pytest.raises(DataFileNotFoundError, match='tfds build imagenet2012'):
    imagenet.imagenet_train_iterator(_config(data_dir=str(tmp_path), image_size=8), 4, 2, 0,
                                     process_index=0, process_count=1)


def test_imagenet_train_rejects_indivisible_batches():
  with pytest.raises(ValueError, match='multiples of the number of processes'):
    imagenet.imagenet_train_iterator(_config(), 10, 3, 0, process_index=0, process_count=2)
  with pytest.raises(ValueError, match='labeled_batch_size'):
    imagenet.imagenet_train_iterator(_config(), 4, 8, 0, process_index=0, process_count=1)


def test_imagenet_eval_pads_to_full_batches():
  config = _config(name='imagenet_1pct', image_size=24)
  with tfds.testing.mock_data(num_examples=10):
    # Mock data ignore the split: every shard has 10 examples. Claim 40 in all over 2 processes:
    # 20 per process = 3 batches of 8 (10 real rows, 14 padding rows).
    batches = list(imagenet.imagenet_eval_iterator(config, 16, process_index=1, process_count=2,
                                                   num_examples=40))
  assert len(batches) == 3
  for batch in batches:
    assert batch['image'].shape == (8, 24, 24, 3) and batch['image'].dtype == np.uint8
    assert batch['label'].dtype == np.int32 and batch['mask'].dtype == np.bool_
  mask = np.concatenate([b['mask'] for b in batches])
  labels = np.concatenate([b['label'] for b in batches])
  np.testing.assert_array_equal(mask, [True] * 10 + [False] * 14)
  assert np.all((labels[:10] >= 0) & (labels[:10] < 1000)) and np.all(labels[10:] == -1)
  assert not batches[2]['image'].any()
  # config.dataset.eval_examples = 6: 3 of each process's shard, then padding.
  with tfds.testing.mock_data(num_examples=10):
    batches = list(imagenet.imagenet_eval_iterator(config, 16, process_index=1, process_count=2,
                                                   num_examples=6))
  assert len(batches) == 1
  np.testing.assert_array_equal(batches[0]['mask'], [True] * 3 + [False] * 5)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST IDX files.
# --------------------------------------------------------------------------------------------

_SYSTEM_FILES = [
    os.path.join(fashion_mnist.FASHION_MNIST_SYSTEM_DIR, f + '.gz')
    for f in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
              't10k-labels-idx1-ubyte')]


@pytest.mark.skipif(not all(os.path.isfile(f) for f in _SYSTEM_FILES),
                    reason='Fashion-MNIST IDX files not installed (apt-get install '
                    'dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)')
def test_real_fashion_mnist(monkeypatch):
  monkeypatch.delenv(fashion_mnist.FASHION_MNIST_ENV, raising=False)
  ds = datasets.load_dataset(_config(name='fashion_mnist'))
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  assert ds.x_train.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=10), [1000] * 10)
  np.testing.assert_allclose(ds.mean, [0.2860], atol=1e-3)
  np.testing.assert_allclose(ds.std, [0.3530], atol=1e-3)


def _write_idx(path, array, compress=True):
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(d).to_bytes(4, 'big') for d in array.shape)
  data = header + array.astype(np.uint8).tobytes()
  if compress:
    with gzip.open(str(path) + '.gz', 'wb') as f:
      f.write(data)
    return str(path) + '.gz'
  with open(path, 'wb') as f:
    f.write(data)
  return str(path)


def _write_fake_fashion_mnist(directory, compress=True):
  rng = np.random.default_rng(0)
  paths = {}
  for split, n in (('train', 20), ('t10k', 10)):
    paths[split, 'images'] = _write_idx(directory / f'{split}-images-idx3-ubyte',
                                        rng.integers(0, 256, (n, 28, 28)), compress)
    paths[split, 'labels'] = _write_idx(directory / f'{split}-labels-idx1-ubyte',
                                        np.arange(n) % 10, compress)
  return paths


@pytest.mark.parametrize('compress', [True, False])
def test_fashion_mnist_idx_folder(tmp_path, compress):
  _write_fake_fashion_mnist(tmp_path, compress)
  ds = datasets.load_dataset(_config(name='fashion_mnist', path=str(tmp_path)))
  assert ds.x_train.shape == (20, 28, 28, 1) and ds.x_test.shape == (10, 28, 28, 1)
  np.testing.assert_array_equal(ds.y_train, np.arange(20) % 10)


def test_fashion_mnist_truncated_idx(tmp_path, monkeypatch):
  paths = _write_fake_fashion_mnist(tmp_path)
  monkeypatch.setenv(fashion_mnist.FASHION_MNIST_ENV, str(tmp_path))
  path = paths['train', 'images']
  raw = open(path, 'rb').read()
  with open(path, 'wb') as f:
    f.write(raw[:len(raw) // 2])  # A truncated gzip stream.
  with pytest.raises(DataError, match='truncated') as e:
    datasets.load_dataset(_config(name='fashion_mnist'))
  assert path in str(e.value)
  # A complete gzip stream whose IDX data are short.
  with gzip.open(path, 'wb') as f:
    f.write(bytes([0, 0, 8, 3]) + (20).to_bytes(4, 'big') + (28).to_bytes(4, 'big') * 2 + b'x' * 99)
  with pytest.raises(DataError, match='truncated') as e:
    datasets.load_dataset(_config(name='fashion_mnist'))
  assert path in str(e.value)
  # The labels file in place of the images file: wrong magic number.
  with open(path, 'wb') as f:
    f.write(open(paths['train', 'labels'], 'rb').read())
  with pytest.raises(DataError, match='magic number') as e:
    datasets.load_dataset(_config(name='fashion_mnist'))
  assert path in str(e.value)


@pytest.mark.parametrize('change,message', [
    ('extra_bytes', r'header says shape \(20, 28, 28\) \(15680 bytes\) but it holds 15681'),
    ('labels_count', 'holds 20 images but .* holds 19 labels'),
    ('label_10', 'holds label 10, expected 0..9'),
])
def test_fashion_mnist_inconsistent_idx_files_are_refused(tmp_path, change, message):
  paths = _write_fake_fashion_mnist(tmp_path, compress=False)
  rng = np.random.default_rng(1)
  if change == 'extra_bytes':  # Data past the header's shape: not the file it claims to be.
    with open(paths['train', 'images'], 'ab') as f:
      f.write(b'x')
  elif change == 'labels_count':
    _write_idx(tmp_path / 'train-labels-idx1-ubyte', np.arange(19) % 10, compress=False)
  else:
    _write_idx(tmp_path / 'train-labels-idx1-ubyte', rng.permutation(np.arange(20) % 11),
               compress=False)
  with pytest.raises(DataError, match=message):
    datasets.load_dataset(_config(name='fashion_mnist', path=str(tmp_path)))


def test_fashion_mnist_neither_source(tmp_path, monkeypatch):
  empty = tmp_path / 'idx'
  empty.mkdir()
  monkeypatch.setenv(fashion_mnist.FASHION_MNIST_ENV, str(empty))
  with pytest.raises(DataFileNotFoundError) as e:
    datasets.load_dataset(_config(name='fashion_mnist', data_dir=str(tmp_path / 'tfds')))
  message = str(e.value)
  assert 'apt-get install dataset-fashion-mnist' in message
  assert 'online' in message and 'TFDS data_dir' in message and str(empty) in message


def test_unknown_name():
  with pytest.raises(DataError, match='held in memory are: fashion_mnist, cifar10'):
    datasets.load_dataset(_config(name='mnist'))
  with pytest.raises(DataError, match='pipeline.create_pipeline'):
    datasets.load_dataset(_config(name='imagenet_1pct'))


# --------------------------------------------------------------------------------------------
# .npz files.
# --------------------------------------------------------------------------------------------


def _arrays(n_train=40, n_test=12, shape=(8, 8, 3), num_classes=4, seed=0):
  rng = np.random.default_rng(seed)
  return {
      'x_train': rng.integers(0, 256, (n_train,) + shape).astype(np.uint8),
      'y_train': (np.arange(n_train) % num_classes).astype(np.int64),
      'x_test': rng.integers(0, 256, (n_test,) + shape).astype(np.uint8),
      'y_test': (np.arange(n_test) % num_classes).astype(np.uint8),
  }


def test_npz_round_trip(tmp_path):
  arrays = _arrays()
  path = tmp_path / 'toy.npz'
  np.savez(path, **arrays)
  ds = datasets.load_dataset(_config(path=str(path)))
  assert ds.name == 'toy' and ds.num_classes == 4
  np.testing.assert_array_equal(ds.x_train, arrays['x_train'])
  np.testing.assert_array_equal(ds.x_test, arrays['x_test'])
  np.testing.assert_array_equal(ds.y_train, arrays['y_train'])
  assert ds.y_train.dtype == ds.y_test.dtype == np.int32
  x = arrays['x_train'].astype(np.float64) / 255
  np.testing.assert_allclose(ds.mean, x.mean(axis=(0, 1, 2)), rtol=1e-5)
  np.testing.assert_allclose(ds.std, x.std(axis=(0, 1, 2)), rtol=1e-5)


def test_npz_grayscale_rank3_and_zca(tmp_path):
  rng = np.random.default_rng(1)
  arrays = _arrays(n_train=400, shape=(4, 4))
  # Correlated pixels, so that whitening has something to do.
  base = rng.normal(size=(400, 1, 1)) * 40 + 128
  arrays['x_train'] = np.clip(base + rng.normal(size=(400, 4, 4)) * 20, 0, 255).astype(np.uint8)
  path = tmp_path / 'gray.npz'
  np.savez(path, **arrays)
  ds = datasets.load_dataset(_config(path=str(path), zca=True))
  assert ds.x_train.shape == (400, 4, 4, 1) and ds.x_test.shape == (12, 4, 4, 1)
  assert ds.zca.shape == (16, 16) and ds.zca.dtype == np.float32 and ds.zca_mean.shape == (16,)
  np.testing.assert_allclose(ds.zca, ds.zca.T, atol=1e-5)
  z = ((ds.x_train / 255.0 - ds.mean) / ds.std).reshape(400, -1)
  white = (z - ds.zca_mean) @ ds.zca
  cov = np.cov(white.T)
  np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-5)
  # Off-diagonal covariance ~0; diagonal below 1 by the ridge epsilon.
  assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.05
  assert np.all((np.diag(cov) > 0.5) & (np.diag(cov) <= 1.0 + 1e-6))
  np.testing.assert_allclose(np.corrcoef(z.T)[0, 1] > 0.5, True)


@pytest.mark.parametrize('change,message', [
    (lambda a: a.pop('y_test'), 'lacks the key'),
    (lambda a: a.update(x_train=a['x_train'][..., None]), 'rank 5'),
    (lambda a: a.update(x_test=a['x_test'].astype(np.float32) / 255), 'dtype float32'),
    (lambda a: a.update(y_train=a['y_train'].astype(np.float32)), 'integer class ids'),
    (lambda a: a.update(y_test=np.full(12, 7)), 'out of range'),
    (lambda a: a.update(y_train=np.where(a['y_train'] == 0, -1, a['y_train'])), 'negative'),
    (lambda a: a.update(y_train=a['y_train'][:-1]), 'same length'),
    (lambda a: a.update(y_train=np.where(a['y_train'] == 1, 2, a['y_train'])), 'never appear'),
    (lambda a: a.update(x_test=a['x_test'][:, :4]), 'same size'),
    (lambda a: a.update(x_train=a['x_train'][:0], y_train=a['y_train'][:0]), 'empty'),
])
def test_npz_rejects_bad_input(tmp_path, change, message):
  arrays = _arrays()
  change(arrays)
  path = tmp_path / 'bad.npz'
  np.savez(path, **arrays)
  with pytest.raises(DataError, match=message) as e:
    datasets.load_dataset(_config(path=str(path)))
  assert str(path) in str(e.value)


def test_npz_not_an_npz(tmp_path):
  path = tmp_path / 'junk.npz'
  path.write_bytes(b'not a zip file at all')
  with pytest.raises(DataError, match='Cannot read npz') as e:
    datasets.load_dataset(_config(path=str(path)))
  assert str(path) in str(e.value)
  with pytest.raises(DataFileNotFoundError, match='missing.npz'):
    datasets.load_dataset(_config(path=str(tmp_path / 'missing.npz')))


# --------------------------------------------------------------------------------------------
# Image folders.
# --------------------------------------------------------------------------------------------


def _write_folder(root, mode='RGB', size=(6, 5), counts=None, ext='.png'):
  """Writes root/{train,test}/<class>/<i>.png; returns {split: (images, labels)}."""
  rng = np.random.default_rng(0)
  counts = counts or {'train': 3, 'test': 2}
  channels = 3 if mode == 'RGB' else 1
  written = {}
  for split, n in counts.items():
    images, labels = [], []
    for label, name in enumerate(['cat', 'dog', 'emu']):
      (root / split / name).mkdir(parents=True, exist_ok=True)
      for i in range(n):
        pixels = rng.integers(0, 256, (size[1], size[0], channels)).astype(np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
            root / split / name / f'{i}{ext}')
        images.append(pixels)
        labels.append(label)
    written[split] = (np.stack(images), np.asarray(labels))
  return written


@pytest.mark.parametrize('mode', ['RGB', 'L'])
def test_folder_round_trip(tmp_path, mode):
  written = _write_folder(tmp_path, mode)
  (tmp_path / 'train' / 'cat' / 'notes.txt').write_text('ignored')
  ds = datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  channels = 3 if mode == 'RGB' else 1
  assert ds.x_train.shape == (9, 5, 6, channels) and ds.x_test.shape == (6, 5, 6, channels)
  assert ds.class_names == ('cat', 'dog', 'emu') and ds.num_classes == 3
  np.testing.assert_array_equal(ds.x_train, written['train'][0])
  np.testing.assert_array_equal(ds.y_train, written['train'][1])
  np.testing.assert_array_equal(ds.x_test, written['test'][0])
  np.testing.assert_array_equal(ds.y_test, written['test'][1])


@pytest.mark.parametrize('field,value', [('image_size', 32), ('skip_unreadable', True)])
def test_a_train_test_folder_refuses_settings_it_would_ignore(tmp_path, field, value):
  """Only a labeled/ + unlabeled/ folder is resized and may skip files: in the train/ + test/
  layout these settings would change nothing."""
  _write_folder(tmp_path)
  with pytest.raises(DataError, match=rf'config.dataset.{field}={value} would be ignored: the '
                                      r'train/ \+ test/ folder'):
    datasets.load_dataset(_config(name='folder', path=str(tmp_path), **{field: value}))


def test_folder_images_are_read_as_shown_as_predict_reads_them(tmp_path):
  """EXIF orientation 3 (stored upside down): training reads what alc_jax.predict and evaluate
  read (image_files.decode_image), not the stored pixels."""
  _write_folder(tmp_path)
  stored = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
  exif = Image.Exif()
  exif[0x0112] = 3  # Orientation: rotated 180 degrees.
  path = tmp_path / 'train' / 'cat' / '0.png'
  Image.fromarray(stored).save(path, exif=exif)
  ds = datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  np.testing.assert_array_equal(ds.x_train[0], stored[::-1, ::-1])
  np.testing.assert_array_equal(ds.x_train[0], image_files.decode_image(str(path), (6, 5), 'RGB'))


def test_folder_image_turned_by_exif_is_measured_as_shown(tmp_path):
  """Orientation 6 (90 degrees) swaps width and height: stored at the set's size, the image as
  shown is not, and the error says the orientation was applied."""
  _write_folder(tmp_path)
  exif = Image.Exif()
  exif[0x0112] = 6
  path = tmp_path / 'train' / 'dog' / '0.png'
  Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(path, exif=exif)  # Stored 6x5 as the rest.
  with pytest.raises(DataError, match=r'0.png is 5x6 \(width x height, as shown: EXIF '
                                      r'orientation applied\) but the expected size is 6x5'):
    datasets.load_dataset(_config(name='folder', path=str(tmp_path)))


def test_folder_unreadable_image(tmp_path):
  _write_folder(tmp_path)
  bad = tmp_path / 'train' / 'dog' / 'x.png'
  bad.write_bytes(b'\x00garbage, not a PNG')
  with pytest.raises(DataError, match='Cannot read image') as e:
    datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  assert str(bad) in str(e.value)


def test_folder_size_mismatch(tmp_path):
  _write_folder(tmp_path)
  odd = tmp_path / 'test' / 'emu' / 'odd.png'
  Image.fromarray(np.zeros((7, 6, 3), np.uint8)).save(odd)
  with pytest.raises(DataError, match='expected size is 6x5') as e:
    datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  assert str(odd) in str(e.value)


def test_folder_skips_hidden_files_and_refuses_a_class_without_training_images(tmp_path):
  written = _write_folder(tmp_path)
  hidden = np.zeros((5, 6, 3), np.uint8)  # Same size and mode: only its name keeps it out.
  Image.fromarray(hidden).save(tmp_path / 'train' / 'dog' / '.thumbnail.png')
  ds = datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  np.testing.assert_array_equal(ds.x_train, written['train'][0])
  for split in ('train', 'test'):
    (tmp_path / split / 'yak').mkdir()
  with pytest.raises(DataError, match='yak holds no .png/.jpg/.jpeg image; every class needs'):
    datasets.load_dataset(_config(name='folder', path=str(tmp_path)))


def test_folder_mismatched_classes_and_mode(tmp_path):
  _write_folder(tmp_path)
  (tmp_path / 'test' / 'fox').mkdir()
  with pytest.raises(DataError, match="only in test/: \\['fox'\\]"):
    datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  (tmp_path / 'test' / 'fox').rmdir()
  gray = tmp_path / 'train' / 'emu' / 'gray.png'
  Image.fromarray(np.zeros((5, 6), np.uint8), 'L').save(gray)
  with pytest.raises(DataError, match='mode') as e:
    datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  assert str(gray) in str(e.value)
  gray.unlink()
  # Only 'L' and 'RGB' (train/ + test/ images are taken as they are): RGBA is refused.
  rgba = tmp_path / 'train' / 'emu' / 'rgba.png'
  Image.fromarray(np.zeros((5, 6, 4), np.uint8), 'RGBA').save(rgba)
  with pytest.raises(DataError, match="has PIL mode 'RGBA'; only 'L'") as e:
    datasets.load_dataset(_config(name='folder', path=str(tmp_path)))
  assert str(rgba) in str(e.value)
  with pytest.raises(DataFileNotFoundError, match='train'):
    datasets.load_dataset(_config(name='folder', path=str(tmp_path / 'nowhere')))
