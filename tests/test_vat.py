"""VAT's power iteration (methods/vat.py): the exact Hessian-vector product against a float64 NumPy
reference, and the finite difference agreeing with it only when xi is not too small."""

import jax
import jax.numpy as jnp
import numpy as np

from alc_jax.methods import vat


def _problem():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
  w = rng.normal(size=(32, 5)).astype(np.float32) / 4
  forward = lambda inputs: jnp.tanh(inputs.reshape(inputs.shape[0], -1)) @ w
  return x, w, forward, forward(x)


def _numpy_hd(x, w, d):
  """H d of KL(p || softmax(tanh(x + r) W)) at r = 0, per example, in float64: with z = tanh(x) W,
  H = J^T (diag(p) - p p^T) J, J = W^T diag(1 - tanh(x)^2)."""
  out = []
  for xi, di in zip(x.reshape(3, -1).astype(np.float64), d.reshape(3, -1).astype(np.float64)):
    jac = w.T.astype(np.float64) * (1 - np.tanh(xi) ** 2)  # (K, D)
    z = np.tanh(xi) @ w.astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    out.append(jac.T @ ((np.diag(p) - np.outer(p, p)) @ (jac @ di)))
  return np.stack(out)


def test_the_exact_power_iteration_is_the_hessian_vector_product():
  x, w, forward, logits = _problem()
  rng = jax.random.key(1)
  got = np.asarray(vat.adversarial_direction(forward, x, logits, rng, 1e-6, 'exact'))
  d = np.array(jax.random.normal(rng, x.shape, x.dtype)).reshape(3, -1)
  d /= np.linalg.norm(d, axis=1, keepdims=True)
  want = _numpy_hd(x, w, d)
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  np.testing.assert_allclose(got.reshape(3, -1), want, atol=2e-4)


def test_the_finite_difference_needs_a_step_float32_can_resolve():
  x, _, forward, logits = _problem()
  rng = jax.random.key(1)
  exact = vat.adversarial_direction(forward, x, logits, rng, 0.0, 'exact')
  cosine = lambda xi: np.asarray(jnp.sum(
      vat.adversarial_direction(forward, x, logits, rng, xi) * exact, axis=(1, 2, 3)))
  assert np.all(cosine(1e-3) > 0.99)  # A step float32 resolves: the same direction.
  assert np.mean(cosine(1e-9)) < 0.9  # Below the inputs' resolution: rounding noise.
