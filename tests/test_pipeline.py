"""alc_jax/data/pipeline.py: the one object the trainer reads its data through."""

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from alc_jax import train
from alc_jax.data import DataError, datasets, imagenet, pipeline
from tests.conftest import tiny_config


def _create(config, seeds=(0,)):
  mesh = jax.make_mesh((1,), ('data',), devices=jax.devices()[:1])
  return pipeline.create_pipeline(config, seeds, NamedSharding(mesh, P(None, 'data')),
                                  NamedSharding(mesh, P('data')), config.eval_batch_size)


def test_in_memory_pipeline_sizes_priors_and_normalization(tiny_npz):
  config = tiny_config(tiny_npz, **{'dataset.validation_size': 48, 'dataset.imbalance_ratio': 4.0})
  data = _create(config, seeds=(3, 4))
  dataset = datasets.load_dataset(config.dataset)
  assert (data.num_classes, data.image_shape) == (4, (16, 16, 1))
  assert data.num_train == 480 - 48 and data.split_seeds == [3, 4]
  assert data.eval_names == ('test', 'validation')
  assert data.labeled_batch_size == config.labeled_batch_size
  # r of Eq. 14 per run: the class shares of that run's own labeled split.
  for run, split in enumerate(data.splits):
    counts = np.bincount(dataset.y_train[split.labeled], minlength=4)
    np.testing.assert_allclose(data.priors[run], counts / counts.sum())
  assert not np.allclose(data.priors[0], 0.25)  # Imbalanced: the shares differ between classes.
  np.testing.assert_allclose(data.normalization.mean, dataset.mean)
  np.testing.assert_allclose(data.normalization.std, dataset.std)
  assert data.normalization.zca is None


def test_a_fixed_split_seed_gives_every_run_the_same_labels(tiny_npz):
  # config.dataset.split_seed >= 0 (the tuning runs on a validation split): one label split for
  # all runs; -1: each run's split follows its seed.
  fixed = _create(tiny_config(tiny_npz, **{'dataset.split_seed': 7, 'dataset.validation_size': 48}),
                  seeds=(3, 4))
  own = _create(tiny_config(tiny_npz, **{'dataset.validation_size': 48}), seeds=(3, 4))
  assert fixed.split_seeds == [7, 7] and own.split_seeds == [3, 4]
  for field in ('labeled', 'unlabeled', 'validation'):
    np.testing.assert_array_equal(getattr(fixed.splits[0], field),
                                  getattr(fixed.splits[1], field))
    assert not np.array_equal(getattr(own.splits[0], field), getattr(own.splits[1], field))


def test_batches_are_global_arrays_of_the_right_shapes(tiny_npz):
  config = tiny_config(tiny_npz, num_runs=2, **{'dataset.validation_size': 48})
  data = _create(config, seeds=(0, 1))
  batch = next(data.train_batches(0))
  assert batch['image'].shape == (2, 16, 16, 16, 1) and isinstance(batch['image'], jax.Array)
  assert np.asarray(batch['labeled']).sum(axis=1).tolist() == [4, 4]
  test = list(data.eval_batches('test'))
  assert sum(int(np.asarray(b['mask']).sum()) for b in test) == 96
  validation = list(data.eval_batches('validation'))
  assert sum(int(np.asarray(b['mask']).sum()) for b in validation) == 48
  with pytest.raises(ValueError, match="no evaluation set 'bogus'"):
    next(data.eval_batches('bogus'))


def test_eval_examples_keeps_the_first_test_images(tiny_npz):
  data = _create(tiny_config(tiny_npz, **{'dataset.eval_examples': 40}))
  rows = [{k: np.asarray(v) for k, v in b.items()} for b in data.eval_batches('test')]
  mask = np.concatenate([b['mask'] for b in rows])
  assert mask.sum() == 40
  images = np.concatenate([b['image'] for b in rows])[mask]
  np.testing.assert_array_equal(images, data.dataset.x_test[:40])


def test_device_prefetch_starts_batches_ahead_and_closes_its_source():
  pulled = []

  def source():
    try:
      for i in range(10):
        pulled.append(i)
        yield i
    finally:
      pulled.append('closed')

  with pipeline.DevicePrefetch(source(), 2) as batches:
    assert next(batches) == 0 and pulled == [0, 1, 2]  # Two started beyond the one taken.
    assert next(batches) == 1 and pulled == [0, 1, 2, 3]
  assert pulled[-1] == 'closed'
  for ahead in (0, 5):  # At the source's end, the batches already started still come.
    assert list(pipeline.DevicePrefetch(iter(range(3)), ahead)) == [0, 1, 2]


def test_supervised_batches_hold_labeled_examples_only(tiny_npz):
  data = _create(tiny_config(tiny_npz, method='supervised', labeled_batch_size=0))
  assert data.labeled_batch_size == 16
  assert bool(np.asarray(next(data.train_batches(0))['labeled']).all())


def test_more_labels_than_examples_is_refused(tiny_npz):
  config = tiny_config(tiny_npz, **{'dataset.num_labels': 500})
  with pytest.raises(DataError, match=r'num_labels \+ validation_size = 500 exceeds '
                     r"the 480 training examples of 'npz'"):
    train.create_experiment(config)
  config = tiny_config(tiny_npz, **{'dataset.num_labels': 440, 'dataset.validation_size': 48})
  with pytest.raises(DataError, match=r'num_labels \+ validation_size = 488 exceeds'):
    train.create_experiment(config)


def test_streamed_imagenet_pipeline_needs_no_data_to_describe_itself(tiny_npz):
  config = tiny_config(tiny_npz, **{'dataset.name': 'imagenet_1pct'})
  config.dataset.image_size = 64
  data = _create(config)  # Nothing is read until batches are asked for.
  assert isinstance(data, pipeline.StreamedPipeline)
  assert (data.num_classes, data.image_shape) == (1000, (64, 64, 3))
  assert data.num_train == imagenet.NUM_TRAIN and data.eval_names == ('test',)
  np.testing.assert_allclose(data.priors, np.full((1, 1000), 1e-3))
  np.testing.assert_allclose(data.normalization.mean, imagenet.MEAN)


def test_streamed_imagenet_batches_repeat_from_a_step_and_a_resume_gets_fresh_ones(tiny_npz):
  # The stream is seeded by (run seed, start step): the same start gives the same batches; a run
  # resumed at step 5 is not fed step 0's batches again.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = tiny_config(tiny_npz, **{'dataset.name': 'imagenet_1pct'})
  config.dataset.image_size = 16
  config.dataset.shuffle_buffer = 8
  data = _create(config)
  with tfds.testing.mock_data(num_examples=8):
    first, again, resumed = (next(data._local_train_batches(step)) for step in (0, 0, 5))
  assert first['image'].shape == (1, config.batch_size, 16, 16, 3)  # The run axis (R = 1).
  np.testing.assert_array_equal(first['image'], again['image'])
  assert not np.array_equal(first['image'], resumed['image'])


def test_unknown_data_set_names_every_valid_one(tiny_npz):
  with pytest.raises(DataError) as error:
    _create(tiny_config(tiny_npz, **{'dataset.name': 'mnist'}))
  for name in pipeline.DATASET_NAMES:
    assert name in str(error.value)
