"""Pure loss functions of ALC and its baselines: the notebook-level API.

Every function is a pure jnp function of arrays (jit- and vmap-able, no Python loops over the
batch), accumulates in float32 whatever the input dtype, and cites the equation of Chen, Yang &
Ling (Neurocomputing 2020) it implements.

Normalisation. The paper writes sums over the data set (Eq. 1, 3, 6) and leaves the mini-batch
scale open. The softmax-MSE consistency is averaged over the examples and divided by the number of
classes, as in the Mean Teacher reference code that the paper's w1 values come from. The other two
scales are switches (`config.supervised_normalization`, `config.alc.pairwise_scale`) because they
change the balance of the terms by 10x to 1000x: the cross-entropy is either averaged over the
labeled examples ('labeled') or summed over them and divided by the whole batch ('batch', Eq. 6's
sums over one batch and the reference code's `CrossEntropyLoss(size_average=False) / minibatch`);
Eq. 13 is divided by B ('batch'), B^2 ('pairs') or B^2 K ('pairs_classes').
"""

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array
# The B x B products are tiny next to the network; full float32 precision keeps them exact to the
# equation on GPUs/TPUs too, whose default float32 matmul rounds operands to tf32/bf16.
_HIGHEST = jax.lax.Precision.HIGHEST

# Valid values of the switches; config_lib validates against these.
SUPERVISED_NORMALIZATIONS = ('labeled', 'batch')
PAIRWISE_SCALES = ('batch', 'pairs', 'pairs_classes')
ATTENTION_LOGITS = ('dot', 'scaled_dot', 'cosine')


def _f32(x: Array) -> Array:
  return jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))


def _weighted_sum(values: Array, weights: Optional[Array], mask: Optional[Array]) -> Array:
  """sum(w * m * v): weights scale terms, the mask decides who counts."""
  values = _f32(values)
  w = jnp.ones_like(values) if weights is None else _f32(weights)
  m = jnp.ones_like(values) if mask is None else _f32(mask)
  return jnp.sum(w * m * values)


def _weighted_mean(values: Array, weights: Optional[Array], mask: Optional[Array]) -> Array:
  """sum(w * m * v) / max(sum(m), 1)."""
  count = values.size if mask is None else jnp.sum(_f32(mask))
  return _weighted_sum(values, weights, mask) / jnp.maximum(count, 1.0)


def attention_logits(x_max: Array, x_avg: Array, kind: str = 'dot',
                     temperature: Array = 1.0) -> Array:
  """The logits of Eq. 12's softmax: logits[j, i] = similarity of x_avg[j] to x_max[i].

  kind:
    'dot': x_avg[j] . x_max[i], the paper's (unscaled: at D = 128 a row's entropy starts near 0.5
      nats, far from uniform, and nothing bounds its growth).
    'scaled_dot': the same divided by sqrt(D) (Vaswani et al. 2017), independent of the width.
    'cosine': cos(x_avg[j], x_max[i]) / temperature on L2-normalised features; bounded by
      1 / temperature, so S can never become one-hot.
  Leading axes, if any, are independent groups.
  """
  a, m = _f32(x_avg), _f32(x_max)
  if kind == 'cosine':
    a, m = l2_normalize(a), l2_normalize(m)
  logits = jnp.matmul(a, jnp.swapaxes(m, -1, -2), precision=_HIGHEST)
  if kind == 'dot':
    return logits
  if kind == 'scaled_dot':
    return logits / jnp.sqrt(jnp.float32(a.shape[-1]))
  if kind == 'cosine':
    return logits / temperature
  raise ValueError(f'unknown attention logits {kind!r}; choose one of {ATTENTION_LOGITS}')


def l2_normalize(x: Array, eps: float = 1e-8) -> Array:
  """x / ||x|| along the last axis (eps keeps a zero vector finite)."""
  return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)


