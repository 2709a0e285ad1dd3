"""Where a train step's time goes on the device: a `jax.profiler` trace of N steps, each XLA thunk's
time mapped to the `op_name` of its HLO instruction and summed by category. Run it on an idle
machine: the thunk times include waiting (BatchNorm's cross-device sums wait for the slower device).

  python bench/profile_step.py --width 0.0625 --method mean_teacher --steps 10 --top 6

Prints the median step, then per category (max-pool, random bits, convolutions, BatchNorm, ...)
the thunk time per step summed over the mesh's devices (so it can exceed the step's wall time),
with its largest instructions. Fusions without an `op_name` ("no metadata": most of XLA:CPU's
layout transposes) are listed by name; look them up in the compiled HLO (`--hlo FILE` writes it).
A fusion carries its root's op_name: the input noise's fusion (bits, normal transform and the add)
is 'jvp())/add', under "other".

Then the time between thunks: per device, the stretches in which none of its instructions is
traced. A thunk's trace event ends when the thunk returns, and XLA:CPU's Eigen convolutions return
before their work is done (it runs as tasks on the intra-op thread pool), so a convolution's
arithmetic falls in these stretches, not under "convolutions" above: each stretch is charged to
the last convolution launched since the device's previous stretch, else to the instruction that
ended last before it (a heuristic: the trace does not say what the device waits for).
docs/performance.md ("The width-1/16 step profiled") is what this found for CNN-13 at width 1/16.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from alc_jax import cpu_setup  # pylint: disable=g-import-not-at-top

cpu_setup.configure()

import jax  # pylint: disable=g-import-not-at-top

# bench/bench.py (this script's folder is first on sys.path).
import bench  # pylint: disable=g-import-not-at-top

# (category, regular expression on the instruction's op_name), first match wins.
CATEGORIES = (
    ('max-pool', r'max_pool|reduce_window|select_and|reduce_max'),
    ('random bits', r'random|_normal|_uniform|threefry|bernoulli|dropout'),
    ('convolutions', r'conv_general|dot_general'),
    ('BatchNorm', r'BatchNorm|/bn\w*/'),
    ('activations', r'leaky_relu'),
    ('augmentation', r'augment|translate|flip|_pad'),
    ('loss', r'loss|softmax|cross'),
)
# Trace events that are not one instruction's work: executors, waits, Python, control flow.
NOT_AN_INSTRUCTION = re.compile(r'ThunkExecutor|Rendezvous|Wait|Pjit|\$|Execute|^while|^call|'
                                r'^conditional|ParseArguments|CreateOutputs')


def op_names(hlo_text):
  """Instruction name -> op_name, from a compiled module's text."""
  names = {}
  for line in hlo_text.splitlines():
    m = re.match(r'\s*(?:ROOT )?%(\S+) = .*?op_name="([^"]*)"', line)
    if m:
      names[m.group(1)] = m.group(2)
  return names


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--width', type=float, default=0.0625)
  parser.add_argument('--method', default='mean_teacher')
  parser.add_argument('--model', default='cnn13')
  parser.add_argument('--steps', type=int, default=10, help='traced steps')
  parser.add_argument('--top', type=int, default=6, help='instructions listed per category')
  parser.add_argument('--hlo', help='also write the compiled step as HLO text to this file')
  args = parser.parse_args()
  print(bench.machine(), f'\nCPU set-up: {bench.cpu_set_up()}', flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    config = bench.synthetic_step_config(tmp, args.model, args.method, args.width)
    timed = bench.time_steps(config, 20, warmup=5, keep=True)
    runner = timed['_runner']
    hlo = runner.compiled.as_text()
    if args.hlo:
      with open(args.hlo, 'w', encoding='utf-8') as f:
        f.write(hlo)
    names = op_names(hlo)
    print(f'{args.method}, {args.model} width {args.width}, batch {config.batch_size}: median step '
          f'{timed["ms_per_step"]:.1f} ms ({timed["images_per_second"]:.0f} img/s) over 20 '
          'untraced steps', flush=True)
    trace_dir = os.path.join(tmp, 'trace')
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(args.steps):
        runner.step()
    path = glob.glob(os.path.join(trace_dir, '**', 'perfetto_trace.json.gz'), recursive=True)[0]
    with gzip.open(path) as f:
      trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  thunks, gaps = device_time(events, names)
  print(f'Thunk time per step, summed over {runner.devices} device(s), {args.steps} traced '
        'steps:')
  print_categories(thunks, args.steps, args.top)
  traced, between = sum(thunks.totals.values()), sum(gaps.totals.values())
  print(f'Time between thunks per step, summed over the devices ({between / 1e3 / args.steps:.2f} '
        f'ms; traced thunks {traced / 1e3 / args.steps:.2f} ms), by the convolution or instruction '
        "before it (an Eigen convolution's own work is here):")
  print_categories(gaps, args.steps, args.top)


Tally = collections.namedtuple('Tally', 'totals parts')  # Microseconds by category, by instruction.


def categorize(op_name):
  return next((c for c, pattern in CATEGORIES if re.search(pattern, op_name)),
              'other' if op_name else 'no metadata')


def _tally():
  return Tally(collections.Counter(), collections.defaultdict(collections.Counter))


def device_time(events, names):
  """(thunks, gaps): Tallies of a trace's instruction events. thunks: each instruction's traced
  time. gaps: per device (the event's `device_ordinal`), each stretch in which none of that
  device's instructions is traced, charged to the last convolution launched since the device's
  previous such stretch (its work is what the device waits for), else to the instruction that
  ended last before it; a stretch from one step's last instruction to the next step's first
  (another `run_id`) is the host's, under 'between steps'."""
  thunks, gaps = _tally(), _tally()
  by_device = collections.defaultdict(list)

  def is_convolution(name):  # By its op_name, or an XLA convolution without one.
    return (categorize(names.get(name, '')) == 'convolutions'
            or name.split('.')[0] == 'convolution')

  def add(tally, name, us):
    op_name = names.get(name, '')
    category = categorize(op_name)
    tally.totals[category] += us
    tally.parts[category][f'{name}  {op_name[-80:]}'] += us

  for e in events:
    if e.get('ph') != 'X' or NOT_AN_INSTRUCTION.search(e['name']):
      continue
    add(thunks, e['name'], e.get('dur', 0))
    args = e.get('args', {})
    if 'device_ordinal' in args:
      by_device[args['device_ordinal']].append(
          (e['ts'], e['ts'] + e.get('dur', 0), e['name'], args.get('run_id')))
  for spans in by_device.values():
    spans.sort()
    end, last, run = spans[0][1:]
    launched = spans[0][2] if is_convolution(spans[0][2]) else None
    for start, stop, name, run_id in spans[1:]:
      if start > end and run_id != run:
        gaps.totals['between steps'] += start - end
        gaps.parts['between steps']['the host: the next step not yet dispatched'] += start - end
      elif start > end:
        add(gaps, launched or last, start - end)
      if start > end:  # A new stretch: only its own convolutions are waited for after it.
        launched = None
      if is_convolution(name):
        launched = name
      if stop >= end:
        end, last, run = stop, name, run_id
  return thunks, gaps


def print_categories(tally, steps, top):
  whole = sum(tally.totals.values()) or 1
  for category, us in tally.totals.most_common():
    print(f'{category:<14} {us / 1e3 / steps:8.2f} ms  {100 * us / whole:5.1f} %')
    for name, part in tally.parts[category].most_common(top):
      print(f'    {part / 1e3 / steps:8.2f} ms  {name[:150]}')


if __name__ == '__main__':
  main()
