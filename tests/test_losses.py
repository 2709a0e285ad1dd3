"""Each loss of alc_jax.losses against an independent float64 NumPy reference on fresh random inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alc_jax import losses


@pytest.fixture
def rng():
  # A fresh seed per run, printed on failure, so the tests check the function, not one input.
  seed = np.random.SeedSequence().entropy % (2**32)
  print('numpy seed', seed)
  return np.random.default_rng(seed)


def np_softmax(x):
  x = x - x.max(-1, keepdims=True)
  e = np.exp(x)
  return e / e.sum(-1, keepdims=True)


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


def test_cross_entropy_with_weights_and_mask(rng):
  z = rng.normal(size=(10, 4))
  y = rng.integers(0, 4, size=10)
  w = rng.random(10)
  m = rng.random(10) < 0.5
  m[0] = True
  y_hidden = np.where(m, y, -1)
  nll = -np.log(np_softmax(z)[np.arange(10), y])
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


def test_sntg_loss_matches_reference(rng):
  h = rng.normal(size=(7, 3))
  t = rng.normal(size=(7, 4))
  pred = t.argmax(1)
  total = 0.0
  for i in range(7):
    for j in range(7):
      if i != j:
        d = np.linalg.norm(h[i] - h[j])
        total += d ** 2 if pred[i] == pred[j] else max(0.0, 1.5 - d) ** 2
  close(losses.sntg_loss(h, t, margin=1.5), total / 42, 1e-4)


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
