"""`config.num_runs` runs (seeds, label splits) trained side by side in one jitted program: each
step maps the train step over a leading run axis, by vmap or by a Python loop unrolled in the
program (config.run_batching). Equal results up to float rounding either way."""

import jax
import jax.numpy as jnp

RUN_BATCHINGS = ('auto', 'vmap', 'loop')  # config.run_batching: 'auto' = loop on CPU, else vmap.


def use_run_loop(config):
  """Whether the runs of a step are mapped by a loop (True) or by vmap (config.run_batching).

  'auto' loops on the CPU: vmap over runs with per-run weights turns every convolution into a
  grouped convolution, which XLA:CPU runs badly (num_runs=4 made each image 3.5x slower,
  docs/performance.md), while the loop gave 1.25-1.43x the images/s of a single run for 2-4 runs
  (lax.map/scan over the runs were far worse). On GPU/TPU vmap is the win (4 runs: 2.8x the time
  of one on an H100).
  """
  if config.run_batching == 'auto':
    return config.num_runs > 1 and jax.default_backend() == 'cpu'
  return config.run_batching == 'loop'


def map_runs(fn, num_runs, loop, in_axes=0):
  """jax.vmap(fn, in_axes) over the leading run axis, or the same by a Python loop over the runs
  (unrolled in the jitted program, outputs stacked): equal results up to float rounding."""
  if not loop:
    return jax.vmap(fn, in_axes=in_axes)

  def looped(*args):
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    outs = [fn(*(a if ax is None else jax.tree.map(lambda x, r=r: x[r], a)
                 for a, ax in zip(args, axes))) for r in range(num_runs)]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
  return looped
