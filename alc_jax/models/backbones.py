"""Backbones: CNN-13 (Table 1), WRN-28-2 (Oliver et al. 2018), ResNet-18 (He et al. 2016), and
TinyCNN (CNN-13's layer types in two convolutions: quick checks and the tests, not the paper).

Every model is called as `model.apply(variables, x, train=...)` on normalised float images
(B, H, W, C) and returns `(logits, features)`: float32 logits (B, num_classes) and the last
convolutional feature map before global average pooling (B, h, w, c), float32, which the
attention head consumes. Variables: 'params' and 'batch_stats'; in train mode pass
`mutable=['batch_stats']` (and `rngs={'dropout': key}` for CNN-13's dropout).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from alc_jax.models.cnn13 import CNN13
from alc_jax.models.resnet import ResNet
from alc_jax.models.tiny_cnn import TinyCNN
from alc_jax.models.wrn import WideResNet

MODEL_NAMES = ('cnn13', 'wrn28_2', 'resnet18', 'tiny_cnn')
# The backbones with dropout (`model.dropout`); the residual networks have none, as in their
# references, so config_lib refuses a dropout set for them instead of ignoring it.
WITH_DROPOUT = ('cnn13', 'tiny_cnn')
DEFAULT_DROPOUT = CNN13.dropout  # CNN-13's reference rate, configs/default.py's model.dropout.


def create_model(model_config, num_classes: int, dtype: Any = jnp.float32) -> nn.Module:
  """Builds the backbone named by `model_config.name`.

  Args:
    model_config: ConfigDict (or dict) with `name` (one of MODEL_NAMES), `width` (channel
      multiplier, 1.0 = published network), `dropout` (CNN-13 and TinyCNN; the residual networks
      have no dropout, as in their references) and `bn_momentum` (every backbone; the ImageNet
      recipe sets torchvision's 0.9 for ResNet-18).
    num_classes: number of output logits.
    dtype: computation dtype, e.g. jnp.bfloat16 on GPU/TPU; params stay float32.

  Returns:
    An unbound flax.linen Module.

  Raises:
    ValueError: for an unknown model name.
  """
  name = model_config.get('name')
  width = float(model_config.get('width', 1.0))
  bn_momentum = float(model_config.get('bn_momentum', 0.999))
  if name in WITH_DROPOUT:
    cnn = CNN13 if name == 'cnn13' else TinyCNN
    return cnn(num_classes, width=width,
               dropout=float(model_config.get('dropout', DEFAULT_DROPOUT)),
               bn_momentum=bn_momentum, dtype=dtype)
  if name == 'wrn28_2':
    return WideResNet(num_classes, bn_momentum=bn_momentum, depth=28, widen_factor=2, width=width,
                      dtype=dtype)
  if name == 'resnet18':
    return ResNet(num_classes, stage_sizes=(2, 2, 2, 2), width=width, bn_momentum=bn_momentum,
                  dtype=dtype)
  raise ValueError(f'Unknown model name {name!r}; valid choices: {", ".join(MODEL_NAMES)}.')


def feature_shape(backbone: nn.Module, image_shape) -> Any:
  """(h, w, c) of `backbone`'s feature map for an image of `image_shape` (H, W, C), by abstract
  evaluation (jax.eval_shape: nothing is computed), or None if the image is too small for it
  (a pooling or an unpadded convolution would leave no pixel)."""
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  try:
    (_, features), _ = jax.eval_shape(
        lambda x: backbone.init_with_output(jax.random.key(0), x, train=False), x)
  except (ValueError, TypeError, ZeroDivisionError):  # Negative or zero sizes inside the network.
    return None
  return None if 0 in features.shape else tuple(features.shape[1:])


def smallest_input_size(backbone: nn.Module, channels: int, limit: int = 256) -> Any:
  """The smallest square input size (pixels) that `backbone` accepts, or None up to `limit`."""
  for size in range(1, limit + 1):
    if feature_shape(backbone, (size, size, channels)) is not None:
      return size
  return None