def similarity_from_logits(logits: Array, include_self: bool = True) -> Array:
  """Row softmax of Eq. 12 (stable for any scale); include_self=False masks i = j first."""
  if not include_self:
    logits = jnp.where(jnp.eye(logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return jax.nn.softmax(logits, axis=-1)


def alc_similarity(x_max: Array, x_avg: Array, include_self: bool = True, kind: str = 'dot',
                   temperature: Array = 1.0) -> Array:
  """Sample-attention similarity S of Eq. 12.

  S[j, i] = exp(x_max[i] . x_avg[j]) / sum_i' exp(x_max[i'] . x_avg[j]): row j is a distribution
  over the batch saying how much sample i influences sample j. Computed as a row softmax of
  x_avg @ x_max.T, which subtracts the row maximum (numerically stable for any scale).

  Args:
    x_max: (B, D) features through GMaxPool and the shared MLP (X-tilde of Eq. 11); leading
      axes, if any, are independent groups.
    x_avg: (B, D) features through GAvgPool and the shared MLP (X-bar of Eq. 10).
    include_self: False masks the diagonal (i = j) before the softmax.
    kind, temperature: the logits (`attention_logits`); 'dot' is the paper's.

  Returns:
    (B, B) float32 array whose rows sum to 1.
  """
  return similarity_from_logits(attention_logits(x_max, x_avg, kind, temperature), include_self)


def pairwise_divisor(pairwise_scale: str, batch_size: int, num_classes: int) -> float:
  """What the sum of Eq. 13 is divided by (config.alc.pairwise_scale): B ('batch'), B^2
  ('pairs') or B^2 K ('pairs_classes')."""
  if pairwise_scale == 'batch':
    return float(batch_size)
  if pairwise_scale == 'pairs':
    return float(batch_size) ** 2
  if pairwise_scale == 'pairs_classes':
    return float(batch_size) ** 2 * num_classes
  raise ValueError(f'unknown ALC pairwise_scale {pairwise_scale!r}; choose one of '
                   f'{PAIRWISE_SCALES}')


def _pairwise_sum(s: Array, rows: Array, cols: Array) -> Array:
  """sum_j sum_i s[j, i] ||rows[j] - cols[i]||^2 without the (B, B, K) tensor of differences:
  = sum_j rowsum(S)_j ||r_j||^2 + sum_i colsum(S)_i ||c_i||^2 - 2 sum_j r_j . (S c)_j."""
  return (jnp.dot(jnp.sum(s, axis=-1), jnp.sum(rows * rows, axis=-1), precision=_HIGHEST)
          + jnp.dot(jnp.sum(s, axis=-2), jnp.sum(cols * cols, axis=-1), precision=_HIGHEST)
          - 2.0 * jnp.sum(rows * jnp.matmul(s, cols, precision=_HIGHEST)))


def label_consistency(similarity: Array, outputs: Array, pairwise_scale: str = 'batch',
                      entropy_weight: float = 0.0) -> Array:
  """Attention-based label consistency, Eq. 13, divided by `pairwise_divisor(pairwise_scale)`.

  sum_j sum_i S[j, i] ||outputs[i] - outputs[j]||^2 in O(B^2 + BK) memory (`_pairwise_sum`).

  entropy_weight = beta > 0 adds beta * sum_j sum_i S[j, i] log S[j, i] (minus the row entropies),
  divided by the same pairwise_divisor. Over a row of S (a distribution) the sum is then minimised
  by softmax_i(-||o_i - o_j||^2 / beta) instead of a one-hot row: the attention head has a finite
  target and its logits stop growing (the paper's beta = 0 has no such minimiser).

  Args:
    similarity: (B, B) S with S[j, i] the weight of sample i for sample j.
    outputs: (B, K) p(x, theta) of the batch (logits by default, see `config.alc.outputs`).
    pairwise_scale: one of PAIRWISE_SCALES.
    entropy_weight: beta of the row-entropy penalty (rows of S must be distributions).

  Returns:
    Scalar float32.
  """
  s = _f32(similarity)
  o = _f32(outputs)
  total = _pairwise_sum(s, o, o)
  if entropy_weight:
    total += entropy_weight * jnp.sum(jnp.where(s > 0, s * jnp.log(jnp.where(s > 0, s, 1.0)), 0.0))
  return total / pairwise_divisor(pairwise_scale, s.shape[-1], o.shape[-1])


def decoupled_label_consistency(similarity: Array, outputs: Array, targets: Array,
                                pairwise_scale: str = 'batch') -> Array:
  """Eq. 13 with S and the neighbours as fixed targets (the 'decoupled' graph).

  sum_j sum_i sg(S[j, i]) ||outputs[j] - sg(targets[i])||^2 / pairwise_divisor: each sample's
  output is pulled towards the targets (teacher predictions, or labels) of the samples S says are
  its neighbours. No gradient reaches S or the targets, so Eq. 13 cannot move S towards one-hot
  rows; the head is trained by `graph_loss` instead.
  """
  s = jax.lax.stop_gradient(_f32(similarity))
  o, t = _f32(outputs), jax.lax.stop_gradient(_f32(targets))
  return _pairwise_sum(s, o, t) / pairwise_divisor(pairwise_scale, s.shape[-1], o.shape[-1])


def class_graph(labels: Array, labeled: Array, teacher_logits: Array, threshold: float,
                include_self: bool = True) -> Array:
  """The target graph of the decoupled head: row-normalised same-class adjacency (CoMatch, SNTG).

  A sample's class is its label where it has one, else the teacher's argmax where the teacher's
  top probability reaches `threshold`, else unknown. G[j, i] = 1 when both classes are known and
  equal (i = j only with include_self); each row is divided by its sum. Rows with no known
  same-class neighbour are all zero (they do not count in `graph_loss`).

  Returns:
    (B, B) float32 without gradient.
  """
  probs = jax.nn.softmax(jax.lax.stop_gradient(_f32(teacher_logits)), axis=-1)
  known = labeled | (jnp.max(probs, axis=-1) >= threshold)
  cls = jnp.where(labeled, labels, jnp.argmax(probs, axis=-1))
  g = (known[:, None] & known[None, :] & (cls[:, None] == cls[None, :])).astype(jnp.float32)
  if not include_self:
    g = g * (1.0 - jnp.eye(g.shape[-1], dtype=jnp.float32))
  return g / jnp.maximum(jnp.sum(g, axis=-1, keepdims=True), 1.0)


def graph_loss(similarity: Array, target_graph: Array) -> Array:
  """Cross-entropy -sum_i G[j, i] log S[j, i], averaged over the rows j of G that are not empty.

  Trains the attention head of the decoupled graph towards same-class neighbours. log S is
  floored at 1e-30 (an underflowed entry of S then gets no gradient; cosine logits never underflow).
  """
  s, g = _f32(similarity), jax.lax.stop_gradient(_f32(target_graph))
  ce = -jnp.sum(g * jnp.log(jnp.maximum(s, 1e-30)), axis=-1)
  rows = (jnp.sum(g, axis=-1) > 0).astype(jnp.float32)
  return jnp.sum(ce * rows) / jnp.maximum(jnp.sum(rows), 1.0)


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
                  mask: Optional[Array] = None, normalization: str = 'labeled') -> Array:
  """Supervised term of Eq. 6 / 14 / 15: -sum_k y_k log softmax(p)_k over the labeled examples.

  Args:
    logits: (B, K).
    labels: (B,) integer ids; entries where mask is False may hold anything (e.g. -1).
    weights: optional (B,) per-example weights, e.g. `imbalance_weight` (Eq. 14).
    mask: optional (B,) which examples are labeled.
    normalization: 'labeled' divides the sum by the number of labeled examples (a mean over
      them); 'batch' divides it by the batch size B (Eq. 6's sum over one batch / B, the Mean
      Teacher reference's `CrossEntropyLoss(size_average=False)(...) / minibatch_size`). With 10
      labeled examples in 100, 'batch' makes the term 10x lighter.
  """
  logits = _f32(logits)
  safe = jnp.clip(labels, 0, logits.shape[-1] - 1)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), safe[:, None], axis=-1)[:, 0]
  if normalization == 'labeled':
    return _weighted_mean(nll, weights, mask)
  if normalization == 'batch':
    return _weighted_sum(nll, weights, mask) / nll.shape[0]
  raise ValueError(f'unknown supervised normalization {normalization!r}; choose one of '
                   f'{SUPERVISED_NORMALIZATIONS}')


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


