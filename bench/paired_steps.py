"""CNN-13's max-pool and JAX's threefry lowering, old and new, compiled in one process and their
train steps interleaved, so that every variant sees the same machine (this 2-core VM's speed moves
by up to 1.4x within minutes; separately timed rows cannot resolve 10-25 %).

  python bench/paired_steps.py --width 0.0625 --steps 50 [--method mean_teacher] [--one-device]

Variants: flax's nn.max_pool (its gradient is select-and-scatter) or alc_jax's max_pool_2x2; JAX's
rolled threefry loop on the CPU or the unrolled lowering (alc_jax/cpu_setup.py, 'threefry');
with --one-device, also each on a one-device mesh. Prints compile seconds and the median step of
each, and its speed relative to the first (the code before issue 28's profile).
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from alc_jax import cpu_setup  # pylint: disable=g-import-not-at-top

cpu_setup.configure()

import flax.linen as nn  # pylint: disable=g-import-not-at-top

from alc_jax import train  # pylint: disable=g-import-not-at-top
from alc_jax.models import cnn13  # pylint: disable=g-import-not-at-top
# bench/bench.py (this script's folder is first on sys.path).
import bench  # pylint: disable=g-import-not-at-top

POOLS = {'nn.max_pool': lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)),
         'max_pool_2x2': cnn13.max_pool_2x2}


def runner(config, pool, unrolled, one_device):
  """The step compiled under this variant (CNN13 looks its pool up by name at trace time)."""
  cnn13.max_pool_2x2 = POOLS[pool]
  cpu_setup.lower_threefry(unrolled)
  mesh_devices = train.mesh_devices
  if one_device:
    train.mesh_devices = lambda batch: mesh_devices(batch)[:1]
  try:
    return bench.Runner(config)
  finally:
    train.mesh_devices = mesh_devices
    cnn13.max_pool_2x2 = POOLS['max_pool_2x2']
    cpu_setup.lower_threefry('threefry' in cpu_setup.applied)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--width', type=float, default=0.0625)
  parser.add_argument('--steps', type=int, default=50, help='timed steps of each variant')
  parser.add_argument('--method', default='mean_teacher')
  parser.add_argument('--one-device', action='store_true', help='add one-device variants')
  args = parser.parse_args()
  if cpu_setup.threefry_lowerings() is None:
    sys.exit('this JAX moved the private threefry names: nothing to compare')
  print(bench.machine(), '\nuptime before:', bench.uptime(), flush=True)
  variants = [('nn.max_pool', False, False), ('max_pool_2x2', False, False),
              ('max_pool_2x2', True, False)]
  if args.one_device:
    variants += [('nn.max_pool', False, True), ('max_pool_2x2', True, True)]
  with tempfile.TemporaryDirectory() as tmp:
    config = bench.synthetic_step_config(tmp, 'cnn13', args.method, args.width)
    runners = {}
    for variant in variants:
      runners[variant] = runner(config, *variant)
      print(f'compiled {variant}: {runners[variant].compile_s:.1f} s, '
            f'{runners[variant].devices} device(s)', flush=True)
    times = bench.interleaved_steps(runners, args.steps)
  def label(variant):
    pool, unrolled, one = variant
    return f'{pool}, threefry {"unrolled" if unrolled else "rolled"}{", 1 device" if one else ""}'

  bench.print_interleaved(
      times, config.batch_size, f'{args.method}, CNN-13 width {args.width}, batch '
      f'{config.batch_size}, median of {args.steps} interleaved steps:', label)
  print('uptime after:', bench.uptime())


if __name__ == '__main__':
  main()
