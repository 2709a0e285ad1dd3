"""Tests of the training sampler and evaluation batches (alc_jax/data/sampler.py)."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from alc_jax.data.sampler import BatchSampler, eval_batches, make_train_iterator

N = 600  # Training set size.


@pytest.fixture(scope='module')
def data():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (N, 6, 5, 3), dtype=np.uint8)
  y = rng.integers(0, 10, N)
  labeled = np.sort(rng.choice(N, 50, replace=False))
  unlabeled = np.setdiff1d(np.arange(N), labeled)
  return x, y, labeled, unlabeled


def test_batch_composition(data):
  x, y, labeled, unlabeled = data
  sampler = BatchSampler(labeled, unlabeled, batch_size=20, labeled_batch_size=6, seed=1)
  it = make_train_iterator(x, y, [sampler], prefetch=0)
  for step in range(30):
    idx, is_labeled = sampler.global_indices(step)
    assert idx.dtype == np.int64 and idx.shape == (20,) and is_labeled.dtype == bool
    np.testing.assert_array_equal(is_labeled, np.arange(20) < 6)
    assert np.isin(idx[:6], labeled).all() and np.isin(idx[6:], unlabeled).all()
    batch = next(it)
    assert set(batch) == {'image', 'label', 'labeled', 'diagnostic_label'}
    assert batch['image'].dtype == np.uint8 and batch['image'].shape == (1, 20, 6, 5, 3)
    assert batch['label'].dtype == np.int32 and batch['labeled'].dtype == bool
    np.testing.assert_array_equal(batch['image'][0], x[idx])
    np.testing.assert_array_equal(batch['label'][0, :6], y[idx[:6]])
    np.testing.assert_array_equal(batch['label'][0, 6:], -1)
    np.testing.assert_array_equal(batch['labeled'][0], is_labeled)
    np.testing.assert_array_equal(batch['diagnostic_label'][0], y[idx])  # Diagnostics only.


def test_passes_visit_every_example_once(data):
  _, _, labeled, unlabeled = data
  # 50 labeled examples, 5 per batch: one pass is exactly 10 steps.
  sampler = BatchSampler(labeled, unlabeled, batch_size=25, labeled_batch_size=5, seed=3)
  passes = [np.concatenate([sampler.global_indices(t)[0][:5] for t in range(10 * p, 10 * p + 10)])
            for p in range(3)]
  for order in passes:
    np.testing.assert_array_equal(np.sort(order), labeled)
  assert not np.array_equal(passes[0], passes[1]) and not np.array_equal(passes[1], passes[2])
  # Unlabeled stream: 550 examples, 20 per step, passes straddle batches.
  stream = np.concatenate([sampler.global_indices(t)[0][5:] for t in range(55)])
  np.testing.assert_array_equal(np.sort(stream[:550]), unlabeled)
  np.testing.assert_array_equal(np.sort(stream[550:]), unlabeled)
  assert not np.array_equal(stream[:550], stream[550:])


def test_the_two_streams_are_shuffled_independently():
  # Seeded by (seed, stream, pass): pools of one size still get unrelated orders.
  sampler = BatchSampler(np.arange(40), np.arange(40, 80), batch_size=20, labeled_batch_size=10,
                         seed=5)
  labeled, unlabeled = (np.concatenate([sampler.global_indices(t)[0][rows] for t in range(4)])
                        for rows in (slice(0, 10), slice(10, 20)))
  assert not np.array_equal(labeled, unlabeled - 40)


def test_labeled_batch_larger_than_labeled_set():
  sampler = BatchSampler(np.arange(3), np.arange(3, 50), batch_size=10, labeled_batch_size=7,
                         seed=0)
  stream = np.concatenate([sampler.global_indices(t)[0][:7] for t in range(3)])  # 21 = 7 passes.
  for k in range(7):
    np.testing.assert_array_equal(np.sort(stream[3 * k:3 * k + 3]), np.arange(3))


def test_purity(data):
  _, _, labeled, unlabeled = data
  args = (labeled, unlabeled, 32, 8, 5)
  reference = [BatchSampler(*args).global_indices(t)[0] for t in range(40)]
  sampler = BatchSampler(*args)
  for t in [39, 0, 17, 3, 500, 17, 2, 39, 1000, 0]:
    if t < 40:
      np.testing.assert_array_equal(sampler.global_indices(t)[0], reference[t])
  for t in range(40):
    np.testing.assert_array_equal(sampler.global_indices(t)[0], reference[t])
  other_seed = BatchSampler(labeled, unlabeled, 32, 8, 6)
  assert not np.array_equal(other_seed.global_indices(0)[0], reference[0])


def test_resume_equivalence(data):
  x, y, labeled, unlabeled = data
  samplers = [BatchSampler(labeled, unlabeled, 20, 4, seed=s) for s in (0, 1)]
  with make_train_iterator(x, y, samplers) as it:
    full = list(itertools.islice(it, 12))
  for k in (0, 5, 11):
    fresh = [BatchSampler(labeled, unlabeled, 20, 4, seed=s) for s in (0, 1)]
    with make_train_iterator(x, y, fresh, start_step=k, prefetch=3) as it:
      resumed = next(it)
    for key in full[k]:
      np.testing.assert_array_equal(resumed[key], full[k][key])
  # Runs are independent draws.
  assert not np.array_equal(full[0]['image'][0], full[0]['image'][1])


def test_process_sharding(data):
  x, y, labeled, unlabeled = data
  samplers = [BatchSampler(labeled, unlabeled, 20, 6, seed=s) for s in (0, 4)]
  single = list(itertools.islice(make_train_iterator(x, y, samplers), 5))
  parts = [list(itertools.islice(make_train_iterator(x, y, samplers, process_index=p,
                                                     process_count=2, prefetch=1), 5))
           for p in range(2)]
  for step in range(5):
    assert parts[0][step]['image'].shape == (2, 10, 6, 5, 3)
    for key in single[step]:
      joined = np.concatenate([parts[0][step][key], parts[1][step][key]], axis=1)
      np.testing.assert_array_equal(joined, single[step][key])


def test_fully_labeled(data):
  x, y, _, _ = data
  for unlabeled, lb in [(np.array([], np.int64), 3), (np.arange(300, 600), 12)]:
    sampler = BatchSampler(np.arange(300), unlabeled, 12, lb, seed=0)
    idx, is_labeled = sampler.global_indices(4)
    assert is_labeled.all() and np.isin(idx, np.arange(300)).all()
    batch = next(make_train_iterator(x, y, [sampler], start_step=4, prefetch=0))
    np.testing.assert_array_equal(batch['label'][0], y[idx])


def test_grayscale_gets_channel_axis(data):
  _, y, labeled, unlabeled = data
  x = np.zeros((N, 7, 7), np.uint8)
  batch = next(make_train_iterator(x, y, [BatchSampler(labeled, unlabeled, 10, 2, 0)]))
  assert batch['image'].shape == (1, 10, 7, 7, 1)


def test_close_stops_thread(data):
  x, y, labeled, unlabeled = data
  it = make_train_iterator(x, y, [BatchSampler(labeled, unlabeled, 10, 2, 0)], prefetch=2)
  next(it)
  it.close()
  assert not it._thread.is_alive()
  with pytest.raises(StopIteration):
    next(it)


EXIT_SCRIPT = r'''
import sys
import numpy as np
from alc_jax.data.sampler import BatchSampler, make_train_iterator

def batches():  # Pipeline._global_train_batches's shape: close() in a finally.
  local = make_train_iterator(np.zeros((20, 2, 2), np.uint8), np.zeros(20, np.int64),
                              [BatchSampler(np.arange(4), np.arange(4, 20), 8, 2, 0)], prefetch=2)
  try:
    yield from local
  finally:
    local.close()

g = batches()
next(g)
# Finalised during module teardown: CPython clears a module's _names first, and by then the
# globals of threading (and of alc_jax.data.sampler) are gone.
sys._kept_batches = g
'''


def test_an_iterator_finalised_at_interpreter_exit_closes_quietly():
  """A generator still holding the iterator at exit (a notebook's, a benchmark's) is closed
  while the modules are torn down: no "Exception ignored ... NoneType" on stderr."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, '-c', EXIT_SCRIPT], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PYTHONPATH=root))
  assert out.returncode == 0 and 'Exception ignored' not in out.stderr, out.stderr[-2000:]


