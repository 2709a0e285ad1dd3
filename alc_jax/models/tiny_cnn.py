"""TinyCNN: CNN-13's layer types in two convolutions, for quick checks and the test suite.

Not a model of the paper. It has every kind of layer CNN-13 has (bias-free convolution ->
BatchNorm -> LeakyReLU(0.1), max-pool, dropout, global average pooling, a dense classifier) and
the same output contract, so the trainer's paths (BatchNorm statistics, dropout keys, the teacher,
the attention head on the feature map) are exercised as with CNN-13, in half the compile time: the
suite compiles hundreds of train steps, and CNN-13's nine layers were most of that time.
"""

import flax.linen as nn
import jax.numpy as jnp

from alc_jax.models.cnn13 import CNN13, conv_bn_lrelu, max_pool_2x2


class TinyCNN(CNN13):
  """conv(128w) -> max-pool -> dropout -> conv(128w) -> features; any input of at least 2x2.

  Attributes: CNN13's (num_classes, width, dropout, bn_momentum, dtype).
  """

  @nn.compact
  def __call__(self, x, train: bool = True):
    """Returns (logits, features): float32 (B, classes) and (B, H/2, W/2, 128 * width)."""
    x = conv_bn_lrelu(self, jnp.asarray(x, self.dtype), 128, (3, 3), '1', train)
    x = max_pool_2x2(x)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    features = conv_bn_lrelu(self, x, 128, (3, 3), '2', train).astype(jnp.float32)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='head')(jnp.mean(features, (1, 2)))
    return logits.astype(jnp.float32), features
