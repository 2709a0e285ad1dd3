"""CNN-13's max-pool and JAX's threefry lowering, old and new, and XLA compiler options, compiled
in one process and their train steps interleaved, so that every variant sees the same machine
(this 2-core VM's speed moves by up to 1.4x within minutes; separately timed rows cannot resolve
10-25 %).

  python bench/paired_steps.py --width 0.0625 --steps 50 [--method mean_teacher] [--one-device]
  python bench/paired_steps.py --only-options --xla-option xla_cpu_prefer_vector_width=512 ...
  python bench/paired_steps.py --only-options --views-one-by-one

Variants: flax's nn.max_pool (its gradient is select-and-scatter) or alc_jax's max_pool_2x2; JAX's
rolled threefry loop on the CPU or the unrolled lowering (alc_jax/cpu_setup.py, 'threefry');
with --one-device, also each on a one-device mesh; with --xla-option NAME=VALUE (repeatable), the
default step compiled with that XLA debug option (one variant per option; --only-options: the
default step and those variants alone); with --views-one-by-one, the default step with its augmented
views drawn one augment() call each, as before augment.augment_views drew their noise together
(the same values). Prints compile seconds and the median step of each, and
its speed relative to the first (the code before issue 28's profile, or the default step).
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from alc_jax import cpu_setup  # pylint: disable=g-import-not-at-top

cpu_setup.configure()

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from alc_jax import train  # pylint: disable=g-import-not-at-top
from alc_jax.data import augment  # pylint: disable=g-import-not-at-top
from alc_jax.models import cnn13  # pylint: disable=g-import-not-at-top
# bench/bench.py (this script's folder is first on sys.path).
import bench  # pylint: disable=g-import-not-at-top

POOLS = {'nn.max_pool': lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)),
         'max_pool_2x2': cnn13.max_pool_2x2}


def xla_option(text):
  """'name=value' -> (name, value), the value as a bool, int or string."""
  name, sep, value = text.partition('=')
  if not sep or not name.startswith('xla_'):
    raise argparse.ArgumentTypeError(f'{text!r}: expected NAME=VALUE, e.g. '
                                     'xla_cpu_prefer_vector_width=512')
  lowered = value.lower()
  if lowered in ('true', 'false'):
    return name, lowered == 'true'
  return name, int(value) if value.lstrip('-').isdigit() else value


# A variant's "option" that is not an XLA option: the views drawn as before augment_views.
VIEWS_ONE_BY_ONE = ('views', 'one by one')
AUGMENT_VIEWS = augment.augment_views


def views_one_by_one(rngs, images, translate, flip, noise_std):
  """augment.augment_views as it was: one call per view, each view's noise drawn in its shape."""
  views = []
  for rng in rngs:
    x = AUGMENT_VIEWS([rng], images, translate, flip, 0.0)[0]
    if noise_std:
      noise_rng = jax.random.split(rng, 3)[2]
      x = x + noise_std * jax.random.normal(noise_rng, x.shape, x.dtype)
    views.append(x)
  return views


def runner(config, pool, unrolled, one_device, option=None):
  """The step compiled under this variant (CNN13 looks its pool up by name at trace time, the
  loss augment.augment_views)."""
  cnn13.max_pool_2x2 = POOLS[pool]
  cpu_setup.lower_threefry(unrolled)
  mesh_devices = train.mesh_devices
  if one_device:
    train.mesh_devices = lambda batch: mesh_devices(batch)[:1]
  if option == VIEWS_ONE_BY_ONE:
    augment.augment_views, option = views_one_by_one, None
  try:
    return bench.Runner(config, dict([option]) if option else None)
  finally:
    train.mesh_devices = mesh_devices
    cnn13.max_pool_2x2 = POOLS['max_pool_2x2']
    cpu_setup.lower_threefry('threefry' in cpu_setup.applied)
    augment.augment_views = AUGMENT_VIEWS


def label(variant):
  """A variant (pool, unrolled, one_device[, (option, value)]) in words."""
  pool, unrolled, one, *option = variant
  option = f', {option[0][0]}={option[0][1]}' if option else ''
  return (f'{pool}, threefry {"unrolled" if unrolled else "rolled"}'
          f'{", 1 device" if one else ""}{option}')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--width', type=float, default=0.0625)
  parser.add_argument('--steps', type=int, default=50, help='timed steps of each variant')
  parser.add_argument('--method', default='mean_teacher')
  parser.add_argument('--one-device', action='store_true', help='add one-device variants')
  parser.add_argument('--xla-option', type=xla_option, action='append', default=[],
                      metavar='NAME=VALUE', help='add the default step compiled with this option')
  parser.add_argument('--only-options', action='store_true',
                      help='the default step and its --xla-option variants only')
  parser.add_argument('--views-one-by-one', action='store_true',
                      help='add the default step with its views drawn one augment() call each')
  args = parser.parse_args()
  if cpu_setup.threefry_lowerings() is None:
    sys.exit('this JAX moved the private threefry names: nothing to compare')
  print(bench.machine(), '\nuptime before:', bench.uptime(), flush=True)
  variants = [('nn.max_pool', False, False), ('max_pool_2x2', False, False),
              ('max_pool_2x2', True, False)]
  if args.one_device:
    variants += [('nn.max_pool', False, True), ('max_pool_2x2', True, True)]
  default = ('max_pool_2x2', True, False)
  if args.only_options:
    variants = [default]
  variants += [default + (option,) for option in args.xla_option]
  if args.views_one_by_one:
    variants.append(default + (VIEWS_ONE_BY_ONE,))
  with tempfile.TemporaryDirectory() as tmp:
    config = bench.synthetic_step_config(tmp, 'cnn13', args.method, args.width)
    runners = {}
    for variant in variants:
      runners[variant] = runner(config, *variant)
      print(f'compiled {label(variant)}: {runners[variant].compile_s:.1f} s, '
            f'{runners[variant].devices} device(s)', flush=True)
    times = bench.interleaved_steps(runners, args.steps)
    same = {variant: same_state(runners[variant], runners[default]) for variant in variants}
  bench.print_interleaved(
      times, config.batch_size, f'{args.method}, CNN-13 width {args.width}, batch '
      f'{config.batch_size}, median of {args.steps} interleaved steps:', label)
  print('Same state as the default step after every variant took the same steps (bit for bit): '
        + '; '.join(f'{label(v)}: {"yes" if same[v] else "no"}' for v in variants if v != default))
  print('uptime after:', bench.uptime())


def same_state(a, b):
  """Whether two Runners' states are equal bit for bit."""
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state)))


if __name__ == '__main__':
  main()