def test_producer_errors_reach_consumer(data):
  x, y, labeled, _ = data
  # Indices beyond the training set fail in the producer thread.
  sampler = BatchSampler(np.array([N + 5]), np.array([], np.int64), 4, 4, 0)
  with pytest.raises(IndexError):
    next(make_train_iterator(x, y, [sampler]))


@pytest.mark.parametrize('process_count', [1, 2])
def test_eval_batches(process_count):
  x = np.arange(23, dtype=np.uint8).reshape(23, 1, 1, 1) + 1  # Image value = index + 1.
  y = np.arange(23) % 7
  seen = []
  for p in range(process_count):
    batches = list(eval_batches(x, y, 10, process_index=p, process_count=process_count))
    assert len(batches) == 3
    for b in batches:
      assert b['image'].shape == (10 // process_count, 1, 1, 1) and b['image'].dtype == np.uint8
      assert b['label'].dtype == np.int32 and b['mask'].dtype == bool
      assert np.all(b['image'][~b['mask']] == 0) and np.all(b['label'][~b['mask']] == -1)
      ids = b['image'][b['mask']].ravel().astype(int) - 1
      np.testing.assert_array_equal(b['label'][b['mask']], y[ids])
      seen.append(ids)
  np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(23))
  if process_count == 2:
    # Process 0 holds the first half of every global batch.
    first = next(eval_batches(x, y, 10, 0, 2))
    np.testing.assert_array_equal(first['image'].ravel(), np.arange(1, 6))


def test_errors(data):
  x, y, labeled, unlabeled = data
  with pytest.raises(ValueError, match='0 < labeled_batch_size <= batch_size'):
    BatchSampler(labeled, unlabeled, 10, 0, 0)
  with pytest.raises(ValueError, match='0 < labeled_batch_size <= batch_size'):
    BatchSampler(labeled, unlabeled, 10, 11, 0)
  with pytest.raises(ValueError, match='labeled set is empty'):
    BatchSampler([], unlabeled, 10, 2, 0)
  with pytest.raises(ValueError, match='overlap'):
    BatchSampler(labeled, labeled, 10, 2, 0)
  with pytest.raises(ValueError, match='seed'):
    BatchSampler(labeled, unlabeled, 10, 2, -1)
  with pytest.raises(ValueError, match='step'):
    BatchSampler(labeled, unlabeled, 10, 2, 0).global_indices(-1)
  sampler = BatchSampler(labeled, unlabeled, 10, 2, 0)
  with pytest.raises(ValueError, match='not divisible by process_count'):
    make_train_iterator(x, y, [sampler], process_count=3)
  with pytest.raises(ValueError, match='not divisible by process_count'):
    next(eval_batches(x, y, 10, process_count=4))
  with pytest.raises(ValueError, match='same batch size|share one batch size'):
    make_train_iterator(x, y, [sampler, BatchSampler(labeled, unlabeled, 12, 2, 0)])
  with pytest.raises(ValueError, match='samplers is empty'):
    make_train_iterator(x, y, [])
