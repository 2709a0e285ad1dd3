"""CNN-13 ("Conv-Large"), the backbone of Table 1 of the ALC paper.

Where the paper is silent we follow the reference CNN-13 of Temporal Ensembling (Laine & Aila
2017, `build_network` in github.com/s-laine/tempens/train.py), which Mean Teacher's TF code
(`tower` in mean_teacher/model.py) reuses:

* Table 1's extraction lists four 256-filter convolutions; the reference network (and the usual
  ~3.1M parameter count) has three, which is what we build.
* Dropout 0.5 after each of the first two max-pools; LeakyReLU(0.1) after every convolution.
* The reference normalises with weight-norm + mean-only BN; we use ordinary BatchNorm after every
  convolution (conv -> BN -> LReLU), with the reference momentum 0.999 and epsilon 1e-3 (the
  TF/Keras default, also used by the WRN-28-2 of Oliver et al. 2018). Convolutions have no bias
  (BN's bias replaces it). The classifier is a plain dense layer (the reference also
  mean-only-normalises the logits).
* The reference's Gaussian input-noise layer (sigma 0.15) is NOT part of this module: it is done
  by the trainer's input augmentation (`config.augment.noise_std`).
"""

from typing import Any

import flax.linen as nn
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
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    for name in ('2a', '2b', '2c'):
      x = conv_bn_lrelu(self, x, 256, (3, 3), name, train)
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = conv_bn_lrelu(self, x, 512, (3, 3), '3a', train, padding='VALID')
    x = conv_bn_lrelu(self, x, 256, (1, 1), '3b', train)
    features = conv_bn_lrelu(self, x, 128, (1, 1), '3c', train).astype(jnp.float32)
    x = jnp.mean(features, axis=(1, 2))
    # LeCun normal = Lasagne HeNormal(gain=1.0) of the reference's dense layer.
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='head')(x)
    return logits.astype(jnp.float32), features
