"""Each loss of alc_jax.losses against an independent float64 NumPy reference on fresh random inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alc_jax import losses
from tests.conftest import np_softmax


@pytest.fixture
def rng():
  # A fresh seed per run, printed on failure, so the tests check the function, not one input.
  seed = np.random.SeedSequence().entropy % (2**32)
  print('numpy seed', seed)
  return np.random.default_rng(seed)


def np_similarity(x_max, x_avg, include_self=True):
  b = x_max.shape[0]
  s = np.zeros((b, b))
  for j in range(b):
    logits = np.array([x_max[i] @ x_avg[j] for i in range(b)])
    if not include_self:
      logits[j] = -np.inf
    s[j] = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
  return s


def np_label_consistency(s, p):
  b = p.shape[0]
  return sum(s[j, i] * np.sum((p[i] - p[j]) ** 2) for i in range(b) for j in range(b)) / b


def close(a, b, tol=1e-5):
  np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tol, atol=tol)


@pytest.mark.parametrize('include_self', [True, False])
def test_alc_similarity_matches_reference(rng, include_self):
  x_max, x_avg = rng.normal(size=(2, 9, 5))
  s = losses.alc_similarity(x_max, x_avg, include_self=include_self)
  close(s, np_similarity(x_max, x_avg, include_self))
  close(s.sum(1), np.ones(9))
  if not include_self:
    assert np.all(np.diag(np.asarray(s)) == 0)


def test_alc_similarity_is_stable_for_large_logits(rng):
  x_max, x_avg = 300.0 * rng.normal(size=(2, 6, 4))
  s = np.asarray(losses.alc_similarity(x_max, x_avg))
  assert np.all(np.isfinite(s))
  close(s.sum(1), np.ones(6))


def test_alc_similarity_is_permutation_equivariant(rng):
  x_max, x_avg = rng.normal(size=(2, 7, 3))
  perm = rng.permutation(7)
  s = np.asarray(losses.alc_similarity(x_max, x_avg))
  s_perm = np.asarray(losses.alc_similarity(x_max[perm], x_avg[perm]))
  close(s_perm, s[np.ix_(perm, perm)])


def test_label_consistency_matches_reference(rng):
  s = np_softmax(rng.normal(size=(11, 11)))
  p = rng.normal(size=(11, 4))
  close(losses.label_consistency(s, p), np_label_consistency(s, p), 1e-4)
  # Unnormalised (e.g. cosine, possibly negative) similarities too.
  s2 = rng.normal(size=(11, 11))
  close(losses.label_consistency(s2, p), np_label_consistency(s2, p), 1e-4)


def test_label_consistency_gradient_matches_reference(rng):
  s = np_softmax(rng.normal(size=(6, 6)))
  p = rng.normal(size=(6, 3))
  grad_p, grad_s = jax.grad(lambda p, s: losses.label_consistency(s, p), argnums=(0, 1))(
      jnp.asarray(p), jnp.asarray(s))
  # d/dp_k of (1/B) sum_ji s_ji ||p_i - p_j||^2 = (2/B) sum_j (s_jk + s_kj)(p_k - p_j).
  ref_p = np.stack([2 / 6 * sum((s[j, k] + s[k, j]) * (p[k] - p[j]) for j in range(6))
                    for k in range(6)])
  ref_s = np.array([[np.sum((p[i] - p[j]) ** 2) / 6 for i in range(6)] for j in range(6)])
  close(grad_p, ref_p, 1e-4)
  close(grad_s, ref_s, 1e-4)


def test_label_consistency_does_not_build_bbk_tensor():
  b, k = 512, 1000
  jaxpr = jax.make_jaxpr(losses.label_consistency)(jnp.zeros((b, b)), jnp.zeros((b, k)))
  sizes = [np.prod(v.aval.shape) for eqn in jaxpr.eqns for v in eqn.outvars]
  assert max(sizes) <= max(b * b, b * k)


def test_label_consistency_bf16_accumulates_in_float32(rng):
  s = np_softmax(rng.normal(size=(16, 16)))
  p = rng.normal(size=(16, 10))
  out = losses.label_consistency(jnp.asarray(s, jnp.bfloat16), jnp.asarray(p, jnp.bfloat16))
  assert out.dtype == jnp.float32
  close(out, np_label_consistency(s, p), 5e-2)


def test_class_prior_and_weights(rng):
  labels = rng.integers(0, 5, size=40)
  mask = rng.random(40) < 0.7
  r = np.bincount(labels[mask], minlength=5) / mask.sum()
  close(losses.class_prior(labels, 5, mask), r)
  close(losses.class_prior(labels[mask], 5), r)
  ids = rng.integers(0, 5, size=12)
  close(losses.imbalance_weight(ids, r), 1 - r[ids])
  z = rng.normal(size=(12, 5))
  ref = np_softmax(z).max(1) * (1 - r[z.argmax(1)])
  close(losses.soft_imbalance_weight(z, r), ref)


def _cross_entropy_inputs(rng):
  """Logits, labels, weights, a labeled mask (at least one) and the per-example NLL in NumPy."""
  z = rng.normal(size=(10, 4))
  y = rng.integers(0, 4, size=10)
  w = rng.random(10)
  m = rng.random(10) < 0.5
  m[0] = True
  return z, y, w, m, -np.log(np_softmax(z)[np.arange(10), y])


def test_cross_entropy_with_weights_and_mask(rng):
  z, y, w, m, nll = _cross_entropy_inputs(rng)
  y_hidden = np.where(m, y, -1)
  close(losses.cross_entropy(z, y), nll.mean())
  close(losses.cross_entropy(z, y_hidden, w, m), (w * m * nll).sum() / m.sum())


def test_softmax_mse_and_teacher_gets_no_gradient(rng):
  s, t = rng.normal(size=(2, 8, 6))
  w = rng.random(8)
  ref = (w * ((np_softmax(s) - np_softmax(t)) ** 2).sum(1) / 6).mean()
  close(losses.softmax_mse(s, t, w), ref)
  grad_t = jax.grad(lambda t: losses.softmax_mse(jnp.asarray(s), t))(jnp.asarray(t))
  assert np.all(np.asarray(grad_t) == 0)
  grad_s = jax.grad(lambda s: losses.softmax_mse(s, jnp.asarray(t)))(jnp.asarray(s))
  assert np.any(np.asarray(grad_s) != 0)


def test_soft_weight_gets_no_gradient(rng):
  z = jnp.asarray(rng.normal(size=(5, 3)))
  g = jax.grad(lambda z: losses.soft_imbalance_weight(z, jnp.ones(3) / 3).sum())(z)
  assert np.all(np.asarray(g) == 0)


def test_pseudo_label_entropy_kl(rng):
  z = rng.normal(size=(9, 4)) * 2
  p = np_softmax(z)
  keep = p.max(1) >= 0.6
  nll = -np.log(p[np.arange(9), p.argmax(1)])
  close(losses.pseudo_label_loss(z, 0.6), nll[keep].sum() / max(keep.sum(), 1))
  close(losses.entropy(z), (-(p * np.log(p)).sum(1)).mean())
  t = rng.normal(size=(9, 4))
  pt = np_softmax(t)
  close(losses.kl_divergence(t, z), (pt * (np.log(pt) - np.log(p))).sum(1).mean())


@pytest.mark.parametrize('distance', ['mean', 'sum'])
def test_sntg_loss_matches_reference(rng, distance):
  """The public code's form: labeled rows' targets are their labels (merge), the squared
  distance a mean over the dimensions (or Luo et al.'s sum)."""
  h = rng.normal(size=(7, 3))
  t = rng.normal(size=(7, 4))
  labels = np.array([(t[0].argmax() + 1) % 4, -1, 2, -1, -1, 0, -1])  # Row 0 against its target.
  target = np.where(labels >= 0, labels, t.argmax(1))
  total = 0.0
  for i in range(7):
    for j in range(7):
      if i != j:
        d2 = ((h[i] - h[j]) ** 2).sum() / (3 if distance == 'mean' else 1)
        total += d2 if target[i] == target[j] else max(0.0, 1.5 - np.sqrt(d2)) ** 2
  close(losses.sntg_loss(h, t, margin=1.5, labels=labels, distance=distance), total / 42, 1e-4)
  # Without labels every row's target is the teacher's prediction.
  without = losses.sntg_loss(h, t, margin=1.5, distance=distance)
  labels_of_predictions = losses.sntg_loss(h, t, 1.5, t.argmax(1), distance)
  close(without, labels_of_predictions, 1e-6)


def test_lee2013_pseudo_label_weight():
  """Lee 2013: alpha(t) = 0 before T1 = 100, (t - T1) / (T2 - T1) * 3 up to T2 = 600, then 3."""
  epochs = np.array([0.0, 99.0, 100.0, 350.0, 599.0, 600.0, 1000.0])
  want = [0.0, 0.0, 0.0, 1.5, 3.0 * 499 / 500, 3.0, 3.0]
  close(losses.lee2013_weight(epochs), want, 1e-6)
  close(losses.lee2013_weight(12.0, start_epoch=2.0, end_epoch=22.0, final_weight=1.0), 0.5, 1e-6)


def test_sigmoid_rampup():
  close(losses.sigmoid_rampup(0, 10), np.exp(-5.0))
  close(losses.sigmoid_rampup(5, 10), np.exp(-5 * 0.25))
  close(losses.sigmoid_rampup(50, 10), 1.0)
  close(losses.sigmoid_rampup(3, 0), 1.0)


def test_losses_jit_and_vmap(rng):
  s = jnp.asarray(np_softmax(rng.normal(size=(3, 5, 5))))
  p = jnp.asarray(rng.normal(size=(3, 5, 2)))
  out = jax.jit(jax.vmap(losses.label_consistency))(s, p)
  for r in range(3):
    close(out[r], np_label_consistency(np.asarray(s[r]), np.asarray(p[r])), 1e-4)


@pytest.mark.parametrize('kind', ['dot', 'scaled_dot', 'cosine'])
@pytest.mark.parametrize('include_self', [True, False])
def test_attention_logits_and_similarity_match_reference(rng, kind, include_self):
  x_max, x_avg = rng.normal(size=(2, 8, 5)) * 3
  b, d = x_max.shape
  if kind == 'cosine':
    z = np.array([[x_avg[j] @ x_max[i] / np.linalg.norm(x_avg[j]) / np.linalg.norm(x_max[i]) / 0.3
                   for i in range(b)] for j in range(b)])
  else:
    z = np.array([[x_avg[j] @ x_max[i] for i in range(b)] for j in range(b)])
    z = z / np.sqrt(d) if kind == 'scaled_dot' else z
  close(losses.attention_logits(x_max, x_avg, kind, 0.3), z, 1e-4)
  masked = np.where(np.eye(b, dtype=bool) & (not include_self), -np.inf, z)
  close(losses.alc_similarity(x_max, x_avg, include_self, kind, 0.3), np_softmax(masked), 1e-4)
  with pytest.raises(ValueError, match='attention logits'):
    losses.attention_logits(x_max, x_avg, 'euclid')


@pytest.mark.parametrize('pairwise_scale,divisor', [('batch', 9), ('pairs', 81),
                                                   ('pairs_classes', 81 * 4)])
def test_label_consistency_pairwise_scales(rng, pairwise_scale, divisor):
  s = np_softmax(rng.normal(size=(9, 9)))
  p = rng.normal(size=(9, 4))
  total = np_label_consistency(s, p) * 9  # The plain sum of Eq. 13.
  close(losses.label_consistency(s, p, pairwise_scale), total / divisor, 1e-4)
  with pytest.raises(ValueError, match='pairwise_scale'):
    losses.label_consistency(s, p, 'rows')


def test_entropy_penalty_matches_reference_and_has_a_finite_minimiser(rng):
  b, beta = 7, 0.7
  p = rng.normal(size=(b, 3))
  d = np.array([[np.sum((p[i] - p[j]) ** 2) for i in range(b)] for j in range(b)])
  s = np_softmax(rng.normal(size=(b, b)))
  ref = (np.sum(s * d) + beta * np.sum(s * np.log(s))) / b
  close(losses.label_consistency(s, p, 'batch', beta), ref, 1e-4)
  # Over the logits of a row of S, the minimiser is softmax(-d / beta): the gradient vanishes
  # there, and random moves away from it only increase the loss.
  loss_of_logits = lambda z: losses.label_consistency(jax.nn.softmax(z, -1), jnp.asarray(p),
                                                      'batch', beta)
  z_star = jnp.asarray(-d / beta)
  close(jax.grad(loss_of_logits)(z_star), np.zeros((b, b)), 1e-4)
  best = float(loss_of_logits(z_star))
  for _ in range(5):
    assert float(loss_of_logits(z_star + jnp.asarray(rng.normal(size=(b, b))))) > best
  # Without the penalty the same point is not a minimiser: sharper rows do better.
  plain = lambda z: losses.label_consistency(jax.nn.softmax(z, -1), jnp.asarray(p))
  assert float(plain(10 * z_star)) < float(plain(z_star))


def test_decoupled_label_consistency_matches_reference_and_detaches(rng):
  b = 6
  s = np_softmax(rng.normal(size=(b, b)))
  o, t = rng.normal(size=(2, b, 4))
  ref = sum(s[j, i] * np.sum((o[j] - t[i]) ** 2) for i in range(b) for j in range(b))
  for pairwise_scale, divisor in (('batch', b), ('pairs', b * b), ('pairs_classes', b * b * 4)):
    close(losses.decoupled_label_consistency(s, o, t, pairwise_scale), ref / divisor, 1e-4)
  g_s, g_o, g_t = jax.grad(lambda s, o, t: losses.decoupled_label_consistency(s, o, t),
                           argnums=(0, 1, 2))(jnp.asarray(s), jnp.asarray(o), jnp.asarray(t))
  assert np.all(np.asarray(g_s) == 0) and np.all(np.asarray(g_t) == 0)
  ref_o = np.stack([2 / b * sum(s[j, i] * (o[j] - t[i]) for i in range(b)) for j in range(b)])
  close(g_o, ref_o, 1e-4)


@pytest.mark.parametrize('include_self', [True, False])
def test_class_graph_and_graph_loss_match_reference(rng, include_self):
  b, k, threshold = 10, 3, 0.6
  labels = rng.integers(0, k, size=b)
  labeled = rng.random(b) < 0.4
  z = rng.normal(size=(b, k)) * 2
  probs = np_softmax(z)
  known = labeled | (probs.max(1) >= threshold)
  cls = np.where(labeled, labels, probs.argmax(1))
  g = np.zeros((b, b))
  for j in range(b):
    for i in range(b):
      if known[i] and known[j] and cls[i] == cls[j] and (include_self or i != j):
        g[j, i] = 1.0
  g = g / np.maximum(g.sum(1, keepdims=True), 1)
  out = losses.class_graph(jnp.asarray(np.where(labeled, labels, -1)), jnp.asarray(labeled),
                           jnp.asarray(z), threshold, include_self)
  close(out, g)
  s = np_softmax(rng.normal(size=(b, b)))
  rows = g.sum(1) > 0
  ref = -(g * np.log(s)).sum(1)[rows].mean() if rows.any() else 0.0
  close(losses.graph_loss(s, g), ref, 1e-4)
  # The target graph carries no gradient.
  grad_z = jax.grad(lambda z: losses.graph_loss(jnp.asarray(s), losses.class_graph(
      jnp.asarray(labels), jnp.asarray(labeled), z, threshold)))(jnp.asarray(z))
  assert np.all(np.asarray(grad_z) == 0)


def test_cross_entropy_batch_normalization(rng):
  z, y, w, m, nll = _cross_entropy_inputs(rng)
  # Sum over the labeled examples / whole batch (Eq. 6; Mean Teacher's size_average=False / B).
  close(losses.cross_entropy(z, np.where(m, y, -1), w, m, 'batch'), (w * m * nll).sum() / 10)
  close(losses.cross_entropy(z, y, normalization='batch'), nll.mean())
  with pytest.raises(ValueError, match='normalization'):
    losses.cross_entropy(z, y, normalization='examples')
