"""Normalisation: per-channel statistics and ZCA on the host, the named `Normalization` the
trainer applies on the device (pure jnp, jit- and vmap-able)."""

from typing import Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Ridge added to the covariance's eigenvalues by `compute_zca`. The Mean Teacher TensorFlow code
# (datasets/preprocess_cifar10.py) whitens global-contrast-normalised CIFAR-10 (scale 55, so each
# pixel has variance ~1) with filter_bias 0.1; our input is per-channel standardised, also variance
# ~1 per pixel, so the same 0.1 regularises the same amount.
ZCA_EPSILON = 0.1


def channel_stats(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Exact per-channel mean and standard deviation of uint8 images, in [0, 1] units.

  Uses a 256-bin histogram per channel, so no float copy of the data set is made.

  Args:
    images: uint8 (N, H, W, C).

  Returns:
    (mean, std), float32 (C,) each.
  """
  values = np.arange(256, dtype=np.float64) / 255.0
  means, stds = [], []
  for c in range(images.shape[-1]):
    counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    mean = (counts * values).sum() / total
    var = (counts * (values - mean) ** 2).sum() / total
    means.append(mean)
    stds.append(np.sqrt(var))
  std = np.maximum(np.asarray(stds), 1e-8)  # A constant channel must not divide by zero.
  return np.asarray(means, np.float32), std.astype(np.float32)


def compute_zca(images: np.ndarray, mean: np.ndarray, std: np.ndarray,
                epsilon: float = ZCA_EPSILON,
                chunk_size: int = 5000) -> Tuple[np.ndarray, np.ndarray]:
  """ZCA whitening matrix of the per-channel standardised training images.

  With z = flatten((x / 255 - mean) / std) in (H, W, C) order, mu = E[z] and the covariance
  C = E[(z - mu)(z - mu)^T] = E diag(d) E^T, the matrix is W = E diag((d + epsilon)^-1/2) E^T
  (symmetric), and `(z - mu) @ W` has approximately identity covariance. The covariance is
  accumulated in float64 over chunks, so memory stays at a few chunks of float64 images.

  Args:
    images: uint8 (N, H, W, C) training images.
    mean: float32 (C,) per-channel mean in [0, 1] units (`channel_stats`).
    std: float32 (C,) per-channel standard deviation in [0, 1] units.
    epsilon: ridge added to the eigenvalues (see ZCA_EPSILON).
    chunk_size: images per chunk of the covariance accumulation.

  Returns:
    (W float32 (D, D), mu float32 (D,)), D = H * W * C.
  """
  n = images.shape[0]
  dim = int(np.prod(images.shape[1:]))
  scale = np.asarray(std, np.float64) * 255.0
  shift = np.asarray(mean, np.float64) * 255.0

  def standardised(chunk):
    return ((chunk.astype(np.float64) - shift) / scale).reshape(chunk.shape[0], dim)

  mu = np.zeros(dim, np.float64)
  for start in range(0, n, chunk_size):
    mu += standardised(images[start:start + chunk_size]).sum(axis=0)
  mu /= n
  cov = np.zeros((dim, dim), np.float64)
  for start in range(0, n, chunk_size):
    z = standardised(images[start:start + chunk_size]) - mu
    cov += z.T @ z
  cov /= max(n - 1, 1)
  eigvals, eigvecs = np.linalg.eigh(cov)
  eigvals = np.maximum(eigvals, 0.0)  # Round-off can make tiny eigenvalues negative.
  whiten = (eigvecs * (1.0 / np.sqrt(eigvals + epsilon))) @ eigvecs.T
  return whiten.astype(np.float32), mu.astype(np.float32)


def normalize(images: Array, mean, std, zca: Optional[Array] = None,
              zca_mean: Optional[Array] = None) -> Array:
  """Maps uint8 images to float32 network inputs.

  Args:
    images: (..., H, W, C) uint8 (or any numeric) images in [0, 255].
    mean: per-channel mean, shape (C,) or scalar, in [0, 1] units.
    std: per-channel standard deviation, shape (C,) or scalar, in [0, 1] units.
    zca: optional (D, D) whitening matrix, D = H * W * C, applied to each normalised image
      flattened in HWC order as a row vector: x_white = x_flat @ zca (ZCA matrices are
      symmetric, so this equals zca @ x_flat).
    zca_mean: optional (D,) per-pixel mean of the normalised training images, subtracted before
      whitening: x_white = (x_flat - zca_mean) @ zca.

  Returns:
    float32 array of the same shape: (x / 255 - mean) / std, whitened if zca is given.
  """
  x = jnp.asarray(images).astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
  if zca is not None:
    shape = x.shape
    d = shape[-3] * shape[-2] * shape[-1]
    flat = x.reshape(-1, d)
    if zca_mean is not None:
      flat = flat - jnp.asarray(zca_mean, jnp.float32)
    x = (flat @ jnp.asarray(zca, jnp.float32)).reshape(shape)
  return x


@flax.struct.dataclass
class Normalization:
  """How images become network inputs: `(x / 255 - mean) / std`, then ZCA whitening if `zca`.

  A pytree (jit arguments and closures both work). mean, std: float32 (C,) in [0, 1] units;
  zca: None or (D, D); zca_mean: None or (D,) (see `normalize`).
  """
  mean: Array
  std: Array
  zca: Optional[Array] = None
  zca_mean: Optional[Array] = None

  @classmethod
  def create(cls, mean, std, zca=None, zca_mean=None) -> 'Normalization':
    """From host arrays or tuples; stored as float32 device arrays."""
    as_array = lambda a: None if a is None else jnp.asarray(a, jnp.float32)
    return cls(as_array(mean), as_array(std), as_array(zca), as_array(zca_mean))

  def __call__(self, images: Array) -> Array:
    return normalize(images, self.mean, self.std, self.zca, self.zca_mean)
