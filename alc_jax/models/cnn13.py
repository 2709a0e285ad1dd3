"""CNN-13 ("Conv-Large"), the backbone of Table 1 of the ALC paper.

Where the paper is silent we follow the reference CNN-13 of Temporal Ensembling (Laine & Aila
2017, `build_network` in github.com/s-laine/tempens/train.py), which Mean Teacher's TF code
(`tower` in mean_teacher/model.py) reuses:

* Table 1's extraction lists four 256-filter convolutions; the reference network (and the usual
  ~3.1M parameter count) has three, which is what we build.
* Dropout 0.5 after each of the first two max-pools; LeakyReLU(0.1) after every convolution.
* The reference normalises with weight-norm + mean-only BN; we use ordinary BatchNorm after every
  convolution (conv -> BN -> LReLU), with momentum config.model.bn_momentum (0.99 by default; the
  TF reference's 0.999 suits 100k+ steps, configs/default.py says why) and epsilon 1e-3 (the
  TF/Keras default, also used by the WRN-28-2 of Oliver et al. 2018). Convolutions have no bias
  (BN's bias replaces it). The classifier is a plain dense layer (the reference also
  mean-only-normalises the logits).
* The reference's Gaussian input-noise layer (sigma 0.15) is NOT part of this module: it is done
  by the trainer's input augmentation (`config.augment.noise_std`).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# He-normal, fan_out, untruncated, like torchvision's kaiming_normal_(mode='fan_out') in MT.
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def scale_channels(channels: int, width: float) -> int:
  """Channel count `channels` scaled by the width multiplier (at least 1)."""
  return max(1, int(round(channels * width)))


def conv_bn_lrelu(module, x, channels, kernel, name, train, padding='SAME'):
  """CNN-13's unit, conv -> BN -> LeakyReLU(0.1), as submodules `conv{name}`, `bn{name}` of
  `module` (a CNN13; call it inside the module's compact method)."""
  x = nn.Conv(scale_channels(channels, module.width), kernel, padding=padding, use_bias=False,
              kernel_init=conv_init, dtype=module.dtype, name=f'conv{name}')(x)
  x = nn.BatchNorm(use_running_average=not train, momentum=module.bn_momentum, epsilon=1e-3,
                   dtype=module.dtype, name=f'bn{name}')(x)
  return nn.leaky_relu(x, negative_slope=0.1)


def _pool_windows(x):
  """(..., H, W, C) -> (..., H//2, W//2, C, 4): each 2x2 window's pixels in row-major order (the
  order in which select-and-scatter visits them); a trailing odd row or column is dropped, as
  VALID pooling drops it."""
  *lead, h, w, c = x.shape
  x = x[..., :h // 2 * 2, :w // 2 * 2, :].reshape(*lead, h // 2, 2, w // 2, 2, c)
  n = len(lead)
  x = jnp.moveaxis(x, (n + 1, n + 3), (n + 3, n + 4))  # (..., H/2, W/2, C, 2, 2)
  return x.reshape(*lead, h // 2, w // 2, c, 4)


@jax.custom_jvp
def max_pool_2x2(x):
  """2x2 max-pool, stride 2, VALID: `nn.max_pool(x, (2, 2), strides=(2, 2))` with the same values
  and gradients, bit for bit (forward-over-reverse products: equal, a zero's sign may differ).

  Why not nn.max_pool: XLA:CPU turns max-pool's gradient (select-and-scatter) into a reduce-window
  over five int32 index arrays, about a quarter of CNN-13's step at width 1/16 (docs/
  performance.md). Here the forward is a max over each window and the derivative follows the
  first maximum of its window, as select-and-scatter's `>=` selection does (ties are common:
  constant backgrounds give equal activations). A JVP rule (not a VJP) so that forward-over-
  reverse products (VAT's exact power iteration) still work; reverse mode is its transpose, a
  masked broadcast."""
  return _pool_windows(x).max(axis=-1)


@max_pool_2x2.defjvp
def _max_pool_2x2_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  windows = _pool_windows(x)
  first_max = jnp.argmax(windows, axis=-1)[..., None] == jnp.arange(4)
  dy = jnp.sum(jnp.where(first_max, _pool_windows(dx), jnp.zeros((), dx.dtype)), axis=-1)
  # The output through the function itself, not `windows.max()`: differentiated again (forward
  # over reverse), max's own rule would split the tangent over tied maxima.
  return max_pool_2x2(x), dy


class CNN13(nn.Module):
  """CNN-13 of Table 1 (Laine & Aila 2017 reference network).

  Works for any input of at least 12x12 pixels: 32x32 inputs give 6x6 features, 28x28 inputs
  (Fashion-MNIST) give 5x5 features.

  Attributes:
    num_classes: number of output logits.
    width: channel multiplier (1.0 = the published network).
    dropout: dropout rate after the first two max-pools.
    bn_momentum: BatchNorm running-average momentum (the TF reference: 0.999).
    dtype: computation dtype (params stay float32).
  """
  num_classes: int
  width: float = 1.0
  dropout: float = 0.5
  bn_momentum: float = 0.999
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    """Returns (logits, features): float32 (B, classes) and (B, h, w, 128 * width)."""
    x = jnp.asarray(x, self.dtype)
    for name in ('1a', '1b', '1c'):
      x = conv_bn_lrelu(self, x, 128, (3, 3), name, train)
    x = max_pool_2x2(x)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    for name in ('2a', '2b', '2c'):
      x = conv_bn_lrelu(self, x, 256, (3, 3), name, train)
    x = max_pool_2x2(x)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = conv_bn_lrelu(self, x, 512, (3, 3), '3a', train, padding='VALID')
    x = conv_bn_lrelu(self, x, 256, (1, 1), '3b', train)
    features = conv_bn_lrelu(self, x, 128, (1, 1), '3c', train).astype(jnp.float32)
    x = jnp.mean(features, axis=(1, 2))
    # LeCun normal = Lasagne HeNormal(gain=1.0) of the reference's dense layer.
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='head')(x)
    return logits.astype(jnp.float32), features
