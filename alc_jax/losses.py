"""Pure loss functions of ALC and its baselines: the notebook-level API.

Every function is a pure jnp function of arrays (jit- and vmap-able, no Python loops over the
batch), accumulates in float32 whatever the input dtype, and cites the equation of Chen, Yang &
Ling (Neurocomputing 2020) it implements.

Normalisation. The paper writes sums over the data set (Eq. 1, 3, 6); on a mini-batch we use
means, with the scale of the Mean Teacher reference code that the paper's w1 values come from:
cross-entropy averaged over the labeled examples, the softmax-MSE consistency averaged over the
examples and divided by the number of classes, and the ALC term of Eq. 13 divided by the batch size.
"""

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array
# The B x B products are tiny next to the network; full float32 precision keeps them exact to the
# equation on GPUs/TPUs too, whose default float32 matmul rounds operands to tf32/bf16.
_HIGHEST = jax.lax.Precision.HIGHEST


def _f32(x: Array) -> Array:
  return jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))


def _weighted_mean(values: Array, weights: Optional[Array], mask: Optional[Array]) -> Array:
  """sum(w * m * v) / max(sum(m), 1): weights scale terms, the mask decides who counts."""
  values = _f32(values)
  w = jnp.ones_like(values) if weights is None else _f32(weights)
  m = jnp.ones_like(values) if mask is None else _f32(mask)
  return jnp.sum(w * m * values) / jnp.maximum(jnp.sum(m), 1.0)


def alc_similarity(x_max: Array, x_avg: Array, include_self: bool = True) -> Array:
  """Sample-attention similarity S of Eq. 12.

  S[j, i] = exp(x_max[i] . x_avg[j]) / sum_i' exp(x_max[i'] . x_avg[j]): row j is a distribution
  over the batch saying how much sample i influences sample j. Computed as a row softmax of
  x_avg @ x_max.T, which subtracts the row maximum (numerically stable for any scale).

  Args:
    x_max: (B, D) features through GMaxPool and the shared MLP (X-tilde of Eq. 11); leading
      axes, if any, are independent groups.
    x_avg: (B, D) features through GAvgPool and the shared MLP (X-bar of Eq. 10).
    include_self: False masks the diagonal (i = j) before the softmax.

  Returns:
    (B, B) float32 array whose rows sum to 1.
  """
  logits = jnp.matmul(_f32(x_avg), jnp.swapaxes(_f32(x_max), -1, -2), precision=_HIGHEST)
  if not include_self:
    logits = jnp.where(jnp.eye(logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return jax.nn.softmax(logits, axis=-1)


def label_consistency(similarity: Array, outputs: Array) -> Array:
  """Attention-based label consistency, Eq. 13 divided by the batch size.

  (1/B) sum_j sum_i S[j, i] ||outputs[i] - outputs[j]||^2, without forming the (B, B, K) tensor of
  differences: with n = ||o||^2,
    sum_ji S_ji ||o_i - o_j||^2 = sum_i colsum(S)_i n_i + sum_j rowsum(S)_j n_j - 2 sum_j o_j.(S o)_j,
  which needs O(B^2 + BK) memory.

  Args:
    similarity: (B, B) S with S[j, i] the weight of sample i for sample j.
    outputs: (B, K) p(x, theta) of the batch (logits by default, see `config.alc.outputs`).

  Returns:
    Scalar float32.
  """
  s = _f32(similarity)
  o = _f32(outputs)
  sq_norms = jnp.sum(o * o, axis=-1)
  total = (jnp.dot(jnp.sum(s, axis=0), sq_norms, precision=_HIGHEST)
           + jnp.dot(jnp.sum(s, axis=1), sq_norms, precision=_HIGHEST)
           - 2.0 * jnp.sum(o * jnp.matmul(s, o, precision=_HIGHEST)))
  return total / s.shape[0]


def class_prior(labels: Array, num_classes: int, mask: Optional[Array] = None) -> Array:
  """r of Eq. 14: the share of each class among the labeled examples.

  Args:
    labels: (N,) integer class ids of labeled examples (entries outside [0, K) are ignored).
    num_classes: K.
    mask: optional (N,) bool/0-1, which entries are labeled.

  Returns:
    (K,) float32 summing to 1 (zeros if nothing is labeled).
  """
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if mask is not None:
    onehot = onehot * _f32(mask)[:, None]
  counts = jnp.sum(onehot, axis=0)
  return counts / jnp.maximum(jnp.sum(counts), 1.0)


def imbalance_weight(class_ids: Array, prior: Array) -> Array:
  """1 - r_c of Eq. 14: smaller weights for classes that have more labels."""
  return 1.0 - _f32(prior)[class_ids]


def soft_imbalance_weight(teacher_logits: Array, prior: Array) -> Array:
  """Eq. 15's weight of an unlabeled example: max_k softmax(z)_k * (1 - r_{argmax_k z}).

  The teacher's confidence scales the hard weight of Eq. 14. The result carries no gradient.
  """
  z = jax.lax.stop_gradient(_f32(teacher_logits))
  probs = jax.nn.softmax(z, axis=-1)
  return jnp.max(probs, axis=-1) * imbalance_weight(jnp.argmax(z, axis=-1), prior)


def cross_entropy(logits: Array, labels: Array, weights: Optional[Array] = None,
                  mask: Optional[Array] = None) -> Array:
  """Supervised term of Eq. 6 / 14 / 15: -sum_k y_k log softmax(p)_k, averaged over `mask`.

  Args:
    logits: (B, K).
    labels: (B,) integer ids; entries where mask is False may hold anything (e.g. -1).
    weights: optional (B,) per-example weights, e.g. `imbalance_weight` (Eq. 14).
    mask: optional (B,) which examples are labeled; the mean runs over those.
  """
  logits = _f32(logits)
  safe = jnp.clip(labels, 0, logits.shape[-1] - 1)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), safe[:, None], axis=-1)[:, 0]
  return _weighted_mean(nll, weights, mask)


