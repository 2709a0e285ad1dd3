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
  totals, parts = collections.Counter(), collections.defaultdict(collections.Counter)
  for e in events:
    if e.get('ph') != 'X' or NOT_AN_INSTRUCTION.search(e['name']):
      continue
    op_name = names.get(e['name'], '')
    category = next((c for c, pattern in CATEGORIES if re.search(pattern, op_name)),
                    'other' if op_name else 'no metadata')
    totals[category] += e.get('dur', 0)
    parts[category][f'{e["name"]}  {op_name[-80:]}'] += e.get('dur', 0)
  whole = sum(totals.values())
  print(f'Thunk time per step, summed over {runner.devices} device(s), {args.steps} traced steps:')
  for category, us in totals.most_common():
    print(f'{category:<14} {us / 1e3 / args.steps:8.2f} ms  {100 * us / whole:5.1f} %')
    for name, part in parts[category].most_common(args.top):
      print(f'    {part / 1e3 / args.steps:8.2f} ms  {name[:150]}')


if __name__ == '__main__':
  main()
