"""The CPU set-up that the entry points apply with `cpu_setup.configure()` (alc_jax/cpu_setup.py):
importing alc_jax applies nothing, where the compiled train step's convolutions run, one device per
core, that nothing the user set is overridden, and that a call that comes too late says so."""

import json
import os
import subprocess
import sys
import types
import warnings

import jax
import numpy as np
import pytest

from alc_jax import config_lib, cpu_setup, train
from tests.conftest import ROOT, tiny_config

# Compiles the tiny config's train step (TensorFlow blocked: unused here, ~4 s a process).
COMPILE_SCRIPT = r'''
import json, sys
sys.modules.setdefault('tensorflow', None)
import jax
from alc_jax import cpu_setup
cpu_setup.configure()  # As the entry points do, first thing.
from alc_jax import train
from tests.conftest import tiny_config
# TinyCNN at 32 channels (YNNPACK leaves 8-channel convolutions to Eigen either way), trained
# supervised: the cheapest step whose convolutions YNNPACK takes without the flag (compiled
# optimised, twice: Mean Teacher + ALC on CNN-13 took 4x the CPU time).
exp = train.create_experiment(tiny_config({npz!r}, method='supervised', labeled_batch_size=0,
                                          **{{'alc.enabled': False, 'model.width': 0.25}}))
# The state's shapes and shardings, not its values: computing them would compile the initialiser,
# which with XLA's optimisations takes longer than the step itself (~110 s on a slow day).
state = jax.eval_shape(exp.init_fn)
text = exp.compiled_train_step.lower(state, next(exp.train_batches()),
                                     exp.data.normalization).compile().as_text()
print(json.dumps({{'applied': cpu_setup.applied, 'devices': jax.device_count(),
                  'mesh': len(exp.devices), 'convs': text.count(' convolution('),
                  'ynn_convs': cpu_setup.ynn_convolutions(text), 'loops': text.count(' while(')}}))
'''

# Runs `before`, then configure() as a notebook's first cell does, and again (which must change
# nothing); reports what the set-up did and what it warned (no compilation).
REPORT_SCRIPT = r'''
import json, os, warnings, jax
{before}
import alc_jax
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter('always')
  alc_jax.cpu_setup.configure()
  flags_once = os.environ.get('XLA_FLAGS')
  again = alc_jax.cpu_setup.configure()  # Idempotent: the second call changes nothing.
print(json.dumps({{'applied': alc_jax.cpu_setup.applied, 'xla_flags': os.environ.get('XLA_FLAGS'),
                  'flags_once': flags_once, 'again_same': again is alc_jax.cpu_setup.applied,
                  'warned': [str(w.message) for w in caught if 'cpu_setup' in str(w.message)],
                  'devices': jax.device_count() if {count} else None}}))
'''

# Imports the package and the modules a notebook uses, reports what that changed, then calls
# configure() if asked and counts the devices (which starts the backend: so last).
IMPORT_SCRIPT = r'''
import json, os, sys
import jax
from jax._src import xla_bridge
import alc_jax, alc_jax.losses, alc_jax.models, alc_jax.train
got = {{'xla_flags': os.environ.get('XLA_FLAGS'), 'num_cpu_devices': jax.config.jax_num_cpu_devices,
        'applied': dict(alc_jax.cpu_setup.applied),
        'backend_started': xla_bridge.backends_are_initialized(),
        'tensorflow': 'tensorflow' in sys.modules}}
if {configure}:
  alc_jax.cpu_setup.configure()
got.update(devices=jax.device_count(), xla_flags_after=os.environ.get('XLA_FLAGS'),
           applied_after=alc_jax.cpu_setup.applied)
print(json.dumps(got))
'''