def softmax_mse(student_logits: Array, teacher_logits: Array, weights: Optional[Array] = None,
                mask: Optional[Array] = None) -> Array:
  """Network consistency of Eq. 1 (Pi-model) and Eq. 3 (Mean Teacher).

  ||softmax(student) - softmax(teacher)||^2 / K averaged over the examples, as in the Mean Teacher
  reference (`softmax_mse_loss` / num_classes / batch). The teacher side is the target z and
  never receives gradient.
  """
  student = jax.nn.softmax(_f32(student_logits), axis=-1)
  teacher = jax.nn.softmax(jax.lax.stop_gradient(_f32(teacher_logits)), axis=-1)
  per_example = jnp.sum((student - teacher) ** 2, axis=-1) / student.shape[-1]
  return _weighted_mean(per_example, weights, mask)


def pseudo_label_loss(logits: Array, threshold: float = 0.0, weights: Optional[Array] = None,
                      mask: Optional[Array] = None) -> Array:
  """Pseudo-Label (Lee 2013): cross-entropy against the model's own argmax, detached.

  Examples whose top probability is below `threshold` do not count (Oliver et al. 2018 use 0.95;
  Lee's original uses 0).
  """
  probs = jax.nn.softmax(jax.lax.stop_gradient(_f32(logits)), axis=-1)
  confident = jnp.max(probs, axis=-1) >= threshold
  mask = confident if mask is None else jnp.logical_and(mask, confident)
  return cross_entropy(logits, jnp.argmax(probs, axis=-1), weights, mask)


def entropy(logits: Array, mask: Optional[Array] = None) -> Array:
  """Mean prediction entropy (EntMin of Grandvalet & Bengio, used by VAT + EntMin)."""
  logp = jax.nn.log_softmax(_f32(logits), axis=-1)
  return _weighted_mean(-jnp.sum(jnp.exp(logp) * logp, axis=-1), None, mask)


def kl_divergence(target_logits: Array, logits: Array, mask: Optional[Array] = None) -> Array:
  """KL(softmax(target) || softmax(logits)) averaged over examples; the target is detached (VAT)."""
  target_logp = jax.nn.log_softmax(jax.lax.stop_gradient(_f32(target_logits)), axis=-1)
  logp = jax.nn.log_softmax(_f32(logits), axis=-1)
  kl = jnp.sum(jnp.exp(target_logp) * (target_logp - logp), axis=-1)
  return _weighted_mean(kl, None, mask)


def sntg_loss(embeddings: Array, teacher_logits: Array, margin: float = 1.0) -> Array:
  """Smooth Neighbors on Teacher Graphs (Luo et al. 2018), over all pairs of the batch.

  W_ij = 1 when the teacher predicts the same class for i and j. Neighbours are pulled together
  (||h_i - h_j||^2), non-neighbours pushed to at least `margin` apart (max(0, m - ||h_i - h_j||)^2).
  Averaged over the B(B-1) ordered pairs i != j.
  """
  h = _f32(embeddings)
  pred = jnp.argmax(jax.lax.stop_gradient(teacher_logits), axis=-1)
  same = (pred[:, None] == pred[None, :]).astype(jnp.float32)
  sq_norms = jnp.sum(h * h, axis=-1)
  gram = jnp.matmul(h, h.T, precision=_HIGHEST)
  d2 = jnp.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * gram, 0.0)
  # sqrt has an infinite derivative at 0; pairs at distance 0 only matter in the pull term.
  d = jnp.sqrt(jnp.where(d2 > 1e-12, d2, 1.0)) * (d2 > 1e-12)
  pair = same * d2 + (1.0 - same) * jnp.maximum(margin - d, 0.0) ** 2
  b = h.shape[0]
  off_diagonal = 1.0 - jnp.eye(b, dtype=jnp.float32)
  return jnp.sum(pair * off_diagonal) / max(b * (b - 1), 1)


def sigmoid_rampup(step: Array, rampup_steps: float) -> Array:
  """exp(-5 (1 - t/T)^2) of Laine & Aila 2017, the ramp-up of w1 (and w2) in Mean Teacher."""
  if rampup_steps <= 0:
    return jnp.ones((), jnp.float32)
  t = jnp.clip(jnp.asarray(step, jnp.float32) / rampup_steps, 0.0, 1.0)
  return jnp.exp(-5.0 * (1.0 - t) ** 2)