# config.sntg.distance: the squared distance of two embeddings as a mean over their D dimensions
# (the public code: `T.mean(squared_error(...), axis=1)`) or a sum (Luo et al.: ||h_i - h_j||^2).
SNTG_DISTANCES = ('mean', 'sum')


def sntg_loss(embeddings: Array, teacher_logits: Array, margin: float = 1.0,
              labels: Optional[Array] = None, distance: str = 'mean') -> Array:
  """Smooth Neighbors on Teacher Graphs (Luo et al. 2018), over all pairs of the batch.

  W_ij = 1 when i and j have the same target class: the true label of a labeled row (`labels`
  >= 0; -1 marks an unlabeled row), else the teacher's prediction (the public code's default,
  `merge = True`). Neighbours are pulled together (d_ij^2), non-neighbours pushed to at least
  `margin` apart (max(0, m - d_ij)^2), d_ij^2 the squared distance by `distance` (SNTG_DISTANCES).
  Averaged over the B(B-1) ordered pairs i != j (the public code pairs the batch's two halves: the
  same expectation).
  """
  h = _f32(embeddings)
  target = jnp.argmax(jax.lax.stop_gradient(teacher_logits), axis=-1)
  if labels is not None:
    target = jnp.where(labels >= 0, labels, target)
  same = (target[:, None] == target[None, :]).astype(jnp.float32)
  sq_norms = jnp.sum(h * h, axis=-1)
  gram = jnp.matmul(h, h.T, precision=_HIGHEST)
  d2 = jnp.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * gram, 0.0)
  if distance == 'mean':
    d2 = d2 / h.shape[-1]
  # sqrt has an infinite derivative at 0; pairs at distance 0 only matter in the pull term.
  d = jnp.sqrt(jnp.where(d2 > 1e-12, d2, 1.0)) * (d2 > 1e-12)
  pair = same * d2 + (1.0 - same) * jnp.maximum(margin - d, 0.0) ** 2
  b = h.shape[0]
  off_diagonal = 1.0 - jnp.eye(b, dtype=jnp.float32)
  return jnp.sum(pair * off_diagonal) / max(b * (b - 1), 1)


def lee2013_weight(epoch: Array, start_epoch: float = 100.0, end_epoch: float = 600.0,
                   final_weight: float = 3.0) -> Array:
  """alpha(t) of Lee 2013 (Pseudo-Label): 0 before epoch T1 = `start_epoch`, rising linearly to
  alpha_f = `final_weight` at T2 = `end_epoch`, alpha_f after (Lee's T1 = 100, T2 = 600, 3)."""
  t = jnp.clip((jnp.asarray(epoch, jnp.float32) - start_epoch) / (end_epoch - start_epoch),
               0.0, 1.0)
  return final_weight * t


def sigmoid_rampup(step: Array, rampup_steps: float) -> Array:
  """exp(-5 (1 - t/T)^2) of Laine & Aila 2017, the ramp-up of w1 (and w2) in Mean Teacher."""
  if rampup_steps <= 0:
    return jnp.ones((), jnp.float32)
  t = jnp.clip(jnp.asarray(step, jnp.float32) / rampup_steps, 0.0, 1.0)
  return jnp.exp(-5.0 * (1.0 - t) ** 2)