def _env(**changes):
  """This process' environment without the settings the set-up looks at (the test process has its
  own XLA_FLAGS from conftest's `cpu_setup.configure()`), plus `changes`."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('XLA_FLAGS', 'JAX_NUM_CPU_DEVICES', cpu_setup.ENV)}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  env.update(changes)
  return env


def _last_json(proc):
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_set_up():
  """What each lever of configure() sets in a fresh process of _env(): convs, devices, threefry."""
  cores = cpu_setup.num_cores()
  knows = cpu_setup.xla_knows(*cpu_setup._EIGEN_CONVS_NEEDS)  # pylint: disable=protected-access
  convs = {'XLA_FLAGS': cpu_setup.EIGEN_CONVS} if knows else {}
  devices = {'jax_num_cpu_devices': cores} if cores > 1 else {}
  threefry = {'threefry': 'unrolled'} if cpu_setup.threefry_lowerings() else {}
  return convs, devices, threefry


def test_importing_alc_jax_changes_nothing_until_configure_is_called():
  # Both at once, fresh interpreters with no XLA_FLAGS, JAX_NUM_CPU_DEVICES or
  # ALC_JAX_CPU_DEFAULTS: the imports alone, and the imports followed by configure().
  procs = [subprocess.Popen([sys.executable, '-c', IMPORT_SCRIPT.format(configure=configure)],
                            cwd=ROOT, env=_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
           for configure in (False, True)]
  imported, configured = [
      _last_json(subprocess.CompletedProcess(p.args, p.wait(300), *p.communicate()))
      for p in procs]
  for got in (imported, configured):  # Whatever follows, the imports themselves set nothing.
    assert got['xla_flags'] is None and got['num_cpu_devices'] == -1, got
    assert got['applied'] == {} and not got['backend_started'], got
    # Nor do they import TensorFlow (~4 s): clu's TensorBoard writer loads it when a run starts.
    assert not got['tensorflow'], got
  # Without configure(): JAX's defaults, one CPU device and no flags.
  assert imported['devices'] == 1 and imported['xla_flags_after'] is None, imported
  assert imported['applied_after'] == {}, imported
  # configure() then applies the set-up.
  convs, devices, threefry = _expected_set_up()
  assert configured['applied_after'] == convs | devices | threefry, configured
  assert configured['devices'] == cpu_setup.num_cores(), configured
  assert configured['xla_flags_after'] == convs.get('XLA_FLAGS'), configured


def test_compiled_train_step_runs_convolutions_by_eigen_on_every_core(tiny_npz):
  code = COMPILE_SCRIPT.format(npz=tiny_npz)
  # Both at once (each compiles for a few seconds): the default, and all levers off as the control.
  # Compiled as users compile (the suite's unoptimised mode skips the YNNPACK fusion pass).
  optimized = {'JAX_DISABLE_MOST_OPTIMIZATIONS': '0'}
  procs = [subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for env in (_env(**optimized), _env(**optimized, **{cpu_setup.ENV: '0'}))]
  default, off = [_last_json(subprocess.CompletedProcess(p.args, p.wait(300), *p.communicate()))
                  for p in procs]
  cores = cpu_setup.num_cores()
  assert default['devices'] == cores
  assert default['mesh'] == max(n for n in range(1, cores + 1) if 16 % n == 0)  # Batch 16.
  assert off['devices'] == off['mesh'] == 1 and off['applied'] == {}
  assert default['convs'] > 0 and off['convs'] > 0, (default, off)
  if cpu_setup.threefry_lowerings():  # Dropout's random bits: a rolled loop unless unrolled (the
    # loss's scatter-add is a loop either way).
    assert default['loops'] < off['loops'], (default, off)
  if cpu_setup.xla_knows(*cpu_setup._EIGEN_CONVS_NEEDS):  # pylint: disable=protected-access
    assert default['applied']['XLA_FLAGS'] == cpu_setup.EIGEN_CONVS
    assert default['ynn_convs'] == 0, default
    # The control: without the flag this jaxlib gives the convolutions to YNNPACK (if a later one
    # stops doing so, the flag is moot: drop it from cpu_setup).
    assert off['ynn_convs'] > 0, off
  else:  # A jaxlib without the flag or its value: it must not be set (XLA would abort).
    assert 'XLA_FLAGS' not in default['applied']


@pytest.mark.parametrize('case,before,env,count', [
    ('default', '', {}, True),
    ('opt_out', '', {cpu_setup.ENV: '0'}, True),
    ('convs_only', '', {cpu_setup.ENV: 'convs'}, True),
    ('devices_only', '', {cpu_setup.ENV: 'devices'}, True),
    ('user_device_count_env', '', {'JAX_NUM_CPU_DEVICES': '1'}, True),
    ('user_device_count_flag', '', {'XLA_FLAGS': '--xla_force_host_platform_device_count=3'},
     True),
    ('user_device_count_config', "jax.config.update('jax_num_cpu_devices', 1)", {}, True),
    # No backend started (count False): XLA, which would parse the flag, never runs.
    ('user_ynn_flag', '', {'XLA_FLAGS': f'{cpu_setup.YNN_FLAG}=+dot'}, False),
    ('backend_already_started', 'jax.devices()', {}, True),
    ('accelerator_platform', '', {'JAX_PLATFORMS': 'cuda'}, False),
])
def test_the_set_up_never_overrides_the_user(case, before, env, count):
  proc = subprocess.run([sys.executable, '-c', REPORT_SCRIPT.format(before=before, count=count)],
                        cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=120)
  got = _last_json(proc)
  cores = cpu_setup.num_cores()
  convs, devices, threefry = _expected_set_up()
  user_flags = env.get('XLA_FLAGS')
  want = {
      'default': (convs | devices | threefry, cores),
      'opt_out': ({}, 1),
      'convs_only': (convs, 1),
      'devices_only': (devices, cores),
      'user_device_count_env': (convs | threefry, 1),
      'user_device_count_flag': (convs | threefry, 3),
      'user_device_count_config': (convs | threefry, 1),
      'user_ynn_flag': (devices | threefry, None),
      # Too late for the backend's settings; the lowering still applies to what compiles next.
      'backend_already_started': (threefry, 1),
      'accelerator_platform': ({}, None),
  }[case]
  assert (got['applied'], got['devices']) == want, got
  # XLA_FLAGS: the user's, with the Eigen flag appended where it was applied.
  expected_flags = ' '.join(f for f in (user_flags, got['applied'].get('XLA_FLAGS')) if f) or None
  assert got['xla_flags'] == got['flags_once'] == expected_flags, got
  assert got['again_same'], got
  # Only a call that comes after JAX started, with something left to set, warns, naming the fix.
  if case == 'backend_already_started' and convs | devices:
    assert len(got['warned']) == 1 and 'too late' in got['warned'][0], got
    assert 'alc_jax.cpu_setup.configure()' in got['warned'][0], got
  else:
    assert got['warned'] == [], got


def test_the_flag_is_only_added_when_this_jaxlib_knows_it(monkeypatch):
  # XLA aborts the process on an unknown flag or value: the guard must look before it sets.
  assert cpu_setup.xla_knows(b'xla_force_host_platform_device_count')  # A long-standing flag.
  assert not cpu_setup.xla_knows(b'xla_cpu_no_such_flag_for_this_test')
  # Every needle, not any: the Eigen flag needs its name and its enum value.
  assert not cpu_setup.xla_knows(b'xla_force_host_platform_device_count',
                                 b'xla_cpu_no_such_flag_for_this_test')
  for knows, want in ((False, None), (True, cpu_setup.EIGEN_CONVS)):
    monkeypatch.setattr(cpu_setup, '_configured', False)
    monkeypatch.setattr(cpu_setup, 'applied', {})
    monkeypatch.setattr(cpu_setup, '_backends_initialized', lambda: False)
    monkeypatch.setattr(cpu_setup, '_cpu_is_default_backend', lambda: True)
    monkeypatch.setattr(cpu_setup, 'xla_knows', lambda *needles, k=knows: k)
    monkeypatch.setenv(cpu_setup.ENV, 'convs')
    monkeypatch.delenv('XLA_FLAGS', raising=False)
    cpu_setup.configure()
    assert os.environ.get('XLA_FLAGS') == want
    assert cpu_setup.configure() is cpu_setup.applied  # Idempotent: a second call does nothing.
    assert os.environ.get('XLA_FLAGS') == want


def test_a_call_after_jax_started_warns_once_and_sets_nothing(monkeypatch):
  monkeypatch.setattr(cpu_setup, 'applied', {})
  monkeypatch.setattr(cpu_setup, '_backends_initialized', lambda: True)
  monkeypatch.setattr(cpu_setup, '_cpu_is_default_backend', lambda: True)
  monkeypatch.setattr(cpu_setup, 'xla_knows', lambda *needles: True)
  monkeypatch.delenv('XLA_FLAGS', raising=False)
  monkeypatch.setenv(cpu_setup.ENV, 'convs')
  monkeypatch.setattr(cpu_setup, '_configured', False)
  with pytest.warns(RuntimeWarning, match=r'too late to set XLA_FLAGS.*Call it first thing'):
    assert cpu_setup.configure() == {}
  assert 'XLA_FLAGS' not in os.environ
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    assert cpu_setup.configure() == {}  # Once: the second call is silent.
    # Opted out: nothing would be set, so there is nothing to warn about.
    monkeypatch.setattr(cpu_setup, '_configured', False)
    monkeypatch.setenv(cpu_setup.ENV, '0')
    assert cpu_setup.configure() == {}


def test_unrolled_threefry_gives_the_same_bits_without_a_loop():
  if cpu_setup.threefry_lowerings() is None:
    pytest.skip('this JAX moved the private threefry names: the lever sets nothing')

  def program():  # A new function each time, so that JAX's caches do not reuse a lowering.
    def draw(key):
      return (jax.random.normal(key, (3, 50, 7)),
              jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, (1000,)),
              jax.random.key_data(jax.random.split(key, 5)))
    return draw

  key = jax.random.key(3)
  compiled = {}
  try:
    for unrolled in (False, True):
      cpu_setup.lower_threefry(unrolled)
      compiled[unrolled] = jax.jit(program()).lower(key).compile()
  finally:  # Back to what this process' configure() set.
    cpu_setup.lower_threefry('threefry' in cpu_setup.applied)
  assert ' while(' in compiled[False].as_text()  # JAX's CPU lowering: the rolled loop.
  assert ' while(' not in compiled[True].as_text()
  for rolled, unrolled in zip(compiled[False](key), compiled[True](key)):
    assert np.asarray(rolled).tobytes() == np.asarray(unrolled).tobytes()


def test_levers_from_the_environment():
  assert cpu_setup.wanted_levers('1') == cpu_setup.wanted_levers('') == set(cpu_setup.LEVERS)
  assert cpu_setup.LEVERS == ('convs', 'devices', 'threefry')
  assert cpu_setup.wanted_levers('0') == set()
  assert cpu_setup.wanted_levers(' devices ') == {'devices'}
  with pytest.raises(ValueError, match='convs, devices'):
    cpu_setup.wanted_levers('eigen')


def test_cores_are_those_this_process_may_run_on(monkeypatch):
  # A job pinned to 1 of the machine's cores (taskset, a container's cpuset) gets one device.
  monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {3}, raising=False)
  assert cpu_setup.num_cores() == 1


@pytest.mark.parametrize('platforms,plugin,want', [
    ('cpu', True, True), ('cpu,cuda', True, True), ('cuda,cpu', False, False),
    ('tpu', False, False), ('', False, True), ('', True, False)])
def test_the_set_up_acts_only_where_the_cpu_is_the_default_backend(monkeypatch, platforms, plugin,
                                                                    want):
  """JAX_PLATFORMS' first entry decides; unset, an installed accelerator plugin (which JAX would
  take) keeps the CPU set-up off."""
  monkeypatch.setenv('JAX_PLATFORMS', platforms)
  monkeypatch.setattr(cpu_setup, 'jax', types.SimpleNamespace(
      config=types.SimpleNamespace(jax_platforms=None)))  # Not set in code either.
  monkeypatch.setattr(cpu_setup.importlib.metadata, 'entry_points',
                      lambda group: ['jax_cuda12_plugin'] if plugin else [])
  monkeypatch.setattr(cpu_setup.importlib.util, 'find_spec', lambda name: None)
  assert cpu_setup._cpu_is_default_backend() == want  # pylint: disable=protected-access


def test_ynn_convolutions_counts_only_those_inside_ynnpack_fusions():
  hlo = """%fused_conv (p0: f32[1,4,4,1], p1: f32[3,3,1,1]) -> f32[1,4,4,1] {
  ROOT %convolution.1 = f32[1,4,4,1] convolution(%p0, %p1), window={size=3x3 pad=1_1x1_1}
}

