"""The ALC attention head against NumPy references; ablation variants' shapes; diagnostics."""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alc_jax import attention, losses
from configs import default


def np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def dense(p, x):
  return x @ np.asarray(p['kernel'], np.float64) + np.asarray(p['bias'], np.float64)


def np_head(params, x, channel_attention=True):
  """Eq. 7-12 written out independently in float64."""
  x = x.astype(np.float64)
  if channel_attention:
    ca = params['channel_attention']
    u = np.maximum(dense(ca['squeeze'], x.mean((1, 2))), 0)
    u = 1 / (1 + np.exp(-dense(ca['excite'], u)))
    x = x + u[:, None, None, :] * x
  mlp = lambda v: dense(params['shared_mlp']['out'],
                        np.maximum(dense(params['shared_mlp']['hidden'], v), 0))
  x_avg, x_max = mlp(x.mean((1, 2))), mlp(x.max((1, 2)))
  return np_softmax(x_avg @ x_max.T)


@pytest.fixture
def rng():
  return np.random.default_rng(np.random.SeedSequence().entropy % (2**32))


@pytest.mark.parametrize('channel_attention', [True, False])
def test_head_matches_reference(rng, channel_attention):
  x = rng.normal(size=(6, 4, 3, 8)).astype(np.float32)
  head = attention.SampleAttention(channel_attention=channel_attention, se_reduction=4)
  params = head.init(jax.random.key(int(rng.integers(1 << 30))), x)['params']
  s = head.apply({'params': params}, x)
  np.testing.assert_allclose(s, np_head(params, x, channel_attention), rtol=1e-4, atol=1e-5)


def test_head_is_permutation_equivariant(rng):
  x = rng.normal(size=(7, 3, 3, 4)).astype(np.float32)
  head = attention.SampleAttention(se_reduction=2)
  variables = head.init(jax.random.key(0), x)
  perm = rng.permutation(7)
  s = np.asarray(head.apply(variables, x))
  np.testing.assert_allclose(head.apply(variables, x[perm]), s[np.ix_(perm, perm)], atol=1e-6)


@pytest.mark.parametrize('kind', ['sample', 'gaussian', 'cosine'])
def test_pairwise_similarities_match_reference(rng, kind):
  x = rng.normal(size=(5, 6))
  got = attention.pairwise_similarity(x, kind, temperature=0.5)
  if kind == 'sample':
    ref = np_softmax(x @ x.T)  # Eq. 16
  else:
    n = x / np.linalg.norm(x, axis=1, keepdims=True)
    d2 = ((n[:, None] - n[None]) ** 2).sum(-1)
    ref = np.exp(-d2 / 0.5) if kind == 'gaussian' else n @ n.T  # Eq. 17 / 18
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_generalized_max_pool_matches_primal_solution(rng):
  x = rng.normal(size=(2, 3, 3, 5))
  got = np.asarray(attention.generalized_max_pool(x, ridge=0.7))
  for b in range(2):
    phi = x[b].reshape(9, 5)
    ref = np.linalg.solve(phi.T @ phi + 0.7 * np.eye(5), phi.T @ np.ones(9))
    np.testing.assert_allclose(got[b], ref, rtol=1e-3, atol=1e-4)


VARIANTS = list(itertools.product(attention.POOLINGS, [True, False])) + [
    ('max_avg', kind) for kind in ('sample', 'gaussian', 'cosine')]


@pytest.mark.parametrize('pooling,variant', VARIANTS)
def test_variants_shapes_and_groups(rng, pooling, variant):
  config = default.get_config().alc
  config.pooling = pooling
  if isinstance(variant, bool):
    config.channel_attention = variant
  else:
    config.similarity = variant
  config.se_reduction = 2
  head = attention.create_head(config)
  x = rng.normal(size=(2, 4, 3, 3, 6)).astype(np.float32)  # 2 groups of 4 samples.
  variables = head.init(jax.random.key(1), x)
  s = np.asarray(head.apply(variables, x))
  assert s.shape == (2, 4, 4) and np.all(np.isfinite(s))
  # A group computes the same S alone as beside other groups.
  np.testing.assert_allclose(s[1], head.apply(variables, x[1]), rtol=1e-5, atol=1e-6)
  if variant in (True, False):
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-5)


def test_include_self_false_masks_diagonal(rng):
  head = attention.SampleAttention(include_self=False, se_reduction=2)
  x = rng.normal(size=(5, 2, 2, 4)).astype(np.float32)
  s = np.asarray(head.apply(head.init(jax.random.key(0), x), x))
  assert np.all(np.diag(s) == 0)
  np.testing.assert_allclose(s.sum(1), 1.0, rtol=1e-5)


def test_unknown_variants_are_rejected():
  config = default.get_config().alc
  config.similarity = 'euclid'
  with pytest.raises(ValueError, match='similarity'):
    attention.create_head(config)
  head = attention.SampleAttention(pooling='median')
  with pytest.raises(ValueError, match='pooling'):
    head.init(jax.random.key(0), jnp.ones((2, 2, 2, 3)))


def test_label_consistency_trains_the_head(rng):
  """Eq. 13 is the only loss reaching the head: its gradient must be non-zero there."""
  x = rng.normal(size=(6, 3, 3, 8)).astype(np.float32)
  p = rng.normal(size=(6, 4)).astype(np.float32)
  head = attention.SampleAttention(se_reduction=2)
  params = head.init(jax.random.key(0), x)['params']
  grads = jax.grad(lambda q: losses.label_consistency(head.apply({'params': q}, x), p))(params)
  norms = [float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)]
  assert all(n > 0 for n in norms), norms  # Every head parameter receives gradient.


def test_similarity_diagnostics_match_reference(rng):
  s = np_softmax(rng.normal(size=(8, 8)) * 2)
  labels = rng.integers(0, 3, size=8)
  labeled = rng.random(8) < 0.6
  labeled[:2] = True
  out = attention.similarity_diagnostics(jnp.asarray(s), jnp.asarray(labels), jnp.asarray(labeled))
  same = num = 0.0
  for j in range(8):
    for i in range(8):
      if i != j and labeled[i] and labeled[j]:
        num += s[j, i]
        same += s[j, i] * (labels[i] == labels[j])
  np.testing.assert_allclose(out['similarity_diagonal'], np.mean(np.diag(s)), rtol=1e-5)
  np.testing.assert_allclose(out['similarity_entropy'], np.mean(-(s * np.log(s)).sum(1)), rtol=1e-5)
  np.testing.assert_allclose(out['similarity_same_class'], same / max(num, 1e-12), rtol=1e-5)
