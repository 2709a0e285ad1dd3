"""Shared fixtures: a tiny learnable image data set as .npz and a tiny config that trains on it."""

import json
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ['ALC_TFDS_DOWNLOAD'] = '0'  # Offline CI: a missing data set fails at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# Compiled programs go to one on-disk cache for this test session and the subprocesses it starts
# (the CLI tests, the launch scripts): many tests compile the same tiny programs again, in new
# closures or new processes, and compilation is most of the suite's time on a 2-core CPU.
# A test that needs its own cache sets JAX_COMPILATION_CACHE_DIR itself (test_reliability.py).
_XLA_CACHE = None
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _XLA_CACHE = os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='alc_jax_xla_')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
# The suite's programs are tiny and run a few steps: XLA's optimisations cost more than they save
# there (flax's tests compile the same way). Subprocesses inherit it. ALC_TEST_OPTIMIZE=1 compiles
# as users do. (docs/performance.md has the suite's time with and without.)
if os.environ.get('ALC_TEST_OPTIMIZE') != '1':
  os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')

# XLA:CPU's older loop emitters for fusions instead of its MLIR fusion emitters: the same programs
# in 0.5-0.6x the compile time (docs/performance.md). Set where this jaxlib knows the flag (XLA
# aborts on an unknown one) and the user has not chosen; subprocesses inherit it, and tests that
# clear XLA_FLAGS for a clean interpreter put TEST_XLA_FLAGS back where they compile.
_FUSION_EMITTERS = 'xla_cpu_use_fusion_emitters'


def _test_xla_flags():
  from alc_jax import cpu_setup as setup  # pylint: disable=g-import-not-at-top
  if (os.environ.get('ALC_TEST_OPTIMIZE') == '1'
      or _FUSION_EMITTERS in os.environ.get('XLA_FLAGS', '')
      or not setup.xla_knows(_FUSION_EMITTERS.encode())):
    return ''
  return f'--{_FUSION_EMITTERS}=false'


TEST_XLA_FLAGS = _test_xla_flags()
if TEST_XLA_FLAGS:
  os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {TEST_XLA_FLAGS}'.strip()

# First, before any test touches JAX: the tests run under the CPU set-up the entry points apply
# (alc_jax/cpu_setup.py: Eigen convolutions, one device per core; tiny_config's batch of 16 splits
# over them). Importing alc_jax does not apply it. Tests that need a particular device count set it
# in a subprocess.
from alc_jax import cpu_setup  # pylint: disable=g-import-not-at-top,wrong-import-position

# Except the unrolled random-bits lowering ('threefry'): compiled unoptimised, as here, it made the
# tiny Mean Teacher step's compile slower (2.1-2.3 s against 1.4-1.7 s); as users compile, faster.
# tests/test_cpu_setup.py checks the whole set-up in fresh processes, and the lowering's bits.
if os.environ.get('ALC_TEST_OPTIMIZE') != '1':
  os.environ.setdefault(cpu_setup.ENV, ','.join(l for l in cpu_setup.LEVERS if l != 'threefry'))
cpu_setup.configure()


def np_softmax(x):
  """Softmax over the last axis in NumPy: the tests' reference (float64 for float64 input)."""
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_log_softmax(x):
  """log softmax over the last axis in NumPy, without exp's overflow or log's underflow."""
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def checkpoint_steps(ckpt_dir, finalized=True):
  """Steps of the checkpoint directories in `ckpt_dir` ([] if there is none); finalized=False
  also counts orbax's temporary directories (`<step>.orbax-checkpoint-tmp-...`)."""
  try:
    names = os.listdir(ckpt_dir)
  except FileNotFoundError:
    return []
  if finalized:
    return sorted(int(n) for n in names if n.isdigit())
  return sorted(int(n.split('.')[0]) for n in names if n.split('.')[0].isdigit())


def metrics_rows(workdir, name='metrics.jsonl'):
  """The rows of a run's metrics.jsonl (or `name`, e.g. process 1's metrics.1.jsonl) in file
  order; [] when there is none."""
  path = pathlib.Path(workdir) / name
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_tiny_images(n, num_classes, size, rng):
  """Class c = a bright square in one of `num_classes` positions, plus noise: easy to learn."""
  labels = np.arange(n) % num_classes
  rng.shuffle(labels)
  images = rng.integers(0, 60, size=(n, size, size, 1))
  half = size // 2
  for c in range(num_classes):
    r, q = divmod(c, 2)
    images[labels == c, r * half:(r + 1) * half, q * half:(q + 1) * half] += 150
  return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope='session')
