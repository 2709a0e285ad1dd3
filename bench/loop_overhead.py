"""How much the training loop costs beyond its compiled step: images/s of the loop (evaluation
excluded) over images/s of the compiled step alone, same config, side by side in one run.

  python bench/loop_overhead.py [--config configs/fashion_mnist_cpu.py] [--steps 100] [--rounds 3]

'step alone': the trainer's compiled accumulating step on batches already on the device, timed
to completion. 'loop': what `train._train_in_workdir` runs between evaluations, with everything
but evaluation and checkpointing: the input pipeline (`Experiment.train_batches`, prefetched to
the device), the step, the interruption check, and the metrics fetched, guarded and written every
config.log_every_steps. The two alternate in rounds, so a change in the machine's load reaches
both. Prints the ratio per round and its median; goal >= 0.95 (issue 28).
"""

import argparse
import os
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

from alc_jax import reporting, train  # pylint: disable=g-import-not-at-top


def load_config(path):
  """A config file as `--config=FILE[:ROW]` loads it."""
  flag = config_flags.DEFINE_config_file('config', path)
  flag._flagvalues(['loop_overhead'])  # pylint: disable=protected-access
  return flag.value


def time_step_alone(exp, state, totals, batches, steps):
  """Seconds for `steps` compiled steps on device batches (cycled), run to completion."""
  jax.block_until_ready(state)
  start = time.perf_counter()
  for i in range(steps):
    state, totals = exp.accumulating_step(state, totals, batches[i % len(batches)])
  jax.block_until_ready((state, totals))
  return time.perf_counter() - start, state, totals


def time_loop(exp, state, totals, steps, writer, start_step):
  """Seconds for `steps` steps of the training loop without evaluation or checkpoints."""
  interruption = train._Interruption()  # pylint: disable=protected-access
  batches = exp.train_batches(start_step)
  next(batches)  # The pipeline's start-up (its threads fill their queues) is not a step.
  jax.block_until_ready(state)
  start = time.perf_counter()
  for step in range(start_step + 1, start_step + steps + 1):
    state, totals = exp.accumulating_step(state, totals, next(batches))
    interruption.should_stop(step)
    if step % exp.config.log_every_steps == 0:
      means, bad = train.read_metrics(totals)
      train._check_finite(bad, step, exp.config)  # pylint: disable=protected-access
      writer.write_scalars(step, means)
      totals = jax.tree.map(jax.numpy.zeros_like, totals)
  jax.block_until_ready((state, totals))
  seconds = time.perf_counter() - start
  batches.close()
  return seconds, state, totals


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default=os.path.join(ROOT, 'configs/fashion_mnist_cpu.py'))
  parser.add_argument('--steps', type=int, default=100, help='steps per timing')
  parser.add_argument('--rounds', type=int, default=3)
  args = parser.parse_args()
  config = load_config(args.config)
  exp = train.create_experiment(config)
  images = config.batch_size * config.num_runs
  state = exp.initial_state
  it = exp.train_batches()
  batches = [next(it) for _ in range(4)]
  it.close()
  totals = exp.zero_totals(state, batches[0])
  state, totals = exp.accumulating_step(state, totals, batches[0])  # Compiles.
  writer = reporting.JsonlWriter(os.path.join(tempfile.mkdtemp(), 'metrics.jsonl'))
  print(f'{config.method} (ALC {config.alc.enabled}), width {config.model.width}, batch '
        f'{config.batch_size} x {config.num_runs} runs, {len(exp.devices)} device(s), '
        f'{args.steps} steps per timing, load average {os.getloadavg()[0]:.2f}', flush=True)
  ratios = []
  for r in range(args.rounds):
    alone, state, totals = time_step_alone(exp, state, totals, batches, args.steps)
    loop, state, totals = time_loop(exp, state, totals, args.steps, writer, r * args.steps)
    ratios.append(alone / loop)
    print(f'round {r}: step alone {images * args.steps / alone:.0f} img/s, loop '
          f'{images * args.steps / loop:.0f} img/s, loop / step {ratios[-1]:.3f}', flush=True)
  print(f'median loop / step over {args.rounds} rounds: {statistics.median(ratios):.3f} '
        f'(load average {os.getloadavg()[0]:.2f})')


if __name__ == '__main__':
  main()
