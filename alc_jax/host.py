"""The compute host a run's digits depend on, and which steps of a run ran on which host.

A run is bitwise reproducible on one kind of host, not across kinds: XLA compiles for the host it
runs on, and the float rounding of its fused and vectorised loops follows the host's vector ISA
(on the CPU: AVX-512, AVX2, ...). Measured on phase Q's FixMatch cell (docs/results.md): the same
commit, packages and command gave a step-50 loss of 2.0360 on a Zen 4 (AVX-512) host, 2.0468 on a
Zen 3 (AVX2) one and 2.0408 on that Zen 3 under XLA_FLAGS=--xla_cpu_max_isa=SSE4_2; after 1200
steps the runs agree statistically (FixMatch's student -0.48 [-1.88, +0.92]), not to the digit.

So a resume on another kind of host continues training correctly but not bitwise as an
uninterrupted run would. `record(workdir, start_step)` keeps hosts.json in the workdir, one entry
per stretch of steps run on one host, and says what changed when a resume moves host; results.json
carries the list (reporting.results_record).
"""

import os
import platform
from importlib import metadata

import jax

from alc_jax import workdir_io

HOSTS_FILE = 'hosts.json'
# Vector ISAs, widest first, as /proc/cpuinfo's flags name them (x86; 'asimd' is Arm's NEON).
VECTOR_ISAS = ('avx512f', 'avx2', 'avx', 'sse4_2', 'asimd')


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


def current():
  """What this process's float rounding depends on besides the code, the config and the packages
  results.json lists: the backend, its devices, jaxlib, XLA_FLAGS and, on the CPU backend, the
  CPU and its vector ISA."""
  device = jax.devices()[0]
  try:
    jaxlib = metadata.version('jaxlib')
  except metadata.PackageNotFoundError:
    jaxlib = None
  found = {'platform': device.platform, 'device_kind': device.device_kind,
           'num_devices': jax.device_count(), 'jaxlib': jaxlib,
           'xla_flags': os.environ.get('XLA_FLAGS', '')}
  if device.platform == 'cpu':
    found['cpu'], found['cpu_isa'] = cpu()
  return found


def record(workdir, start_step, host=None):
  """Records in `workdir`/hosts.json that the run goes on from `start_step` on `host` (default:
  this one) and returns (hosts, changed): the list of {'from_step', **host} entries, oldest first
  (entries from `start_step` on are dropped: those steps run again), and the keys whose values
  differ from the entry the resumed steps ran on (empty for a fresh start or the same host). A new
  entry is added only where the host changed, so the list stays one entry per stretch."""
  host = current() if host is None else host
  path = os.path.join(workdir, HOSTS_FILE)
  hosts = [h for h in workdir_io.read_json(path, []) if h['from_step'] < start_step]
  last = hosts[-1] if hosts else None
  changed = [] if last is None else [k for k in host if last.get(k) != host[k]]
  if last is None or changed:
    hosts.append({'from_step': start_step, **host})
  if jax.process_index() == 0:
    workdir_io.write_json(path, hosts)
  return hosts, changed


def resume_note(hosts, changed, start_step):
  """The line a resume on another host prints: what changed, and what it means for the digits."""
  before, now = hosts[-2], hosts[-1]
  diff = '; '.join(f'{k}: {before.get(k)!r} -> {now[k]!r}' for k in changed)
  return (f'Note: resuming at step {start_step} on another host than the run was on ({diff}). '
          'XLA compiles for the host, so float rounding differs from here on: the run continues '
          'correctly but will match an uninterrupted one statistically, not to the digit '
          f'({HOSTS_FILE} records which steps ran where).')
