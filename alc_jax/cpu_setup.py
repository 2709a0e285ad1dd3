"""The fastest CPU set-up (issue 11), applied by `configure()` before any JAX backend exists.

Importing alc_jax changes nothing (issue 28): the entry points call `configure()` first thing
(`python -m alc_jax.main`, bench/bench.py, tests/conftest.py), and a notebook or script that uses
the library directly does too, before anything starts JAX (jax.devices(), a first array):

  import alc_jax
  alc_jax.cpu_setup.configure()

On a machine where JAX runs on the CPU, `configure()` sets three things, the first two only where
the user has not set them already (measured with jaxlib 0.10.2 on a 2-core AMD EPYC, CNN-13 train
steps):

1. 'convs': convolutions by Eigen, not YNNPACK. XLA:CPU hands every convolution to YNNPACK
   (`ynn_fusion` in the compiled HLO); `XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=
   -individual_convolution` sends them to Eigen: 0.89-0.91x the step time at width 0.25, 0.69-0.77x
   at full width. The flag is experimental and XLA aborts the process on an unknown flag or value,
   so it is only added when jaxlib's XLA library holds both the flag's name and the enum value that
   'individual_convolution' parses to (a byte search of the mapped library, ~0.1 s). Left alone
   when XLA_FLAGS already names the flag.
2. 'devices': one JAX CPU device per core (`jax_num_cpu_devices`, cores from
   os.sched_getaffinity); the trainer's mesh shards the batch over them: 0.76-0.80x the step time,
   results equal to one device's to 1e-7 (BatchNorm statistics and the ALC similarity are still
   over the global batch; `alc.scope=per_device` would make one S per device, so that stays an
   explicit choice). Left alone when jax_num_cpu_devices is set (jax.config or
   JAX_NUM_CPU_DEVICES) or XLA_FLAGS has --xla_force_host_platform_device_count.

3. 'threefry': JAX's random bits (the threefry2x32 hash) compiled unrolled, as JAX compiles them
   for GPU/TPU, instead of the rolled 5-iteration loop JAX lowers to on the CPU: the same bits, but
   the loop's iterations are separate passes over memory that nothing fuses. CNN-13's Mean Teacher
   step at width 1/16 (input noise and dropout masks for 100 images) ran 0-7 % faster and compiled
   in 7.8-9.2 s instead of 13.9-15.3 s (docs/performance.md). It registers JAX's own unrolled
   lowering rule for the CPU (private names of jax._src; if a later JAX moves them, nothing is
   set). Unlike the other two it also works after JAX has started, for programs lowered from then
   on.

The fourth CPU default is in the trainer: `num_runs > 1` runs its runs by a loop inside the one
jitted step on the CPU, by vmap elsewhere (config.run_batching, alc_jax/runs.py).

Nothing changes where the CPU is not JAX's default backend: if an accelerator plugin (a
`jax_plugins` package or libtpu) is installed and JAX_PLATFORMS does not start with 'cpu',
configure() does nothing (set JAX_PLATFORMS=cpu to get the CPU set-up there). Once a JAX backend
exists it sets only 'threefry' (the other two would come too late), and warns (RuntimeWarning)
where it would have set them. ALC_JAX_CPU_DEFAULTS=0 turns it off; a comma list of the levers'
names (e.g. =convs) applies those (bench/bench.py measures each). Only the first call of a process
acts; later ones return what it set.
"""

import importlib.metadata
import importlib.util
import mmap
import os
import re
import warnings

import jax

YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
EIGEN_CONVS = f'{YNN_FLAG}=-individual_convolution'
# XLA parses '-individual_convolution' to this enum value of xla.DebugOptions.LibraryFusionType.
_EIGEN_CONVS_NEEDS = (YNN_FLAG[2:].encode(), b'LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION')
LEVERS = ('convs', 'devices', 'threefry')
ENV = 'ALC_JAX_CPU_DEFAULTS'

# What configure() set, e.g. {'XLA_FLAGS': EIGEN_CONVS, 'jax_num_cpu_devices': 2,
# 'threefry': 'unrolled'}.
applied = {}
_configured = False


def num_cores():
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def wanted_levers(value=None):
  """The levers ALC_JAX_CPU_DEFAULTS asks for: unset or '1' all, '0' none, else a comma list."""
  value = os.environ.get(ENV, '1') if value is None else value
  value = value.strip().lower()
  if value in ('', '1', 'all'):
    return set(LEVERS)
  if value in ('0', 'none'):
    return set()
  levers = {v.strip() for v in value.split(',') if v.strip()}
  if levers - set(LEVERS):
    raise ValueError(f'{ENV}={value!r}: use 1, 0 or a comma list of {", ".join(LEVERS)}.')
  return levers


