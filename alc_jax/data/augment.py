"""Device-side input augmentation (pure jnp, jit- and vmap-able).

The augmentation is the Temporal Ensembling / Mean Teacher recipe the paper inherits from the
Mean Teacher code (Sec. 5): random translation by up to 2 pixels with reflect padding, horizontal
flips on CIFAR-10 only, and additive Gaussian input noise (std 0.15 in normalised units). It runs
inside the compiled train step so the host only ships uint8 images.

The student and teacher branches need independent perturbations of the same images: call
augment twice with different keys, e.g. `k1, k2 = jax.random.split(rng)`, or augment_views once
with both keys (the same values; what the trainer does).
"""

from typing import List, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


def _translate(rng: Array, images: Array, translate: int) -> Array:
  """Shifts each image by its own (dy, dx) in [-translate, translate]^2, reflecting the border."""
  n, h, w, c = images.shape
  if translate >= min(h, w):
    raise ValueError(f'reflect padding needs translate < image size, got {translate} for '
                     f'{h}x{w} images')
  padded = jnp.pad(images, ((0, 0), (translate, translate), (translate, translate), (0, 0)),
                   mode='reflect')
  # Crop offset o in [0, 2t] is the shift o - t; randint's upper bound is exclusive.
  offsets = jax.random.randint(rng, (n, 2), 0, 2 * translate + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, offsets)


def augment(rng: Array, images: Array, translate: int = 2, flip: bool = False,
            noise_std: float = 0.15) -> Array:
  """One random draw of the Temporal Ensembling / Mean Teacher augmentation.

  Every example gets its own translation, flip and noise. Two calls with different keys give
  the two independent views of the student and teacher branches (`augment_views` draws both
  at once, the same values faster).

  Args:
    rng: PRNG key.
    images: (N, H, W, C) images, normally the float output of normalize (the noise std is in
      those units).
    translate: largest shift in pixels along each axis (independently); 0 disables it.
    flip: whether to flip each image horizontally with probability 1/2 (CIFAR-10 only).
    noise_std: standard deviation of additive Gaussian noise; 0 disables it. Needs float images.
    translate, flip and noise_std are Python values that decide the traced program: mark them
      static (functools.partial or static_argnames) when jitting.

  Returns:
    Array of the same shape and dtype as images.
  """
  return augment_views([rng], images, translate, flip, noise_std)[0]


def augment_views(rngs: Sequence[Array], images: Array, translate: int = 2, flip: bool = False,
                  noise_std: float = 0.15) -> List[Array]:
  """`augment(rng, images, ...)` for each key of `rngs`: the same values (bit for bit as XLA
  compiles them with its optimisations on, to float32 rounding with them off).

  The views' Gaussian noise is drawn in one call over a (views, N, H*W*C) shape, which gives
  each view the numbers its own call draws (JAX's random bits depend on the element's flat
  index only) but lets XLA:CPU compute the normal transform once, in a loop over long rows:
  fused into each view's (N, H, W, 3) loop instead, it ran 6x slower per element. The Mean
  Teacher step at CNN-13 width 1/16 is 1.05x as fast (docs/performance.md).
  """
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(f'images must be (N, H, W, C), got shape {images.shape}')
  if translate < 0 or noise_std < 0:
    raise ValueError(f'translate and noise_std must be >= 0, got {translate}, {noise_std}')
  if noise_std and not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f'Gaussian noise needs float images (normalize first), got {images.dtype}')
  views, noise_rngs = [], []
  for rng in rngs:
    translate_rng, flip_rng, noise_rng = jax.random.split(rng, 3)
    noise_rngs.append(noise_rng)
    x = images
    if translate:
      x = _translate(translate_rng, x, int(translate))
    if flip:
      flipped = jax.random.bernoulli(flip_rng, 0.5, (x.shape[0],))
      x = jnp.where(flipped[:, None, None, None], x[:, :, ::-1, :], x)
    views.append(x)
  if not noise_std or not views:
    return views
  # noise_std multiplies inside the draw, as `x + noise_std * normal(...)` associates.
  flat = (images.shape[0], images[0].size)
  noise = jax.vmap(lambda k: noise_std * jax.random.normal(k, flat, images.dtype))(
      jnp.stack(noise_rngs))
  return [x + n.reshape(x.shape) for x, n in zip(views, noise)]