%ynn_body (p0: f32[1,4,4,1], p1: f32[3,3,1,1]) -> f32[1,4,4,1] {
  ROOT %convolution.2 = f32[1,4,4,1] convolution(%p0, %p1), window={size=3x3 pad=1_1x1_1}
}

%custom_body (p0: f32[1,4,4,1], p1: f32[3,3,1,1]) -> f32[1,4,4,1] {
  %convolution.3 = f32[1,4,4,1] convolution(%p0, %p1), window={size=3x3 pad=1_1x1_1}
  ROOT %convolution.4 = f32[1,4,4,1] convolution(%convolution.3, %p1), window={size=3x3}
}

ENTRY %main (a: f32[1,4,4,1], b: f32[3,3,1,1]) -> f32[1,4,4,1] {
  %fusion.1 = f32[1,4,4,1] fusion(%a, %b), kind=kLoop, calls=%fused_conv
  %ynn_fusion.3 = f32[1,4,4,1] fusion(%fusion.1, %b), kind=kCustom, calls=%ynn_body
  ROOT %fusion.7 = f32[1] fusion(%b), calls=%custom_body, backend_config={"k":"__ynn_fusion"}
}
"""
  assert cpu_setup.ynn_convolutions(hlo) == 3  # Not conv 1: an ordinary fusion's, Eigen's.


def test_the_mesh_takes_the_most_devices_that_divide_the_batch():
  devices = jax.devices()
  for batch in (1, 7, 16, 100, 8 * len(devices)):
    n = len(train.mesh_devices(batch))
    assert batch % n == 0 and all(batch % m for m in range(n + 1, len(devices) + 1)), (batch, n)
  assert train.mesh_devices(8 * len(devices)) == devices


def test_run_batching_is_validated(tiny_npz):
  with pytest.raises(config_lib.ConfigError, match='run_batching'):
    config_lib.validate(tiny_config(tiny_npz, run_batching='scan'))
