"""Tests of device-side normalisation and augmentation (alc_jax/data/augment.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alc_jax import cpu_setup
from alc_jax.data.augment import augment, augment_views
from alc_jax.data.normalization import Normalization, channel_stats, compute_zca, normalize


@pytest.fixture(scope='module')
def images():
  return np.random.default_rng(0).normal(size=(64, 8, 7, 3)).astype(np.float32)


def _shifted_copies(image, t):
  """NumPy reference: every crop of the reflect-padded image, keyed by shift (dy, dx)."""
  h, w, _ = image.shape
  padded = np.pad(image, ((t, t), (t, t), (0, 0)), mode='reflect')
  return {(oy - t, ox - t): padded[oy:oy + h, ox:ox + w]
          for oy in range(2 * t + 1) for ox in range(2 * t + 1)}


def _find_shift(image, candidates):
  return [s for s, c in candidates.items() if np.array_equal(image, c)]


def test_identity_when_disabled(images):
  out = augment(jax.random.key(0), images, translate=0, flip=False, noise_std=0.0)
  np.testing.assert_array_equal(np.asarray(out), images)


def test_translation_matches_reflect_pad_reference(images):
  out = np.asarray(augment(jax.random.key(1), images, translate=2, noise_std=0.0))
  shifts = []
  for x, y in zip(images, out):
    found = _find_shift(y, _shifted_copies(x, 2))
    assert found, 'output is not a reflect-padded crop with shift in [-2, 2]^2'
    shifts.append(found[0])
  # Random per example, and both axes vary independently.
  assert len(set(shifts)) > 10
  assert len({s[0] for s in shifts}) == 5 and len({s[1] for s in shifts}) == 5


def test_flip(images):
  out = np.asarray(augment(jax.random.key(2), images, translate=0, flip=True, noise_std=0.0))
  flipped = [np.array_equal(y, x[:, ::-1]) for x, y in zip(images, out)]
  kept = [np.array_equal(y, x) for x, y in zip(images, out)]
  assert all(f != k for f, k in zip(flipped, kept))  # Each example either flipped or untouched.
  assert 16 <= sum(flipped) <= 48  # p = 1/2 over 64 examples (|z| < 4).
  # Disabled: never flipped.
  out = np.asarray(augment(jax.random.key(2), images, translate=0, flip=False, noise_std=0.0))
  np.testing.assert_array_equal(out, images)


def test_noise_std():
  zeros = jnp.zeros((32, 16, 16, 3), jnp.float32)
  noise = np.asarray(augment(jax.random.key(3), zeros, translate=0, noise_std=0.15))
  assert noise.mean() == pytest.approx(0.0, abs=0.01)
  assert noise.std() == pytest.approx(0.15, rel=0.03)


def test_two_keys_give_different_draws(images):
  a = augment(jax.random.key(4), images, flip=True)
  b = augment(jax.random.key(5), images, flip=True)
  c = augment(jax.random.key(4), images, flip=True)
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(a, c)


def test_shape_dtype_and_raw_uint32_keys(images):
  for dtype in (jnp.float32, jnp.bfloat16):
    out = augment(jax.random.PRNGKey(0), jnp.asarray(images, dtype), flip=True)
    assert out.shape == images.shape and out.dtype == dtype
  as_uint8 = np.random.default_rng(1).integers(0, 256, (4, 5, 5, 1), dtype=np.uint8)
  out = augment(jax.random.key(0), as_uint8, flip=True, noise_std=0.0)
  assert out.dtype == jnp.uint8 and out.shape == as_uint8.shape
  with pytest.raises(ValueError, match='float images'):
    augment(jax.random.key(0), as_uint8)
  with pytest.raises(ValueError, match='translate < image size'):
    augment(jax.random.key(0), images, translate=7)


def test_jit_and_vmap(images):
  fn = jax.jit(functools.partial(augment, translate=2, flip=True, noise_std=0.15))
  key = jax.random.key(6)
  np.testing.assert_allclose(fn(key, images), augment(key, images, 2, True, 0.15), atol=1e-6)
  # vmap over independent runs: (R, N, H, W, C) with one key per run.
  runs = jnp.stack([images[:16], images[16:32]])
  keys = jax.random.split(key, 2)
  out = jax.jit(jax.vmap(fn))(keys, runs)
  assert out.shape == runs.shape
  np.testing.assert_allclose(out[1], fn(keys[1], runs[1]), atol=1e-6)


def test_views_drawn_together_equal_one_draw_each(images):
  """augment_views draws all views' noise in one call (faster on the CPU); each view is still
  the translation and flip of its key plus noise_std * normal(its key's noise key): bit for bit
  as the trainer compiles on the CPU (XLA's optimisations and fusion emitters on, threefry
  unrolled), within float32 rounding as tests/conftest.py compiles (the multiply-adds that XLA
  fuses differ)."""
  keys = list(jax.random.split(jax.random.key(8), 3))

  def one_by_one(keys, x):
    views = []
    for k in keys:
      view = augment(k, x, 2, True, 0.0)
      noise_key = jax.random.split(k, 3)[2]
      views.append(view + 0.15 * jax.random.normal(noise_key, view.shape, view.dtype))
    return views

  def compare(check, options=None):
    together = lambda keys, x: augment_views(keys, x, 2, True, 0.15)
    for n in (1, 2, 3):
      got, want = [jax.jit(f).lower(keys[:n], images).compile(options)(keys[:n], images)
                   for f in (together, one_by_one)]
      assert len(got) == n
      for view, reference in zip(got, want):
        check(view, reference)

  compare(functools.partial(np.testing.assert_allclose, rtol=0, atol=3e-7))
  if jax.default_backend() != 'cpu':
    return
  disabled = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', False)
  cpu_setup.lower_threefry(True)
  try:
    compare(np.testing.assert_array_equal, {'xla_cpu_use_fusion_emitters': True})
  finally:
    jax.config.update('jax_disable_most_optimizations', disabled)
    cpu_setup.lower_threefry('threefry' in cpu_setup.applied)
  np.testing.assert_array_equal(augment(keys[1], images, 2, True, 0.15),
                                augment_views(keys, images, 2, True, 0.15)[1])
  assert not augment_views([], images)


def test_normalize_matches_numpy():
  rng = np.random.default_rng(7)
  x = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
  mean, std = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])
  expected = (x / 255.0 - mean) / std
  out = normalize(x, mean, std)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  zca = rng.normal(size=(48, 48)).astype(np.float32) / 7
  out = normalize(x, mean, std, zca=zca)
  np.testing.assert_allclose(out, (expected.reshape(5, 48) @ zca).reshape(x.shape),
                             rtol=1e-4, atol=1e-4)
  # Grayscale with scalar statistics, and under jit.
  g = x[..., :1]
  np.testing.assert_allclose(jax.jit(normalize)(g, 0.286, 0.353), (g / 255.0 - 0.286) / 0.353,
                             rtol=1e-5, atol=1e-5)


def test_channel_statistics_and_zca_match_numpy():
  # channel_stats: mean and (population) std of x / 255 per channel. compute_zca: with z the
  # standardised images flattened in (H, W, C) order, mu = E[z], C = cov(z) (N - 1 in the
  # denominator) = U diag(d) U^T, W = U diag((d + 0.1)^-1/2) U^T (Mean Teacher's filter_bias).
  rng = np.random.default_rng(9)
  base = rng.normal(size=(300, 3, 3, 1)) * 30 + 120  # Correlated pixels: whitening has work.
  x = np.clip(base + rng.normal(size=(300, 3, 3, 2)) * [15, 25] + [0, 40], 0, 255).astype(
      np.uint8)
  mean, std = channel_stats(x)
  np.testing.assert_allclose(mean, (x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(std, (x / 255.0).std(axis=(0, 1, 2)), rtol=1e-5)
  z = ((x / 255.0 - mean.astype(np.float64)) / std.astype(np.float64)).reshape(300, 18)
  d, u = np.linalg.eigh(np.cov(z, rowvar=False))
  want = u @ np.diag(1 / np.sqrt(d + 0.1)) @ u.T
  for chunk_size in (5000, 64):  # Accumulated over chunks: the same matrix.
    zca, zca_mean = compute_zca(x, mean, std, chunk_size=chunk_size)
    np.testing.assert_allclose(zca_mean, z.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zca, want, rtol=1e-4, atol=1e-5)


def test_named_normalization_is_a_pytree_that_normalizes():
  rng = np.random.default_rng(8)
  x = rng.integers(0, 256, (3, 4, 4, 2), dtype=np.uint8)
  zca, zca_mean = rng.normal(size=(32, 32)) / 6, rng.normal(size=32)
  norm = Normalization.create((0.4, 0.5), (0.2, 0.3), zca, zca_mean)
  expected = ((((x / 255.0 - [0.4, 0.5]) / [0.2, 0.3]).reshape(3, 32) - zca_mean) @ zca)
  # Passed through jit as an argument: the fields are leaves, not static.
  out = jax.jit(lambda n, images: n(images))(norm, x)
  np.testing.assert_allclose(out, expected.reshape(x.shape), rtol=1e-4, atol=1e-4)
  assert len(jax.tree.leaves(norm)) == 4
  assert len(jax.tree.leaves(Normalization.create(0.3, 0.2))) == 2  # No ZCA: None fields.


def test_the_package_gives_the_augment_module_not_a_function():
  import types  # pylint: disable=g-import-not-at-top
  from alc_jax.data import augment as module  # pylint: disable=g-import-not-at-top
  assert isinstance(module, types.ModuleType) and callable(module.augment)
