"""ResNet-18 (He et al. 2016), ImageNet variant, matching torchvision's `resnet18`.

7x7/2 stem + 3x3/2 max-pool, BasicBlocks [2, 2, 2, 2] with 64..512 channels, projection shortcut
(1x1 conv + BN) where the shape changes, torchvision padding (explicit 1-pixel pads rather than
TF 'SAME'), BN momentum 0.9 (torch 0.1) and epsilon 1e-5, kaiming-normal fan_out conv init, BN
scale 1 (zero_init_residual=False). 11,689,512 parameters for 1000 classes. The classifier
kernel uses torch Linear's U(+-1/sqrt(fan_in)); its bias starts at zero (torch: uniform).
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from alc_jax.models.cnn13 import conv_init, scale_channels

ModuleDef = Any
PAD1 = ((1, 1), (1, 1))


class BasicBlock(nn.Module):
  """ResNet basic block (two 3x3 convs)."""
  filters: int
  strides: int
  conv: ModuleDef
  norm: ModuleDef

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), self.strides, padding=PAD1)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3), padding=PAD1)(y)
    y = self.norm()(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters, (1, 1), self.strides, padding='VALID',
                           name='conv_proj')(residual)
      residual = self.norm(name='norm_proj')(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """ImageNet-style ResNet with basic blocks (default: ResNet-18).

  Attributes:
    num_classes: number of output logits.
    stage_sizes: blocks per stage.
    width: channel multiplier (1.0 = the published network).
    bn_momentum: BatchNorm running-average momentum (torchvision's 0.9, i.e. torch's 0.1).
    dtype: computation dtype (params stay float32).
  """
  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  width: float = 1.0
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    """Returns (logits, features): float32 (B, classes) and (B, H/32, W/32, 512 * width)."""
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=conv_init, dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=1e-5, dtype=self.dtype)
    x = conv(scale_channels(64, self.width), (7, 7), 2, padding=((3, 3), (3, 3)),
             name='conv_init')(jnp.asarray(x, self.dtype))
    x = nn.relu(norm(name='bn_init')(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=PAD1)
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = BasicBlock(scale_channels(64 * 2**i, self.width), 2 if i > 0 and j == 0 else 1,
                       conv=conv, norm=norm)(x)
    features = x.astype(jnp.float32)
    x = jnp.mean(features, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='head',
                      kernel_init=nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform'))(x)
    return logits.astype(jnp.float32), features
