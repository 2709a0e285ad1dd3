"""Is VAT's adversarial direction what it should be? The cosine between the finite-difference power
iteration (Miyato et al.'s, xi = config.vat.xi) and the exact Hessian-vector product, per example.

  python bench/vat_direction.py [--config configs/fashion_mnist_cpu.py:vat] [--steps 0,200] [--xi X]

For each number of training steps in --steps (VAT, from the config's initial state), one training
batch: the same random d for both, the same forward pass (train mode, the step's dropout key),
float32. Prints the cosine's mean, minimum and share of examples above 0.9, and how many input
pixels `x + xi d` leaves unchanged in float32.
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

# pylint: disable=wrong-import-position
from alc_jax import cpu_setup

cpu_setup.configure()
import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

from alc_jax import train  # pylint: disable=g-import-not-at-top
from alc_jax.methods import base, vat  # pylint: disable=g-import-not-at-top
from loop_overhead import load_config  # pylint: disable=g-import-not-at-top


def directions(exp, state, batch):
  """(finite-difference, exact) directions of run 0 on `batch`, and the share of unchanged pixels."""
  # Run 0's state and batch on the host, computed on one device (eager ops on arrays sharded over
  # several CPU devices can deadlock in XLA:CPU's collectives).
  state = jax.tree.map(lambda a: np.asarray(a)[0], state)
  batch = {k: np.asarray(v)[0] for k, v in batch.items() if k != 'diagnostic_label'}
  config = exp.config
  keys = base.step_keys(jax.random.fold_in(jax.random.wrap_key_data(state.rng), int(state.step)))
  x = jax.device_get(exp.data.normalization)(batch['image'])
  forward = lambda inputs: exp.model.apply(
      {'params': state.params, 'batch_stats': state.batch_stats}, inputs, train=True,
      rngs={'dropout': keys['dropout']}, mutable=['batch_stats'])[0][0]
  logits = forward(x)
  out = [vat.adversarial_direction(forward, x, logits, keys['vat'], config.vat.xi, kind)
         for kind in vat.POWER_ITERATIONS]
  d = jax.random.normal(keys['vat'], x.shape, x.dtype)
  d = d / jnp.sqrt(jnp.sum(d * d, axis=(1, 2, 3), keepdims=True))
  unchanged = float(jnp.mean((x + config.vat.xi * d) == x))
  return out, unchanged


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default=os.path.join(ROOT, 'configs/fashion_mnist_cpu.py:vat'))
  parser.add_argument('--steps', default='0,200')
  parser.add_argument('--xi', type=float, default=None, help='override config.vat.xi (a control: '
                      'a larger step should bring the finite difference to the exact direction)')
  args = parser.parse_args()
  config = load_config(args.config)
  config.num_runs = 1
  if args.xi is not None:
    config.vat.xi = args.xi
  exp = train.create_experiment(config)
  state, batches, done = exp.initial_state, exp.train_batches(), 0
  print(f'{config.method} on {config.dataset.name}, width {config.model.width}, xi '
        f'{config.vat.xi:g}, epsilon {config.vat.epsilon:g}, float32')
  for target in sorted(int(s) for s in args.steps.split(',')):
    while done < target:
      state, _ = exp.train_step(state, next(batches))
      done += 1
    (fd, exact), unchanged = directions(exp, state, next(batches))
    cos = np.asarray(jnp.sum(fd * exact, axis=(1, 2, 3)))
    print(f'step {done}: cosine(finite difference, exact) mean {cos.mean():.3f}, min '
          f'{cos.min():.3f}, > 0.9 for {100 * np.mean(cos > 0.9):.0f} % of {cos.size} examples; '
          f'x + xi d == x for {100 * unchanged:.1f} % of the pixels', flush=True)
  batches.close()


if __name__ == '__main__':
  main()
