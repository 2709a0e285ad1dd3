"""The ALC attention head (Sec. 3.3): SE channel attention, pooled sample attention, similarity S.

`SampleAttention` maps the backbone's last convolutional feature map (B, H, W, C) to the (B, B)
neighbour-similarity matrix S consumed by `losses.label_consistency` (Eq. 13). Its variants are the
ablations of Table 8 (pooling, channel attention on/off) and the similarities of Table 9.
"""

import jax
import jax.numpy as jnp
import flax.linen as nn

from alc_jax import losses

POOLINGS = ('max_avg', 'max', 'avg', 'average', 'gmp_avg')
SIMILARITIES = ('attention', 'sample', 'gaussian', 'cosine')


class ChannelAttention(nn.Module):
  """Squeeze-and-excitation channel attention with the residual of Eq. 8: X + u * X (Eq. 7-9)."""
  reduction: int = 16

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    u = jnp.mean(x, axis=(-3, -2))  # AvgPool of Eq. 7 (the SE "squeeze").
    u = nn.relu(nn.Dense(max(channels // self.reduction, 1), name='squeeze')(u))
    u = nn.sigmoid(nn.Dense(channels, name='excite')(u))
    return x + u[..., None, None, :] * x  # Eq. 8-9: channel-wise reweighting plus the residual.


class SharedMLP(nn.Module):
  """The MLP shared by both pooled features (Eq. 10-11): Dense-ReLU-Dense."""
  dim: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.dim, name='out')(nn.relu(nn.Dense(self.dim, name='hidden')(x)))


def generalized_max_pool(x, ridge=1.0):
  """Generalized max pooling (Murray & Perronnin 2014) of a (B, H, W, C) map.

  xi = argmin ||Phi xi - 1||^2 + ridge ||xi||^2 over the N = H*W local descriptors Phi (N, C):
  every patch gets the same similarity to the pooled vector, so frequent patches do not dominate.
  Solved in the dual, xi = Phi^T (Phi Phi^T + ridge I)^-1 1, an N x N system.
  """
  *lead, h, w, c = x.shape
  phi = x.reshape(*lead, h * w, c).astype(jnp.float32)
  gram = phi @ jnp.swapaxes(phi, -1, -2) + ridge * jnp.eye(h * w, dtype=jnp.float32)
  alpha = jnp.linalg.solve(gram, jnp.ones((*lead, h * w, 1), jnp.float32))
  return (jnp.swapaxes(phi, -1, -2) @ alpha)[..., 0]


def _l2_normalize(x, eps=1e-8):
  return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


def pairwise_similarity(x, kind, temperature=0.06, include_self=True):
  """Attention-free similarities of Table 9 on pooled features x (..., B, D).

  'sample' (Eq. 16) is a row softmax of X X^T; 'gaussian' (Eq. 17) is exp(-||x_i - x_j||^2 / t) on
  L2-normalised features (our choice: with raw features t = 0.06 makes every off-diagonal entry
  underflow to 0); 'cosine' (Eq. 18). Gaussian and cosine rows are not normalised, as in the paper.
  """
  x = x.astype(jnp.float32)
  if kind == 'sample':
    return losses.alc_similarity(x, x, include_self=include_self)
  x = _l2_normalize(x)
  cosine = x @ jnp.swapaxes(x, -1, -2)
  if kind == 'gaussian':
    s = jnp.exp(-jnp.maximum(2.0 - 2.0 * cosine, 0.0) / temperature)  # ||a - b||^2 = 2 - 2 cos.
  elif kind == 'cosine':
    s = cosine
  else:
    raise ValueError(f'unknown similarity {kind!r}; choose one of {SIMILARITIES}')
  return s if include_self else s * (1.0 - jnp.eye(x.shape[-2], dtype=s.dtype))


class SampleAttention(nn.Module):
  """Features (..., B, H, W, C) -> similarity S (..., B, B), S[j, i] = influence of i on j.

  Leading axes are independent groups (one per device for `config.alc.scope = 'per_device'`).

  Attributes mirror `config.alc` (see configs/default.py for each one's meaning).
  """
  similarity: str = 'attention'
  pooling: str = 'max_avg'
  channel_attention: bool = True
  se_reduction: int = 16
  mlp_dim: int = 0
  gaussian_temperature: float = 0.06
  gmp_lambda: float = 1.0
  include_self: bool = True

  @nn.compact
  def __call__(self, features):
    x = features.astype(jnp.float32)  # The B x B softmax is kept in float32 under bf16 compute.
    if self.similarity != 'attention':
      return pairwise_similarity(jnp.mean(x, axis=(-3, -2)), self.similarity,
                                 self.gaussian_temperature, self.include_self)
    if self.pooling not in POOLINGS:
      raise ValueError(f'unknown pooling {self.pooling!r}; choose one of {POOLINGS}')
    if self.channel_attention:
      x = ChannelAttention(self.se_reduction, name='channel_attention')(x)
    mlp = SharedMLP(self.mlp_dim or x.shape[-1], name='shared_mlp')
    x_avg = mlp(jnp.mean(x, axis=(-3, -2)))  # X-bar, Eq. 10.
    if self.pooling == 'gmp_avg':
      x_max = mlp(generalized_max_pool(x, self.gmp_lambda))
    else:
      x_max = mlp(jnp.max(x, axis=(-3, -2)))  # X-tilde, Eq. 11.
    sim = lambda a, b: losses.alc_similarity(a, b, include_self=self.include_self)
    if self.pooling in ('max_avg', 'gmp_avg'):
      return sim(x_max, x_avg)  # Eq. 12.
    if self.pooling == 'max':
      return sim(x_max, x_max)
    if self.pooling == 'avg':
      return sim(x_avg, x_avg)
    return 0.5 * (sim(x_max, x_max) + sim(x_avg, x_avg))  # 'average' of Table 9.


def create_head(alc_config):
  """The `SampleAttention` described by `config.alc`."""
  if alc_config.similarity not in SIMILARITIES:
    raise ValueError(f'config.alc.similarity={alc_config.similarity!r} is not one of {SIMILARITIES}')
  return SampleAttention(
      similarity=alc_config.similarity, pooling=alc_config.pooling,
      channel_attention=alc_config.channel_attention, se_reduction=alc_config.se_reduction,
      mlp_dim=alc_config.mlp_dim, gaussian_temperature=alc_config.gaussian_temperature,
      gmp_lambda=alc_config.gmp_lambda, include_self=alc_config.include_self)


def similarity_diagnostics(similarity, labels, labeled):
  """Monitors that tell whether the attention collapsed (open point (a) of the docs).

  Returns a dict of scalars:
    similarity_diagonal: mean share of a row's mass on i = j (1.0 = total collapse).
    similarity_entropy: mean row entropy of the row-normalised |S| (log B = uniform).
    similarity_same_class: among labeled pairs i != j, the share of S mass on same-class pairs
      (the share of same-class pairs under uniform attention is the chance level).
  """
  s = jnp.abs(jax.lax.stop_gradient(similarity).astype(jnp.float32))
  rows = s / jnp.maximum(jnp.sum(s, axis=1, keepdims=True), 1e-12)
  b = s.shape[0]
  eye = jnp.eye(b, dtype=bool)
  diagonal = jnp.mean(jnp.diagonal(rows))
  entropy = jnp.mean(-jnp.sum(jnp.where(rows > 0, rows * jnp.log(jnp.maximum(rows, 1e-30)), 0.), 1))
  pair = labeled[:, None] & labeled[None, :] & ~eye
  same = pair & (labels[:, None] == labels[None, :])
  same_share = jnp.sum(jnp.where(same, rows, 0.)) / jnp.maximum(jnp.sum(jnp.where(pair, rows, 0.)),
                                                                  1e-12)
  return {'similarity_diagonal': diagonal, 'similarity_entropy': entropy,
          'similarity_same_class': same_share}
