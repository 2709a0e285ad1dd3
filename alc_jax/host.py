"""The compute host a run's digits depend on, and which steps of a run ran on which host.

A run is bitwise reproducible on one kind of host, not across kinds: XLA compiles for the host it
runs on, and the float rounding of its fused and vectorised loops follows the host's vector ISA
(on the CPU: AVX-512, AVX2, ...). Measured on phase Q's FixMatch cell (docs/results.md,
docs/runs/host_numerics/): the same commit, packages and command gave a step-50 loss of 2.0360 on
the project's earlier host (per docs/performance.md a Zen 4 with AVX-512), 2.0468 on a Zen 3 with
AVX2 and 2.0408 on that Zen 3 under XLA_FLAGS=--xla_cpu_max_isa=SSE4_2; after 1200 steps the runs
agree statistically (FixMatch's student -0.48 [-1.88, +0.92]), not to the digit.

So a resume under another set-up continues training correctly but may not be bitwise the
uninterrupted run. `record(workdir, start_step, ...)` keeps hosts.json in the workdir, one entry
per stretch of steps run under one set-up (process 0's host in a multi-host job), and says what
changed when a resume moves; results.json carries the list (reporting.results_record). A list
whose first entry starts after step 0 comes from a run begun before hosts were recorded: the host
of the earlier steps is unknown.
"""

import os
import platform
import warnings
from importlib import metadata

import jax

from alc_jax import workdir_io

HOSTS_FILE = 'hosts.json'
# Vector ISAs, widest first, as /proc/cpuinfo's flags name them (x86; 'asimd' is Arm's NEON).
VECTOR_ISAS = ('avx512f', 'avx2', 'avx', 'sse4_2', 'asimd')
# JAX settings (jax.config) that change what XLA compiles, so a run's digits.
# (The PRNG settings change every random number: augmentation, noise, dropout, initialisation.)
JAX_NUMERICS_SETTINGS = ('jax_default_matmul_precision', 'jax_disable_most_optimizations',
                         'jax_optimization_level', 'jax_default_prng_impl',
                         'jax_threefry_partitionable')


def parse_cpuinfo(text):
  """(cpu, widest vector ISA) from the text of /proc/cpuinfo: the model name with its family and
  model numbers (virtual machines often name every EPYC just "AMD EPYC"), and the first of
  VECTOR_ISAS among the flags; None for what the text lacks."""
  fields = {}
  for line in text.splitlines():
    key, sep, value = line.partition(':')
    if sep:
      fields.setdefault(key.strip(), value.strip())  # The first processor's entry.
  name = fields.get('model name')
  if name and 'cpu family' in fields and 'model' in fields:
    name = f"{name} (family {fields['cpu family']} model {fields['model']})"
  flags = set((fields.get('flags') or fields.get('Features') or '').split())
  return name, next((isa for isa in VECTOR_ISAS if isa in flags), None)


def cpu():
  """(cpu, widest vector ISA) of this machine; (platform's processor name, None) off Linux."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      name, isa = parse_cpuinfo(f.read())
  except OSError:
    name, isa = None, None
  return name or platform.processor() or platform.machine(), isa


def cpu_in_words(name, isa):
  """'<cpu>, <vector ISA>': how bench/ and launch/aggregate.py name a CPU host."""
  return f'{name}, {isa or "ISA unknown"}'


def _xla_flags():
  """XLA_FLAGS as a sorted list, without the flags that only write files (--xla_dump_*): the same
  flags in another order or with a dump directory compile the same programs."""
  return sorted(f for f in os.environ.get('XLA_FLAGS', '').split()
                if not f.startswith('--xla_dump'))


def current(num_devices=None):
  """What this process's float rounding depends on besides the code, the config and the packages
  results.json lists: the backend and its device kind, the number of devices the batch is sharded
  over (`num_devices`, the trainer's mesh; default all), jaxlib, XLA_FLAGS, JAX's settings that
  change compiled numerics or random numbers and, on the CPU backend, the CPU and its vector ISA."""
  device = jax.devices()[0]
  try:
    jaxlib = metadata.version('jaxlib')
  except metadata.PackageNotFoundError:
    jaxlib = None
  found = {'platform': device.platform, 'device_kind': device.device_kind,
           'num_devices': jax.device_count() if num_devices is None else num_devices,
           'jaxlib': jaxlib, 'xla_flags': _xla_flags(),
           'jax_settings': {k: str(jax.config.values.get(k)) for k in JAX_NUMERICS_SETTINGS}}
  if device.platform == 'cpu':
    found['cpu'], found['cpu_isa'] = cpu()
  return found


def _read(path):
  """hosts.json's entries, or [] with a warning where the file is not a list of entries (it is a
  record, not state: a broken one must not stop a run)."""
  try:
    hosts = workdir_io.read_json(path, [])
    if isinstance(hosts, list) and all(isinstance(h.get('from_step'), int) for h in hosts):
      return hosts
  except (ValueError, TypeError, AttributeError) as e:
    hosts = e
  warnings.warn(f'{path} is not a list of host entries ({str(hosts)[:80]}); starting it again, '
                'so the hosts of the steps before this start are not recorded.', RuntimeWarning)
  return []


def record(workdir, start_step, host):
  """Records in `workdir`/hosts.json that the run goes on from `start_step` under `host` (a
  `current()` dict) and returns (hosts, changed): the list of {'from_step', **host} entries,
  oldest first (entries from `start_step` on are dropped: those steps run again), and the keys
  whose values differ from the entry the resumed steps ran under (keys both entries have; empty
  for a fresh start or the same set-up). A new entry is added only where something changed, so
  the list stays one entry per stretch."""
  path = os.path.join(workdir, HOSTS_FILE)
  hosts = [h for h in _read(path) if h['from_step'] < start_step] if start_step else []
  last = hosts[-1] if hosts else None
  changed = [] if last is None else [k for k in host if k in last and _differs(last[k], host[k])]
  if last is None or changed:
    hosts.append({'from_step': start_step, **host})
  if jax.process_index() == 0:
    workdir_io.write_json(path, hosts)
  return hosts, changed


def _differs(before, now):
  """Whether a recorded value changed; of a dict (jax_settings), only the keys both record."""
  if isinstance(before, dict) and isinstance(now, dict):
    return any(before[k] != now[k] for k in before.keys() & now.keys())
  return before != now


def resume_note(hosts, changed, start_step):
  """The line a resume under another set-up prints: what changed, and what it means."""
  before, now = hosts[-2], hosts[-1]
  diff = '; '.join(f'{k}: {before.get(k)!r} -> {now[k]!r}' for k in changed)
  return (f'Note: resuming at step {start_step} under another set-up than the run had ({diff}). '
          'XLA compiles for the host and these settings, so float rounding may differ from here '
          'on: the run continues correctly but may match an uninterrupted one statistically, not '
          f'to the digit ({HOSTS_FILE} records which steps ran where).')
