"""The ALC attention head (Sec. 3.3): SE channel attention, pooled sample attention, similarity S.

`SampleAttention` maps the backbone's last convolutional feature map (B, H, W, C) to the (B, B)
neighbour-similarity matrix S consumed by `losses.label_consistency` (Eq. 13). Its variants are the
ablations of Table 8 (pooling, channel attention on/off) and the similarities of Table 9.
"""

import math

import jax
import jax.numpy as jnp
import flax.linen as nn

from alc_jax import losses

# config.alc.pooling (Table 8 a/b/d, Table 9): the pooled pair(s) whose similarities S averages.
POOLINGS = ('max_avg', 'max', 'avg', 'mean_of_max_and_avg', 'gmp_avg')
# Earlier names, refused by config_lib with the new one (a value should not read like another).
RENAMED_POOLINGS = {'average': 'mean_of_max_and_avg'}
SIMILARITIES = ('attention', 'sample', 'gaussian', 'cosine')
# How the head is trained: by Eq. 13 itself (the paper) or by its own class-graph loss.
HEAD_TRAININGS = ('eq13', 'decoupled')  # config.alc.head_training.


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


def global_max_pool(x):
  """GMaxPool over (H, W): (..., H, W, C) -> (..., C), the max read at its argmax.

  The value is jnp.max's; the gradient goes to the argmax entry. jnp.max's own gradient divides by
  the number of entries equal to the max, and XLA's unoptimised mode (JAX_DISABLE_MOST_
  OPTIMIZATIONS, which the test suite compiles with) can compute the operand and the max
  differently, so that the count is 0 and the gradient NaN at step 1.
  """
  flat = x.reshape(*x.shape[:-3], -1, x.shape[-1])
  at_max = jnp.argmax(flat, axis=-2, keepdims=True)
  return jnp.take_along_axis(flat, at_max, axis=-2)[..., 0, :]


class SharedMLP(nn.Module):
  """The MLP shared by both pooled features (Eq. 10-11): Dense-ReLU-Dense."""
  dim: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.dim, name='out')(nn.relu(nn.Dense(self.dim, name='hidden')(x)))


def spd_solve(a, b):
  """x with a x = b for symmetric positive definite a (..., N, N) and b (..., N, K).

  Gauss-Jordan elimination without pivoting (stable for SPD matrices), unrolled over the N
  columns in plain jnp ops. Not jnp.linalg.solve: inside a training step on two or more CPU
  devices, jaxlib 0.10.2's batched LAPACK LU waits on XLA's CPU thread pool from a pool thread
  and deadlocks (docs/results.md, Table 9 analogue). N is H*W of the last feature map (25-64).
  """
  n = a.shape[-1]
  m = jnp.concatenate([a, b], axis=-1)
  for i in range(n):
    row = m[..., i, :] / m[..., i, i, None]
    m = m - m[..., :, i, None] * row[..., None, :]  # Zeroes column i; row i becomes 0 here ...
    m = m.at[..., i, :].set(row)  # ... and is then the pivot row, scaled to a 1 on the diagonal.
  return m[..., n:]


def generalized_max_pool(x, ridge=1.0):
  """Generalized max pooling (Murray & Perronnin 2014) of a (B, H, W, C) map.

  xi = argmin ||Phi xi - 1||^2 + ridge ||xi||^2 over the N = H*W local descriptors Phi (N, C):
  every patch gets the same similarity to the pooled vector, so frequent patches do not dominate.
  Solved in the dual, xi = Phi^T (Phi Phi^T + ridge I)^-1 1, an N x N SPD system (`spd_solve`).
  """
  *lead, h, w, c = x.shape
  phi = x.reshape(*lead, h * w, c).astype(jnp.float32)
  gram = phi @ jnp.swapaxes(phi, -1, -2) + ridge * jnp.eye(h * w, dtype=jnp.float32)
  alpha = spd_solve(gram, jnp.ones((*lead, h * w, 1), jnp.float32))
  return (jnp.swapaxes(phi, -1, -2) @ alpha)[..., 0]