def tiny_npz(tmp_path_factory):
  rng = np.random.default_rng(0)
  x_train, y_train = make_tiny_images(480, 4, 16, rng)
  x_test, y_test = make_tiny_images(96, 4, 16, rng)
  path = tmp_path_factory.mktemp('data') / 'tiny.npz'
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  return str(path)


def tiny_config(npz_path, **overrides):
  """configs/smoke.py on the tiny data set with TinyCNN, with `overrides` ('alc.enabled': True,
  ...)."""
  from configs import common, smoke  # pylint: disable=g-import-not-at-top
  config = smoke.get_config()
  config.dataset.name = 'npz'
  config.dataset.path = npz_path
  config.dataset.num_labels = 40
  config.batch_size = 16
  config.labeled_batch_size = 4
  # CNN-13's layer types in two convolutions (alc_jax/models/tiny_cnn.py): half the compile time
  # of CNN-13, which tests/test_models.py and the end-to-end smoke run cover.
  config.model.name = 'tiny_cnn'
  config.model.width = 0.0625
  config.eval_batch_size = 48
  # No TensorBoard events (clu's writer imports TensorFlow, ~4 s a process); metrics.jsonl is
  # written as always. tests/test_train_end_to_end.py runs the default and checks the events.
  config.tensorboard = False
  for key, value in overrides.items():
    common.set_path(config, key, value)
  return config


def pytest_configure(config):
  # The tests compare against float64 NumPy: on a GPU/TPU run them with full float32 matmuls
  # (their default rounds matmul operands to tf32/bf16). A no-op on the CPU.
  del config
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_default_matmul_precision', 'highest')


# The test files that take longest, about longest first, with their CPU time (their processes and
# the subprocesses they start; a run on 2026-12-03 on the 2-core CPU). launch/run_tests.sh hands
# whole files to its workers in collection order (`--dist loadfile --no-loadscope-reorder`), so
# these start first and a long file never starts last and runs alone (longest-processing-time-first
# scheduling). Every other file follows. This order gave the fresh-clone runs of 6 min 52 s and 7
# min 21 s; one in strict order of these times took 7 min 53 s (noise or not: one run).
LONGEST_FILES = (
    'test_reliability.py',  # 190 s, most of it the CLI scenarios its fixture starts.
    'test_train_end_to_end.py',  # 115 s, most of it CNN-13's smoke run and the ImageNet mock.
    'test_launch.py',  # 75 s, a third of it the stability probe's runs.
    'test_train.py',  # 85 s.
    'test_fixmatch.py',  # 45 s (RandAugment's 14 branches compile).
    'test_alc_objectives.py',  # 45 s.
    'test_user_path.py',  # 20 s: four programs, as the README runs them.
    'test_cpu_setup.py',  # 40 s, most of it two optimised compiles.
    'test_randaugment.py',  # 40 s.
    'test_inference.py',  # 30 s, most of it the fixture's run.
    'test_attention.py',  # 30 s.
    'test_models.py',  # 25 s.
    'test_bench.py',  # 15 s.
)


def pytest_collection_modifyitems(config, items):
  renamed = [f for f in LONGEST_FILES if not os.path.exists(os.path.join(ROOT, 'tests', f))]
  if renamed:
    raise pytest.UsageError(f'tests/conftest.py: LONGEST_FILES names {renamed}, which do not '
                            'exist: rename them there too.')
  # Stable: the tests of a file keep their order, and the other files theirs.
  items.sort(key=lambda item: (LONGEST_FILES + (item.path.name,)).index(item.path.name))
  # `slow` tests (setup.cfg) would push the default run past its time budget: they run only when
  # asked for, by a -m expression that names them (`pytest -m slow`) or ALC_RUN_SLOW=1.
  if 'slow' in (config.getoption('markexpr') or '') or os.environ.get('ALC_RUN_SLOW') == '1':
    return
  skip = pytest.mark.skip(reason='slow: run with `pytest -m slow` or ALC_RUN_SLOW=1')
  for item in items:
    if item.get_closest_marker('slow'):
      item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if _XLA_CACHE:
    shutil.rmtree(_XLA_CACHE, ignore_errors=True)


def corrupt_checkpoint(step_dir):
  """Truncates every array data file of an orbax checkpoint to half (a crash mid-write, a full
  disk): what orbax stores is step/default/{_METADATA, manifest.ocdbt, ocdbt.process_0/d/*}."""
  files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, 'default'))
           for f in fs if os.path.basename(d) == 'd']
  assert files, os.listdir(step_dir)
  for f in files:
    os.truncate(f, os.path.getsize(f) // 2)
