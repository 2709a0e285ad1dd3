"""How much the training loop costs beyond its compiled step: images/s of the loop (evaluation
excluded) over images/s of the compiled step alone, same config, side by side in one run.

  python bench/loop_overhead.py [--config configs/fashion_mnist_cpu.py] [--steps 100] [--rounds 3]
                                [--config.FIELD=VALUE ...]

'step alone': the trainer's compiled accumulating step on batches already on the device, timed
to completion. 'loop': the trainer itself, `train.train_and_evaluate` in a fresh workdir for
`--steps` steps, evaluating and checkpointing only after the last one: the rate it logs at its
last step (metrics.jsonl's train/steps_per_second: from the end of its first, compiling, step to
the last step's metrics, fetched, guarded and written) covers its input pipeline (prefetched to
the device), the step, the interruption check and the metrics written every
config.log_every_steps. The two alternate in rounds, so a change in the machine's load reaches
both. Prints the ratio per round and its median; goal >= 0.95 (issue 28).
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
from alc_jax import cpu_setup

cpu_setup.configure()
import jax  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

from alc_jax import train  # pylint: disable=g-import-not-at-top


def load_config(path, overrides=()):
  """A config file as `--config=FILE[:ROW]` loads it, with `--config.FIELD=VALUE` overrides."""
  flag = config_flags.DEFINE_config_file('config', path)
  # pylint: disable-next=protected-access
  flag._flagvalues(['loop_overhead', f'--config={path}', *overrides])
  return flag.value


def time_step_alone(exp, state, totals, batches, steps):
  """Seconds for `steps` compiled steps on device batches (cycled), run to completion."""
  jax.block_until_ready(state)
  start = time.perf_counter()
  for i in range(steps):
    state, totals = exp.accumulating_step(state, totals, batches[i % len(batches)])
  jax.block_until_ready((state, totals))
  return time.perf_counter() - start, state, totals


def loop_steps_per_second(config, steps):
  """The steps/s `train.train_and_evaluate` logs at the last of `steps` steps (its own loop),
  trained in a fresh temporary workdir."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.num_train_steps = steps
    config.eval_every_steps = config.checkpoint_every_steps = steps  # After the last step only.
    config.tensorboard = False
    config.progress_every_seconds = 1e9
  workdir = tempfile.mkdtemp(prefix='loop_overhead_')
  try:
    with contextlib.redirect_stdout(io.StringIO()):  # Its start, progress and accuracy lines.
      train.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
      rows = [json.loads(line) for line in f if line.strip()]
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  last = [r for r in rows if r['step'] == steps and 'train/steps_per_second' in r]
  return last[0]['train/steps_per_second']


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default=os.path.join(ROOT, 'configs/fashion_mnist_cpu.py'))
  parser.add_argument('--steps', type=int, default=100, help='steps per timing')
  parser.add_argument('--rounds', type=int, default=3)
  args, overrides = parser.parse_known_args()
  if any(not o.startswith('--config.') for o in overrides):
    parser.error(f'unrecognised arguments: {" ".join(overrides)}')
  config = load_config(args.config, overrides)
  exp = train.create_experiment(config)
  images = config.batch_size * config.num_runs
  state = exp.initial_state
  it = exp.train_batches()
  batches = [next(it) for _ in range(4)]
  it.close()
  totals = exp.zero_totals(state, batches[0])
  state, totals = exp.accumulating_step(state, totals, batches[0])  # Compiles.
  print(f'{config.method} (ALC {config.alc.enabled}), width {config.model.width}, batch '
        f'{config.batch_size} x {config.num_runs} runs, {len(exp.devices)} device(s), '
        f'{args.steps} steps per timing, load average {os.getloadavg()[0]:.2f}', flush=True)
  ratios = []
  for r in range(args.rounds):
    alone, state, totals = time_step_alone(exp, state, totals, batches, args.steps)
    step_rate, loop_rate = images * args.steps / alone, images * loop_steps_per_second(
        config, args.steps)
    ratios.append(loop_rate / step_rate)
    print(f'round {r}: step alone {step_rate:.0f} img/s, loop {loop_rate:.0f} img/s, '
          f'loop / step {ratios[-1]:.3f}', flush=True)
  print(f'median loop / step over {args.rounds} rounds: {statistics.median(ratios):.3f} '
        f'(load average {os.getloadavg()[0]:.2f})')


if __name__ == '__main__':
  main()