def pairwise_similarity(x, kind, temperature=0.06, include_self=True):
  """Attention-free similarities of Table 9 on pooled features x (..., B, D).

  'sample' (Eq. 16) is a row softmax of X X^T; 'gaussian' (Eq. 17) is exp(-||x_i - x_j||^2 / t) on
  L2-normalised features (our choice: with raw features t = 0.06 makes every off-diagonal entry
  underflow to 0); 'cosine' (Eq. 18). Gaussian and cosine rows are not normalised, as in the paper.
  """
  x = x.astype(jnp.float32)
  if kind == 'sample':
    return losses.alc_similarity(x, x, include_self=include_self)
  x = losses.l2_normalize(x)
  cosine = x @ jnp.swapaxes(x, -1, -2)
  if kind == 'gaussian':
    s = jnp.exp(-jnp.maximum(2.0 - 2.0 * cosine, 0.0) / temperature)  # ||a - b||^2 = 2 - 2 cos.
  elif kind == 'cosine':
    s = cosine
  else:
    raise ValueError(f'unknown similarity {kind!r}; choose one of {SIMILARITIES}')
  return s if include_self else s * (1.0 - jnp.eye(x.shape[-2], dtype=s.dtype))


def logit_spread(logits, include_self=True):
  """Mean over rows j of the standard deviation over i of the attention logits (i != j if masked).

  The softmax of Eq. 12 is shift-invariant per row, so this spread is what decides how peaked S
  is: a spread that keeps growing is the attention collapsing towards one-hot rows.
  """
  logits = logits.astype(jnp.float32)
  b = logits.shape[-1]
  keep = jnp.ones((b, b), bool) if include_self else ~jnp.eye(b, dtype=bool)
  n = jnp.sum(keep, axis=-1)
  mean = jnp.sum(jnp.where(keep, logits, 0.0), axis=-1) / n
  var = jnp.sum(jnp.where(keep, (logits - mean[..., None]) ** 2, 0.0), axis=-1) / n
  return jnp.mean(jnp.sqrt(var))


