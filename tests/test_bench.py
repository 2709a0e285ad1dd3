"""bench/bench.py runs end to end in a tiny mode and keeps its output contract (no timings)."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_tiny(tmp_path):
  out = tmp_path / 'bench.json'
  # One subprocess for both the table and --pairwise: each new process pays JAX's start-up again.
  cmd = [sys.executable, os.path.join(ROOT, 'bench', 'bench.py'), '--steps', '2', '--width',
         '0.0625', '--models', 'tiny_cnn', '--methods', 'mean_teacher,mean_teacher_alc',
         '--batch-size', '16', '--pairwise', '--pairwise-sizes', '8,32', '--json', str(out)]
  env = dict(os.environ, ALC_TFDS_DOWNLOAD='0')
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert re.match(r'^alc_overhead \d+\.\d+$', lines[-1]), lines[-1]
  assert lines[0].startswith('machine: ')
  header = next(i for i, l in enumerate(lines) if l.startswith('model '))
  for col in ('img/s', 'ms/step', 'compile s', 'peak MiB'):
    assert col in lines[header]
  table = lines[header + 1:header + 3]
  # The registry's labels (alc_jax/methods/), padded to one column.
  assert [[l[:8].strip(), l[9:33].strip()] for l in table] == [['tiny_cnn', 'MeanTeacher'],
                                                                ['tiny_cnn', 'MeanTeacher + ALC']]
  assert any(re.match(r'^\s+32\s+True\s', l) for l in lines), 'pairwise row for B=32 missing'

  results = json.loads(out.read_text())
  assert [r['method'] for r in results['rows']] == ['mean_teacher', 'mean_teacher_alc']
  assert all(r['images_per_second'] > 0 for r in results['rows'])
  assert [r['batch'] for r in results['pairwise']] == [8, 32]
  assert results['alc_overhead'] > 0


@pytest.mark.slow
def test_bench_cpu_levers_runs_and_peer_tiny(tmp_path):
  """--levers (4 subprocesses), --vectorized (loop, vmap, separate), --peer if torch is here.

  Marked slow (~2 minutes on 2 cores: 4 lever subprocesses each start JAX and compile): the
  default run skips it; run it with `pytest -m slow tests/test_bench.py` (or ALC_RUN_SLOW=1).
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.default_backend() != 'cpu':
    pytest.skip('--levers measures the CPU set-up')
  peer = importlib.util.find_spec('torch') is not None
  out = tmp_path / 'bench.json'
  cmd = [sys.executable, os.path.join(ROOT, 'bench', 'bench.py'), '--skip-table', '--levers',
         '--vectorized', '2', '--steps', '1', '--width', '0.0625', '--models', 'cnn13',
         '--batch-size', '16', '--json', str(out)] + (['--peer'] if peer else [])
  env = dict(os.environ, ALC_TFDS_DOWNLOAD='0')
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = proc.stdout
  assert text.count('load average') >= 3 and 'uptime before:' in text and 'uptime after:' in text
  header = text.index('CPU set-up               devices')
  table = text[header:].splitlines()[1:6]
  assert [l[:24].strip() for l in table] == ['all levers off', '+ Eigen convolutions',
                                             '+ all cores as devices', '+ unrolled threefry',
                                             'all on (the default)']
  assert re.search(r'^2 runs in one program, loop\*\s+\d', text, re.M), text[-2000:]
  assert re.search(r'^2 runs in one program, vmap\s+\d', text, re.M)
  assert re.search(r'^2 runs one after another\s+\d', text, re.M)

  results = json.loads(out.read_text())
  levers = {r['levers']: r for r in results['levers']}
  assert sorted(levers) == ['0', '1', 'convs', 'devices', 'threefry']
  assert levers['0']['mesh_devices'] == levers['convs']['mesh_devices'] == 1
  assert levers['threefry']['mesh_devices'] == 1
  cores = len(os.sched_getaffinity(0))
  mesh = max(n for n in range(1, cores + 1) if 16 % n == 0)  # Devices that divide the batch.
  assert levers['1']['mesh_devices'] == levers['devices']['mesh_devices'] == mesh
  assert levers['0']['applied'] == {} and all(r['images_per_second'] > 0 for r in levers.values())
  if 'XLA_FLAGS' in levers['1']['applied']:  # This jaxlib knows the Eigen flag.
    assert levers['1']['ynn_convs'] == levers['convs']['ynn_convs'] == 0
  vec = results['vectorized']
  assert vec['default'] == 'loop' and vec['loop']['images_per_second'] > 0
  assert vec['vmap']['images_per_second'] > 0 and len(vec['sequential']) == 2
  if peer:
    assert results['peer']['images_per_second'] > 0
    assert 'levers: all on (the default)' in text


def _bench_modules(*names):
  """Scripts of bench/ as modules; they import their sibling bench.py by name, as when run."""
  sys.path.insert(0, os.path.join(ROOT, 'bench'))
  try:
    return [importlib.import_module(name) for name in names]
  finally:
    sys.path.remove(os.path.join(ROOT, 'bench'))


