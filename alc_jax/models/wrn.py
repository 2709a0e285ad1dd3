"""WRN-28-2 of Oliver et al. 2018, "Realistic evaluation of deep semi-supervised learning".

Follows `wide_resnet` in github.com/brain-research/realistic-ssl-evaluation/lib/networks.py:
pre-activation residual units (BN -> LReLU(0.1) -> conv), 4 units per group, 16/32/64/128
channels, 'SAME' (TF) padding, bias-free convolutions with N(0, 2 / (k*k*out)) init, BatchNorm
with decay 0.999 / epsilon 1e-3 (tf.contrib.layers.batch_norm defaults), a final BN + LReLU and
a glorot-normal dense classifier. 1,467,610 parameters for 10 classes. No dropout. The
reference's input flip/jitter/noise are done by the trainer, not here.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from alc_jax.models.cnn13 import conv_init, scale_channels

ModuleDef = Any


def lrelu(x):
  return nn.leaky_relu(x, negative_slope=0.1)


class WRNUnit(nn.Module):
  """Pre-activation residual unit (`_residual` of the reference)."""
  filters: int
  strides: int
  activate_before_residual: bool
  conv: ModuleDef
  norm: ModuleDef

  @nn.compact
  def __call__(self, x):
    if self.activate_before_residual:  # The shortcut sees the activated input.
      x = lrelu(self.norm()(x))
      shortcut = x
    else:  # The shortcut sees the raw input.
      shortcut = x
      x = lrelu(self.norm()(x))
    y = self.conv(self.filters, (3, 3), self.strides)(x)
    y = lrelu(self.norm()(y))
    y = self.conv(self.filters, (3, 3))(y)
    if shortcut.shape != y.shape:  # Reference: in_filters != out_filters (same at width 1).
      shortcut = self.conv(self.filters, (1, 1), self.strides, name='shortcut')(shortcut)
    return y + shortcut


class WideResNet(nn.Module):
  """Wide ResNet (default WRN-28-2) as in Oliver et al. 2018.

  Attributes:
    num_classes: number of output logits.
    depth: 6n + 4 layers (28: n = 4 units per group).
    widen_factor: k of WRN-d-k.
    width: extra channel multiplier (1.0 = the published network).
    bn_momentum: BatchNorm running-average momentum (the reference: 0.999).
    dtype: computation dtype (params stay float32).
  """
  num_classes: int
  bn_momentum: float = 0.999
  depth: int = 28
  widen_factor: int = 2
  width: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    """Returns (logits, features): float32 (B, classes) and (B, H/4, W/4, 64k * width)."""
    assert (self.depth - 4) % 6 == 0, 'WRN depth must be 6n + 4.'
    units = (self.depth - 4) // 6
    ch = functools.partial(scale_channels, width=self.width)
    conv = functools.partial(nn.Conv, use_bias=False, padding='SAME', kernel_init=conv_init,
                             dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=1e-3, dtype=self.dtype)

    x = conv(ch(16), (3, 3), name='init_conv')(jnp.asarray(x, self.dtype))
    for group, (filters, strides) in enumerate(zip((16, 32, 64), (1, 2, 2))):
      for i in range(units):
        x = WRNUnit(ch(filters * self.widen_factor), strides if i == 0 else 1,
                    activate_before_residual=(group == 0 and i == 0), conv=conv, norm=norm,
                    name=f'unit_{group + 1}_{i}')(x)
    features = lrelu(norm(name='bn_last')(x)).astype(jnp.float32)
    x = jnp.mean(features, axis=(1, 2))
    logits = nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_normal(),
                      dtype=self.dtype, name='head')(x)
    return logits.astype(jnp.float32), features
