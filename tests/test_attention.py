"""The ALC attention head against NumPy references; ablation variants' shapes; diagnostics."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alc_jax import attention, losses
from configs import default
from tests.conftest import np_softmax


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


@pytest.mark.parametrize('include_self', [True, False])
@pytest.mark.parametrize('kind', ['sample', 'gaussian', 'cosine'])
def test_pairwise_similarities_match_reference(rng, kind, include_self):
  x = rng.normal(size=(5, 6))
  got = attention.pairwise_similarity(x, kind, temperature=0.5, include_self=include_self)
  off_diagonal = 1 - np.eye(5)
  if kind == 'sample':  # Eq. 16; without the self-pairs the row softmax is over the others.
    logits = x @ x.T if include_self else np.where(off_diagonal > 0, x @ x.T, -np.inf)
    ref = np_softmax(logits)
  else:
    n = x / np.linalg.norm(x, axis=1, keepdims=True)
    d2 = ((n[:, None] - n[None]) ** 2).sum(-1)
    ref = np.exp(-d2 / 0.5) if kind == 'gaussian' else n @ n.T  # Eq. 17 / 18
    ref = ref if include_self else ref * off_diagonal  # Rows not normalised: zeros on i = j.
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_generalized_max_pool_matches_primal_solution(rng):
  x = rng.normal(size=(2, 3, 3, 5))
  got = np.asarray(attention.generalized_max_pool(x, ridge=0.7))
  for b in range(2):
    phi = x[b].reshape(9, 5)
    ref = np.linalg.solve(phi.T @ phi + 0.7 * np.eye(5), phi.T @ np.ones(9))
    np.testing.assert_allclose(got[b], ref, rtol=1e-3, atol=1e-4)


def test_spd_solve_matches_numpy_and_lapack_gradients(rng):
  """The LAPACK-free solve of generalized max pooling: values against NumPy, gradients
  against jnp.linalg.solve's, on a batch of random SPD systems like the pooling's."""
  phi = rng.normal(size=(3, 7, 4)).astype(np.float32)
  a = phi @ np.swapaxes(phi, -1, -2) + 0.5 * np.eye(7, dtype=np.float32)
  b = rng.normal(size=(3, 7, 2)).astype(np.float32)
  np.testing.assert_allclose(attention.spd_solve(a, b), np.linalg.solve(a, b), rtol=1e-3,
                             atol=1e-4)
  loss = lambda solve: lambda a, b: jnp.sum(jnp.sin(solve(a, b)))
  got = jax.grad(loss(attention.spd_solve), argnums=(0, 1))(a, b)
  want = jax.grad(loss(jnp.linalg.solve), argnums=(0, 1))(a, b)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)


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
  # A group computes the same S alone as beside other groups. Up to float32 rounding, which
  # differs between the batched and the unbatched kernels and by CPU: the solve of generalized
  # max pooling (condition numbers up to ~40 here) and the cosine logits' 1/temperature (10)
  # amplify it to 8e-5 relative on CI's CPU (1.8e-5 on ours). Mixing groups moves S by 0.2-0.4.
  np.testing.assert_allclose(s[1], head.apply(variables, x[1]), rtol=3e-4, atol=1e-5)
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
  true = rng.integers(0, 3, size=8)
  true[:2] = labels[:2]
  true[7] = -1  # Unknown true class (e.g. streamed data): left out of the all-pairs share.
  out = attention.similarity_diagnostics(jnp.asarray(s), jnp.asarray(np.where(labeled, labels, -1)),
                                         jnp.asarray(labeled), jnp.asarray(true))

  def share(weights, cls, valid):
    same = num = 0.0
    for j in range(8):
      for i in range(8):
        if i != j and valid[i] and valid[j]:
          num += weights[j, i]
          same += weights[j, i] * (cls[i] == cls[j])
    return same / max(num, 1e-12)

  np.testing.assert_allclose(out['similarity_diagonal'], np.mean(np.diag(s)), rtol=1e-5)
  np.testing.assert_allclose(out['similarity_entropy'], np.mean(-(s * np.log(s)).sum(1)), rtol=1e-5)
  np.testing.assert_allclose(out['similarity_same_class_labeled'], share(s, labels, labeled),
                             rtol=1e-5)
  np.testing.assert_allclose(out['similarity_same_class'], share(s, true, true >= 0), rtol=1e-5)
  np.testing.assert_allclose(out['same_class_chance'], share(np.ones((8, 8)), true, true >= 0),
                             rtol=1e-5)
  assert 'similarity_same_class' not in attention.similarity_diagnostics(
      jnp.asarray(s), jnp.asarray(labels), jnp.asarray(labeled))


@pytest.mark.parametrize('include_self', [True, False])
def test_logit_spread_matches_reference(rng, include_self):
  z = rng.normal(size=(7, 7)) * rng.random((7, 1)) * 5
  ref = np.mean([np.std(np.delete(z[j], [] if include_self else [j])) for j in range(7)])
  np.testing.assert_allclose(attention.logit_spread(jnp.asarray(z), include_self), ref, rtol=1e-5)


@pytest.mark.parametrize('kind', ['dot', 'scaled_dot', 'cosine'])
def test_head_logits_match_reference_and_sow_their_spread(rng, kind):
  """The head's S is softmax(logits(x_avg, x_max)) computed from its own MLP outputs in NumPy."""
  x = rng.normal(size=(6, 3, 3, 8)).astype(np.float32)
  head = attention.SampleAttention(se_reduction=2, channel_attention=False, logits=kind,
                                   temperature=0.2)
  params = head.init(jax.random.key(1), x)['params']
  s, inter = head.apply({'params': params}, x, mutable=['intermediates'])
  mlp = jax.tree.map(np.asarray, params['shared_mlp'])
  mlp_np = lambda v: np.maximum(v @ mlp['hidden']['kernel'] + mlp['hidden']['bias'], 0) @ (
      mlp['out']['kernel']) + mlp['out']['bias']
  x64 = x.astype(np.float64)
  x_avg, x_max = mlp_np(x64.mean((1, 2))), mlp_np(x64.max((1, 2)))
  if kind == 'cosine':
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
    z = unit(x_avg) @ unit(x_max).T / 0.2
  else:
    z = x_avg @ x_max.T / (np.sqrt(x_avg.shape[1]) if kind == 'scaled_dot' else 1.0)
  np.testing.assert_allclose(s, np_softmax(z), rtol=1e-4, atol=1e-6)
  spread = jax.tree.leaves(inter)[0]
  np.testing.assert_allclose(spread, np.mean(z.std(1)), rtol=1e-4)