def test_paired_steps_compiles_a_variant_with_the_xla_option_it_names(tmp_path):
  """bench/paired_steps.py --xla-option NAME=VALUE: parsed to a typed option, refused when it is
  not NAME=VALUE, and handed to XLA by bench.Runner (an option XLA lacks fails the compile, so
  the option reaches it; a real one compiles and steps)."""
  import argparse  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  bench, paired_steps = _bench_modules('bench', 'paired_steps')
  assert paired_steps.xla_option('xla_cpu_prefer_vector_width=512') == (
      'xla_cpu_prefer_vector_width', 512)
  assert paired_steps.xla_option('xla_cpu_use_xnnpack=False') == ('xla_cpu_use_xnnpack', False)
  for bad in ('xla_cpu_use_xnnpack', 'use_xnnpack=true'):
    with pytest.raises(argparse.ArgumentTypeError, match='expected NAME=VALUE'):
      paired_steps.xla_option(bad)
  assert paired_steps.label(('max_pool_2x2', True, False, ('xla_cpu_use_xnnpack', True))) == (
      'max_pool_2x2, threefry unrolled, xla_cpu_use_xnnpack=True')
  # --views-one-by-one: the views as drawn before augment_views, the same values.
  keys, images = list(jax.random.split(jax.random.key(0), 2)), jnp.ones((4, 6, 6, 3))
  for old, new in zip(paired_steps.views_one_by_one(keys, images, 2, True, 0.15),
                      paired_steps.AUGMENT_VIEWS(keys, images, 2, True, 0.15)):
    np.testing.assert_allclose(old, new, rtol=0, atol=3e-7)
  if jax.default_backend() != 'cpu':
    return  # The options below are XLA:CPU's.
  config = bench.synthetic_step_config(str(tmp_path), 'tiny_cnn', 'supervised', 0.0625,
                                       batch_size=16)
  with pytest.raises(Exception, match='xla_cpu_not_an_option'):
    bench.Runner(config, {'xla_cpu_not_an_option': True})
  assert bench.Runner(config, {'xla_cpu_enable_fast_min_max': True}).step() > 0


def test_profile_step_charges_time_between_thunks_to_the_convolution_before_it():
  """bench/profile_step.py's tallies of a trace: each instruction's own time by category, and
  per device the untraced stretches (an Eigen convolution works after its thunk returns) charged
  to the last convolution launched since the previous stretch, else to the instruction that
  ended last; a stretch between two steps (run_ids) is the host's."""
  (profile_step,) = _bench_modules('profile_step')
  names = {'conv': 'b/conv1a/conv_general_dilated', 'bn': 'b/bn1a/reduce_sum',
           'noise': 'jit(_normal)/erf_inv', 'conv2': 'b/conv2a/conv_general_dilated'}

  def thunk(name, ts, dur, device, run):
    return {'ph': 'X', 'name': name, 'ts': ts, 'dur': dur,
            'args': {'device_ordinal': device, 'run_id': run}}

  events = [thunk('conv', 0, 1, '0', 'a'), thunk('bn', 1, 1, '0', 'a'),  # Ends last, at 2.
            thunk('bn', 11, 2, '0', 'a'),  # 9 us after: conv's, launched in that stretch.
            thunk('noise', 12, 4, '0', 'a'),  # Overlaps bn: no gap; ends last (16).
            thunk('conv2', 18, 1, '0', 'a'),  # 2 us after noise, no convolution launched.
            thunk('conv', 30, 1, '0', 'b'),  # The next step: 11 us of the host.
            thunk('bn', 0, 5, '1', 'a'), thunk('conv', 9, 1, '1', 'a'),  # 4 us after bn.
            {'ph': 'X', 'name': 'Rendezvous', 'ts': 20, 'dur': 50},  # Not an instruction.
            {'ph': 'i', 'name': 'conv', 'ts': 40}]
  thunks, gaps = profile_step.device_time(events, names)
  assert dict(thunks.totals) == {'convolutions': 4, 'BatchNorm': 8, 'random bits': 4}
  assert dict(gaps.totals) == {'convolutions': 9, 'random bits': 2, 'BatchNorm': 4,
                               'between steps': 11}
  assert gaps.parts['convolutions'] == {'conv  b/conv1a/conv_general_dilated': 9}


def test_core_equivalence_cases_are_configs_that_run(tiny_npz):
  """bench/core_equivalence.py's 28 cases pass config_lib.validate as the script builds them (a
  4-minute script that failed at its first case would only be found when a restructuring needs
  it)."""
  from alc_jax import config_lib  # pylint: disable=g-import-not-at-top
  core_equivalence, = _bench_modules('core_equivalence')
  cases = core_equivalence.cases()
  assert len(cases) == 28
  for overrides in cases.values():
    config_lib.validate(core_equivalence.case_config(tiny_npz, overrides), num_devices=1)


def test_loop_overhead_times_the_trainer_s_own_loop(tiny_npz):
  """bench/loop_overhead.py on the tiny data set: the step alone, then train_and_evaluate's own
  loop (its logged steps/s), one round; a ratio comes out and the trainer's lines stay quiet."""
  cmd = [sys.executable, os.path.join(ROOT, 'bench', 'loop_overhead.py'),
         f'--config={ROOT}/configs/smoke.py', '--steps', '6', '--rounds', '1',
         '--config.model.name=tiny_cnn', '--config.dataset.name=npz',
         f'--config.dataset.path={tiny_npz}', '--config.dataset.num_labels=40',
         '--config.batch_size=16', '--config.labeled_batch_size=4', '--config.log_every_steps=2']
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 3, lines  # The header, the round, the median: no trainer lines.
  assert re.match(r'^round 0: step alone \d+ img/s, loop \d+ img/s, loop / step \d+\.\d{3}$',
                  lines[1]), lines[1]
  assert re.match(r'^median loop / step over 1 rounds: \d+\.\d{3} ', lines[2]), lines[2]
  bad = subprocess.run(cmd[:2] + ['--bogus'], capture_output=True, text=True, timeout=60)
  assert bad.returncode == 2 and 'unrecognised arguments: --bogus' in bad.stderr
