"""The network a run trains: a backbone plus, for ALC, the attention head on its features."""

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from alc_jax import attention
from alc_jax.models import backbones


class Classifier(nn.Module):
  """A backbone returning (logits, features) plus, for ALC, the attention head on the features.

  `groups` > 1 splits the batch into that many consecutive groups, each with its own S (the
  per-device scope); the head's parameters are shared by the groups.
  """
  backbone: nn.Module
  head: Optional[nn.Module] = None
  groups: int = 1

  def __call__(self, x, train: bool = False, with_similarity: bool = False):
    logits, features = self.backbone(x, train=train)
    similarity = None
    if self.head is not None and (with_similarity or self.is_initializing()):
      grouped = features.reshape(self.groups, -1, *features.shape[1:])
      similarity = self.head(grouped)  # (groups, B / groups, B / groups)
    return logits, features, similarity


# config.compute_dtype -> the dtype the backbone computes in (its parameters stay float32).
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
# config.alc.scope: one S over the whole batch, or one per device's part (Classifier.groups).
ALC_SCOPES = ('global', 'per_device')


def create_classifier(config, num_classes: int, num_devices: int = 1) -> Classifier:
  """The `Classifier` of an experiment config: its backbone (config.model, in the compute dtype)
  and, with config.alc.enabled, the attention head (config.alc; one S per device with
  config.alc.scope='per_device')."""
  dtype = COMPUTE_DTYPES[config.compute_dtype]
  backbone = backbones.create_model(config.model, num_classes, dtype=dtype)
  head = attention.create_head(config.alc) if config.alc.enabled else None
  groups = num_devices if config.alc.scope == 'per_device' else 1  # One of ALC_SCOPES.
  return Classifier(backbone=backbone, head=head, groups=groups)