def xla_knows(*needles):
  """Whether jaxlib's shared libraries hold every byte string of `needles`."""
  spec = importlib.util.find_spec('jaxlib')
  if spec is None or not spec.origin:
    return False
  folder = os.path.dirname(spec.origin)
  missing = set(needles)
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if '.so' not in name or not os.path.isfile(path) or os.path.getsize(path) < 2 ** 20:
      continue  # XLA is in the large library (libjax_common.so in 0.10), not the small stubs.
    try:
      with open(path, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        missing = {n for n in missing if m.find(n) < 0}
    except (OSError, ValueError):
      continue
    if not missing:
      return True
  return False


def _cpu_is_default_backend():
  platforms = os.environ.get('JAX_PLATFORMS') or jax.config.jax_platforms or ''
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  # No choice made: JAX takes an accelerator if a plugin for one is installed (and finds one).
  return not (importlib.metadata.entry_points(group='jax_plugins')
              or any(importlib.util.find_spec(m) for m in ('jax_plugins', 'libtpu')))


def _backends_initialized():
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # A future JAX: then jax.config.update below may raise.
    return False


def _plan(levers):
  """What the set-up would set for `levers` now, where the user has not set it: a dict like
  `applied`. Pure: it reads the environment and jax.config, changes neither."""
  plan = {}
  xla_flags = os.environ.get('XLA_FLAGS', '')
  if 'convs' in levers and YNN_FLAG not in xla_flags and xla_knows(*_EIGEN_CONVS_NEEDS):
    plan['XLA_FLAGS'] = EIGEN_CONVS
  cores = num_cores()
  if ('devices' in levers and cores > 1 and jax.config.jax_num_cpu_devices < 0
      and 'xla_force_host_platform_device_count' not in xla_flags):
    plan['jax_num_cpu_devices'] = cores
  return plan


def threefry_lowerings():
  """(primitive, unrolled rule, JAX's CPU rule) of threefry2x32 in this JAX, or None where its
  private names moved."""
  try:
    # pylint: disable=g-import-not-at-top,protected-access
    from jax._src.random import threefry2x32 as threefry
    return (threefry.threefry2x32_p, threefry._threefry2x32_lowering_rule,
            threefry._threefry2x32_cpu_lowering_rule)
  except (ImportError, AttributeError):
    return None


def lower_threefry(unrolled=True):
  """Registers JAX's unrolled (or, `unrolled=False`, its own rolled) threefry2x32 lowering for
  the CPU; returns whether this JAX has them. Programs compiled afterwards use it."""
  from jax.interpreters import mlir  # pylint: disable=g-import-not-at-top
  rules = threefry_lowerings()
  if rules is None:
    return False
  primitive, unrolled_rule, rolled_rule = rules
  mlir.register_lowering(primitive, unrolled_rule if unrolled else rolled_rule, platform='cpu')
  return True


def _warn_too_late(missed):
  # Doing nothing silently would leave the user on JAX's slower defaults without knowing why.
  warnings.warn(
      f'alc_jax.cpu_setup.configure() was called after a JAX backend had started, too late to set '
      f'{", ".join(sorted(missed))}; JAX keeps its defaults in this process. Call it first thing, '
      f'before anything runs JAX (jax.devices(), a first array): `import alc_jax; '
      f'alc_jax.cpu_setup.configure()`, or set {ENV}=0 to silence this.',
      RuntimeWarning, stacklevel=3)


def configure():
  """Applies the CPU set-up once per process: only the first call acts, later ones (and calls that
  find nothing to do) return `applied`, what the first set."""
  global _configured
  if _configured:
    return applied
  _configured = True
  levers = wanted_levers()
  if not levers or not _cpu_is_default_backend():
    return applied
  plan = _plan(levers)
  if plan and _backends_initialized():
    _warn_too_late(plan)
    plan = {}
  if 'threefry' in levers and lower_threefry():
    applied['threefry'] = 'unrolled'
  if 'XLA_FLAGS' in plan:
    os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {EIGEN_CONVS}'.strip()
    applied['XLA_FLAGS'] = EIGEN_CONVS
  if 'jax_num_cpu_devices' in plan:
    try:
      jax.config.update('jax_num_cpu_devices', plan['jax_num_cpu_devices'])
      applied['jax_num_cpu_devices'] = plan['jax_num_cpu_devices']
    except RuntimeError:  # A backend exists that _backends_initialized missed: keep the default.
      _warn_too_late(['jax_num_cpu_devices'])
  return applied


def ynn_convolutions(hlo_text):
  """Convolutions of a compiled module (`compiled.as_text()`) that run inside YNNPACK fusions."""
  bodies = {}  # Computation name -> its text.
  for block in re.split(r'\n(?=\S)', hlo_text):
    m = re.match(r'(?:ENTRY )?%([\w.\-]+) ', block)
    if m:
      bodies[m.group(1)] = block
  count = 0
  for line in hlo_text.splitlines():
    m = re.search(r'calls=%([\w.\-]+)', line)
    name = line.split(' = ', 1)[0]  # '  ROOT %ynn_fusion.3'; the kind is in the backend config.
    if m and ('ynn_fusion' in name or '"__ynn_fusion' in line):
      count += bodies.get(m.group(1), '').count(' convolution(')
  return count