def test_cosine_logits_are_bounded_by_the_temperature(rng):
  """However large the features, a cosine row cannot be sharper than softmax of +-1/tau."""
  x = 1e3 * rng.normal(size=(10, 2, 2, 4)).astype(np.float32)
  head = attention.SampleAttention(se_reduction=2, logits='cosine', temperature=0.5)
  s = np.asarray(head.apply(head.init(jax.random.key(0), x), x))
  assert s.max() <= np.exp(2) / (np.exp(2) + 9 * np.exp(-2)) + 1e-6


def test_learned_temperature_starts_at_its_value_and_respects_the_floor(rng):
  x = rng.normal(size=(5, 2, 2, 4)).astype(np.float32)
  head = attention.SampleAttention(se_reduction=2, logits='cosine', temperature=0.3,
                                   learned_temperature=True, temperature_floor=0.05)
  variables = head.init(jax.random.key(0), x)
  raw = variables['params']['temperature_raw']
  np.testing.assert_allclose(0.05 + np.log1p(np.exp(raw)), 0.3, rtol=1e-5)
  fixed = attention.SampleAttention(se_reduction=2, logits='cosine', temperature=0.3)
  np.testing.assert_allclose(head.apply(variables, x), fixed.apply(variables, x), rtol=1e-5)
  low = jax.tree.map(lambda a: a, variables)
  low['params']['temperature_raw'] = jnp.asarray(-1e4)  # softplus -> 0: tau at the floor.
  floor = attention.SampleAttention(se_reduction=2, logits='cosine', temperature=0.05)
  np.testing.assert_allclose(head.apply(low, x), floor.apply(variables, x), rtol=1e-4, atol=1e-7)
  with pytest.raises(ValueError, match='temperature_floor'):
    attention.SampleAttention(logits='cosine', temperature=0.01, learned_temperature=True,
                              temperature_floor=0.05).init(jax.random.key(0), x)


def test_detached_head_input_stops_the_gradient_at_the_features(rng):
  x = jnp.asarray(rng.normal(size=(6, 2, 2, 4)).astype(np.float32))
  for detach in (False, True):
    head = attention.SampleAttention(se_reduction=2, detach_input=detach)
    variables = head.init(jax.random.key(0), x)
    g_x = jax.grad(lambda x: jnp.sum(head.apply(variables, x) * jnp.arange(36.).reshape(6, 6)))(x)
    assert (np.abs(np.asarray(g_x)).sum() == 0) == detach


def test_global_max_pool_is_the_max_with_a_one_hot_gradient():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 4, 6)).astype(np.float32)
  np.testing.assert_array_equal(attention.global_max_pool(x), np.max(x, axis=(-3, -2)))
  grad = np.asarray(jax.grad(lambda v: jnp.sum(attention.global_max_pool(v)))(x))
  flat = x.reshape(2, 3, 20, 6)
  want = (flat == flat.max(axis=2, keepdims=True)).astype(np.float32).reshape(x.shape)
  np.testing.assert_array_equal(grad, want)
