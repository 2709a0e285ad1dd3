"""TinyCNN: CNN-13's layer types in two convolutions, for quick checks and the test suite.

Not a model of the paper. It has every kind of layer CNN-13 has (bias-free convolution ->
BatchNorm -> LeakyReLU(0.1), max-pool, dropout, global average pooling, a dense classifier) and
the same output contract, so the trainer's paths (BatchNorm statistics, dropout keys, the teacher,
the attention head on the feature map) are exercised as with CNN-13, in half the compile time: the
suite compiles hundreds of train steps, and CNN-13's nine layers were most of that time.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from alc_jax.models.cnn13 import conv_init, scale_channels


class TinyCNN(nn.Module):
  """conv(128w) -> max-pool -> dropout -> conv(128w) -> features; any input of at least 2x2.

  Attributes: as CNN13's (num_classes, width, dropout, bn_momentum, dtype).
  """
  num_classes: int
  width: float = 1.0
  dropout: float = 0.5
  bn_momentum: float = 0.999
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    """Returns (logits, features): float32 (B, classes) and (B, H/2, W/2, 128 * width)."""

    def conv_bn_act(x, name):
      x = nn.Conv(scale_channels(128, self.width), (3, 3), padding='SAME', use_bias=False,
                  kernel_init=conv_init, dtype=self.dtype, name=f'conv{name}')(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-3,
                       dtype=self.dtype, name=f'bn{name}')(x)
      return nn.leaky_relu(x, negative_slope=0.1)

    x = conv_bn_act(jnp.asarray(x, self.dtype), '1')
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    features = conv_bn_act(x, '2').astype(jnp.float32)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='head')(jnp.mean(features, (1, 2)))
    return logits.astype(jnp.float32), features