class SampleAttention(nn.Module):
  """Features (..., B, H, W, C) -> similarity S (..., B, B), S[j, i] = influence of i on j.

  Leading axes are independent groups (one per device for `config.alc.scope = 'per_device'`).
  With the attention similarity, the spread of the attention logits (`logit_spread`) is sown into
  the 'intermediates' collection as `logit_spread` (a diagnostic; apply with
  mutable=['intermediates'] to read it).

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
  logits: str = 'dot'
  temperature: float = 0.1
  learned_temperature: bool = False
  temperature_floor: float = 0.02
  detach_input: bool = False  # The decoupled graph: the head's loss must not reach the backbone.

  def _temperature(self):
    if not self.learned_temperature:
      return self.temperature
    if self.temperature <= self.temperature_floor:
      raise ValueError(f'alc.temperature={self.temperature} must exceed alc.temperature_floor='
                       f'{self.temperature_floor} when it is learned.')
    # tau = floor + softplus(raw), initialised at `temperature`: it can sharpen S, but only so far.
    init = math.log(math.expm1(self.temperature - self.temperature_floor))
    raw = self.param('temperature_raw', nn.initializers.constant(init), ())
    return self.temperature_floor + nn.softplus(raw)

  @nn.compact
  def __call__(self, features):
    x = features.astype(jnp.float32)  # The B x B softmax is kept in float32 under bf16 compute.
    if self.detach_input:
      x = jax.lax.stop_gradient(x)
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
      x_max = mlp(global_max_pool(x))  # X-tilde, Eq. 11.
    temperature = self._temperature() if self.logits == 'cosine' else 1.0
    pairs = {'max_avg': [(x_max, x_avg)], 'gmp_avg': [(x_max, x_avg)], 'max': [(x_max, x_max)],
             'avg': [(x_avg, x_avg)],
             'mean_of_max_and_avg': [(x_max, x_max), (x_avg, x_avg)]}[self.pooling]
    logits = [losses.attention_logits(a, b, self.logits, temperature) for a, b in pairs]
    self.sow('intermediates', 'logit_spread',
             jnp.mean(jnp.stack([logit_spread(z, self.include_self) for z in logits])))
    # Eq. 12 (Table 9's 'average' row, mean_of_max_and_avg: the max-only and avg-only S averaged).
    return sum(losses.similarity_from_logits(z, self.include_self) for z in logits) / len(logits)


def create_head(alc_config):
  """The `SampleAttention` described by `config.alc`."""
  if alc_config.similarity not in SIMILARITIES:
    raise ValueError(f'config.alc.similarity={alc_config.similarity!r} is not one of {SIMILARITIES}')
  return SampleAttention(
      similarity=alc_config.similarity, pooling=alc_config.pooling,
      channel_attention=alc_config.channel_attention, se_reduction=alc_config.se_reduction,
      mlp_dim=alc_config.mlp_dim, gaussian_temperature=alc_config.gaussian_temperature,
      gmp_lambda=alc_config.gmp_lambda, include_self=alc_config.include_self,
      logits=alc_config.attention_logits, temperature=alc_config.temperature,
      learned_temperature=alc_config.learned_temperature,
      temperature_floor=alc_config.temperature_floor,
      detach_input=alc_config.head_training == 'decoupled')


def _same_class_share(rows, labels, valid):
  """Share of the rows' mass (i != j, both valid) that falls on pairs of the same class."""
  b = rows.shape[0]
  pair = valid[:, None] & valid[None, :] & ~jnp.eye(b, dtype=bool)
  same = pair & (labels[:, None] == labels[None, :])
  return jnp.sum(jnp.where(same, rows, 0.)) / jnp.maximum(jnp.sum(jnp.where(pair, rows, 0.)), 1e-12)


def similarity_diagnostics(similarity, labels, labeled, true_labels=None):
  """Monitors that tell whether the attention collapsed and whether it finds same-class neighbours.

  Args:
    similarity: (B, B) S.
    labels, labeled: the batch's labels (-1 where unlabeled) and which rows are labeled.
    true_labels: optional (B,) true class of every row, unlabeled ones included (-1 = unknown).
      Used for these diagnostics only: the trainer never lets them reach a loss.

  Returns a dict of scalars:
    similarity_diagonal: mean share of a row's mass on i = j (1.0 = total collapse).
    similarity_entropy: mean row entropy of the row-normalised |S| (log B = uniform).
    similarity_same_class_labeled: the same-class share among labeled pairs only (10 x 9 pairs
      in a batch of 100 with 10 labels: noisy, most of a row's mass is on unlabeled columns).
    with true_labels, similarity_same_class: the share of S mass (i != j) on pairs of the same
      true class over all pairs, and same_class_chance: that share under uniform attention.
  """
  s = jnp.abs(jax.lax.stop_gradient(similarity).astype(jnp.float32))
  rows = s / jnp.maximum(jnp.sum(s, axis=1, keepdims=True), 1e-12)
  diagonal = jnp.mean(jnp.diagonal(rows))
  entropy = jnp.mean(-jnp.sum(jnp.where(rows > 0, rows * jnp.log(jnp.maximum(rows, 1e-30)), 0.), 1))
  out = {'similarity_diagonal': diagonal, 'similarity_entropy': entropy,
         'similarity_same_class_labeled': _same_class_share(rows, labels, labeled)}
  if true_labels is not None:
    known = true_labels >= 0
    out['similarity_same_class'] = _same_class_share(rows, true_labels, known)
    out['same_class_chance'] = _same_class_share(jnp.ones_like(rows), true_labels, known)
  return out
