"""CNN-13's convolutions as XLA's convolution (what alc_jax uses) or as matrix products, compiled in
one process and their train steps interleaved (as bench/paired_steps.py does), to test issue 28's
profile lead at width 1/16: XLA:CPU transposes the activations to [C, H, W, N] before each
weight-gradient convolution. If matrix products over shifted copies of the input avoided that,
the 1/16 step would gain; the figures in docs/performance.md say they do not.

  python bench/conv_as_matmul.py --width 0.0625 --steps 30 [--method mean_teacher]

Variants (all stride 1, NHWC inputs, HWIO kernels, as CNN-13's; flax's `nn.Conv` takes the
function as its `conv_general_dilated`, so the parameters are the same; the script first checks
each variant's output and both gradients against XLA's on random inputs, SAME and VALID):
  lax          lax.conv_general_dilated, forward and both gradients (alc_jax).
  im2col       the 3x3 patches concatenated on the channel axis, one matrix product.
  shifted_sum  one matrix product per kernel tap on a shifted view of the input, summed.
  lax_dw_matmul  XLA's convolution forward and for the input's gradient; the kernel's gradient
               as one matrix product per tap (a custom VJP: jax.jvp of it would fail, as the
               'exact' VAT power iteration needs, so it could only ever be opt-in).
"""

import argparse
import functools
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from alc_jax import cpu_setup  # pylint: disable=g-import-not-at-top

cpu_setup.configure()

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
from jax import lax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

# bench/bench.py (this script's folder is first on sys.path).
import bench  # pylint: disable=g-import-not-at-top


DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')  # CNN-13's (flax's nn.Conv) layouts.


def _explicit_pads(x, kernel_shape, padding):
  """((top, bottom), (left, right)) for 'SAME' / 'VALID' or explicit pads (stride 1)."""
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], kernel_shape, (1, 1), padding)
  return tuple(tuple(p) for p in padding)


def _padded_taps(x, kernel_shape, padding):
  """x padded as the convolution pads it, and the (H, W) of the output (stride 1)."""
  (kh, kw), padding = kernel_shape, _explicit_pads(x, kernel_shape, padding)
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  return xp, (xp.shape[1] - kh + 1, xp.shape[2] - kw + 1)


def _taps(xp, kernel_shape, out_hw):
  """The kernel's taps in row-major order: views of xp shifted by (i, j), each of shape out_hw."""
  (kh, kw), (h, w) = kernel_shape, out_hw
  return [xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)]


def _check(window_strides, feature_group_count):
  if tuple(window_strides) != (1, 1) or feature_group_count != 1:
    raise ValueError('these variants cover CNN-13 only: stride 1, no groups')


def im2col(lhs, rhs, window_strides, padding, feature_group_count=1, **_):
  _check(window_strides, feature_group_count)
  xp, hw = _padded_taps(lhs, rhs.shape[:2], padding)
  cols = jnp.concatenate(_taps(xp, rhs.shape[:2], hw), axis=-1)
  return jnp.einsum('nhwk,ko->nhwo', cols, rhs.reshape(-1, rhs.shape[-1]))


def shifted_sum(lhs, rhs, window_strides, padding, feature_group_count=1, **_):
  _check(window_strides, feature_group_count)
  xp, hw = _padded_taps(lhs, rhs.shape[:2], padding)
  taps = _taps(xp, rhs.shape[:2], hw)
  kernel = rhs.reshape(len(taps), *rhs.shape[2:])
  return sum(jnp.einsum('nhwc,co->nhwo', t, k) for t, k in zip(taps, kernel))


def _xla_conv(x, w, padding):
  return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DIMENSIONS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_dw_matmul(x, w, padding):
  return _xla_conv(x, w, padding)


def _conv_dw_matmul_fwd(x, w, padding):
  return _xla_conv(x, w, padding), (x, w)


def _conv_dw_matmul_bwd(padding, residuals, dy):
  x, w = residuals
  dx = jax.vjp(lambda x: _xla_conv(x, w, padding), x)[1](dy)[0]
  xp, hw = _padded_taps(x, w.shape[:2], padding)
  dw = jnp.stack([jnp.einsum('nhwc,nhwo->co', t, dy) for t in _taps(xp, w.shape[:2], hw)])
  return dx, dw.reshape(w.shape)


_conv_dw_matmul.defvjp(_conv_dw_matmul_fwd, _conv_dw_matmul_bwd)


def lax_dw_matmul(lhs, rhs, window_strides, padding, feature_group_count=1, **_):
  _check(window_strides, feature_group_count)
  # Explicit pads: the custom VJP's padding argument is static, so it must be hashable.
  return _conv_dw_matmul(lhs, rhs, _explicit_pads(lhs, rhs.shape[:2], padding))


VARIANTS = {'lax': lax.conv_general_dilated, 'im2col': im2col, 'shifted_sum': shifted_sum,
            'lax_dw_matmul': lax_dw_matmul}


def check(variant):
  """Largest relative difference of `variant`'s output and gradients from XLA's convolution's."""
  rng, worst = np.random.default_rng(0), 0.0
  for kernel, padding in (((3, 3), 'SAME'), ((3, 3), 'VALID'), ((1, 1), 'SAME')):
    x, w = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((4, 9, 9, 5), (*kernel, 5, 6)))
    probe = jnp.asarray(rng.normal(size=_xla_conv(x, w, padding).shape), jnp.float32)
    outputs = []
    for conv in (lax.conv_general_dilated, VARIANTS[variant]):
      f = lambda x, w, conv=conv: jnp.sum(probe * conv(
          x, w, (1, 1), padding, dimension_numbers=DIMENSIONS))
      outputs.append((f(x, w), *jax.grad(f, argnums=(0, 1))(x, w)))
    for got, want in zip(*outputs):
      worst = max(worst, float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want))))
  return worst


def runner(config, variant):
  """The step compiled with CNN-13's convolutions computed by `variant` (CNN-13 builds its
  `nn.Conv` modules at trace time, which bench.Runner does while it compiles)."""
  conv = nn.Conv
  nn.Conv = functools.partial(conv, conv_general_dilated=VARIANTS[variant])
  try:
    return bench.Runner(config)
  finally:
    nn.Conv = conv


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--width', type=float, default=0.0625)
  parser.add_argument('--steps', type=int, default=30, help='timed steps of each variant')
  parser.add_argument('--method', default='mean_teacher')
  args = parser.parse_args()
  print(bench.machine(), '\nuptime before:', bench.uptime(), flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    config = bench.synthetic_step_config(tmp, 'cnn13', args.method, args.width)
    runners = {}
    for variant in VARIANTS:
      diff = check(variant)
      assert diff < 1e-5, f'{variant} computes another convolution ({diff:.1e})'
      runners[variant] = runner(config, variant)
      print(f'compiled {variant}: {runners[variant].compile_s:.1f} s; output and gradients '
            f'within {diff:.1e} of XLA\'s convolution\'s', flush=True)
    times = bench.interleaved_steps(runners, args.steps)
  bench.print_interleaved(
      times, config.batch_size, f'{args.method}, CNN-13 width {args.width}, batch '
      f'{config.batch_size}, median of {args.steps} interleaved steps:')
  print('uptime after:', bench.uptime())


if __name__ == '__main__':
  main()
