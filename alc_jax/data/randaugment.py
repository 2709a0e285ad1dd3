"""FixMatch's strong augmentation, RandAugment with random magnitudes then Cutout, in pure jnp.

FixMatch (Sohn et al., NeurIPS 2020, Sec. 2.3) trains on a strongly augmented view of each
unlabeled image: a variant of RandAugment that draws, per image, `num_ops` = 2 operations from the
14 of `OPS` (with replacement), each with a random magnitude instead of RandAugment's global one,
followed by Cutout. We follow kekmodel/FixMatch-pytorch (`dataset/randaugment.py`,
`RandAugmentMC(n=2, m=10)` over `fixmatch_augment_pool`): its ranges are those of the paper's
Table 12, and its README reports CIFAR-10 accuracies at or above the paper's (95.77 vs 95.74 at 4000
labels). google-research/fixmatch's own RandAugment (`libml/augment.py` AugmentPoolRAMC over
`third_party/auto_augment/augmentations.py`) draws the same way but scales its levels differently
from Table 12 (enhance factors 0.28..1.72, Posterize 1..4 bits, shifts of up to 9 px whatever the
image size). In detail:

* each drawn op is applied with probability 0.5 (kekmodel's `random.random() < 0.5`;
  google-research's policy entries `(op, 0.5, level)` do the same);
* its level v is uniform in {1, ..., 9} (`np.random.randint(1, 10)` in both) and maps to the
  magnitude as kekmodel's `_float_parameter(v, max_v) + bias` or `_int_parameter(v, max_v) + bias`
  (`_FIXMATCH_POOL` below), so magnitudes lie in:

    Brightness, Color, Contrast, Sharpness: enhance factor 0.09 v + 0.05 in [0.14, 0.86]
      (Table 12: [0.05, 0.95]; a factor below 1 only darkens, desaturates, flattens, blurs);
    Posterize: int(0.4 v) + 4 bits in {4, ..., 7} (Table 12: [4, 8]);
    Rotate: +-int(3 v) degrees, up to 27 (Table 12: [-30, 30]);
    ShearX, ShearY: +-0.03 v, up to 0.27 (Table 12: [-0.3, 0.3]);
    Solarize: threshold 256 - int(25.6 v) in [26, 231] (Table 12: [0, 1] of 256);
    TranslateX, TranslateY: +-int(0.03 v * size) pixels, at most 7 on 28x28 and 8 on 32x32 images
      (Table 12: [-0.3, 0.3] of the size);
    AutoContrast, Equalize, Identity: no magnitude;

  the sign of Rotate, Shear* and Translate* is + or - with probability 0.5 each (kekmodel);
* Cutout always follows: a square of side `CUTOUT_SIZE_FRACTION` = 1/2 of the image's shorter side
  (16 px on 32x32 CIFAR images, as both references' `CutoutAbs(img, 16)` / `cutout_numpy(size=16)`;
  14 px on 28x28 Fashion-MNIST), centred on a uniform random pixel and clipped at the border
  (google-research's `cutout_numpy`, the Cutout of DeVries & Taylor, 2017), filled with grey
  `CUTOUT_FILL` = 127 (kekmodel's (127, 127, 127); google-research fills 0 in its [-1, 1] scale,
  i.e. 127.5).

PIL is the reference implementation of every op (kekmodel calls `PIL.ImageOps`,
`PIL.ImageEnhance`, `Image.rotate` and `Image.transform` on uint8 images): each function here
reproduces Pillow's uint8 arithmetic (its float32 blends and 3x3 filter, its 16.16 fixed-point
nearest-neighbour affine sampling, its LUTs, even its float64 rounding in autocontrast) so that, on
integer-valued input, its output equals PIL's, pixel for pixel (tests/test_randaugment.py checks
every op on real images; the one exception, a rare pixel of a rotation by a non-integer angle, is
in `rotate`). Geometric ops fill uncovered pixels with `GEOMETRIC_FILL` = 0, PIL's default, which
kekmodel keeps (google-research's RGBA round trip turns them grey instead); black is also
Fashion-MNIST's background.

Domain: one image is float32 (H, W, C), C = 1 (grayscale, PIL mode 'L') or 3 (RGB), holding
integer values in [0, 255] (uint8 data cast to float32); outputs are the same, so the caller
normalises afterwards. Everything is jit- and vmap-able with static shapes and draws its randomness
only from the key it is given: `strong_augment(key, images)` is a pure function of (key, images).
"""

import functools
import math
from typing import Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Pixels that an affine transform maps from outside the input: PIL's default fill (0), which
# kekmodel's `img.rotate(v)` and `img.transform(...)` keep.
GEOMETRIC_FILL = 0.
# Cutout: side of the square as a fraction of the shorter image side (16 px on 32x32, as both
# references), and its grey fill (kekmodel's CutoutAbs colour (127, 127, 127)).
CUTOUT_SIZE_FRACTION = 0.5
CUTOUT_FILL = 127.

# ITU-R 601-2 luma in Pillow's fixed point (libImaging/Convert.c L24): L = (19595 R + 38470 G +
# 7471 B + 0x8000) >> 16. ImageEnhance.Color and Contrast convert to 'L' with it.
_LUMA_WEIGHTS = (19595, 38470, 7471)
# ImageFilter.SMOOTH, the degenerate image of ImageEnhance.Sharpness: the 3x3 kernel
# [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, divided in float32 as _imaging.c `_filter` does.
_SMOOTH_EDGE_WEIGHT = np.float32(1) / np.float32(13)
_SMOOTH_CENTRE_WEIGHT = np.float32(5) / np.float32(13)


def _check_image(image: Array) -> Array:
  image = jnp.asarray(image, jnp.float32)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f'expected one (H, W, C) image with C = 1 or 3, got shape {image.shape}')
  return image


def _rounded_product(values: Array, weight) -> Array:
  """values * weight, rounded to float32 before the addition that follows, as in Pillow's C.

  Inside a jit XLA compiles a multiply that feeds an add into one fused multiply-add (its CPU
  backend always allows FMA contraction; GPUs do too), which rounds once instead of twice: e.g.
  55 + 0.86 * (5 - 55) becomes 11.99999 instead of 12, truncated to 11 where PIL gives 12. Pillow's
  wheels round the product first. A select between the product and its own value at values == 0
  (where the product is 0) is not a multiply, so LLVM cannot contract it into the add.
  (`jax.lax.optimization_barrier` does not help: XLA removes it before fusion.)
  """
  return jnp.where(values == 0, 0., values * weight)


def _blend(degenerate: Array, image: Array, factor) -> Array:
  """PIL's `Image.blend(degenerate, image, factor)`, how every ImageEnhance class enhances.

  libImaging/Blend.c computes `in1 + alpha * (in2 - in1)` in float32 (`alpha` is a C float), clips
  to [0, 255] when extrapolating (alpha outside [0, 1]) and truncates to uint8; within [0, 255]
  truncation is the floor.
  """
  alpha = jnp.asarray(factor, jnp.float32)
  mixed = degenerate + _rounded_product(image - degenerate, alpha)
  return jnp.floor(jnp.clip(mixed, 0., 255.))


def _luma(image: Array) -> Array:
  """PIL's `convert('L')` of an RGB image: (H, W, 1) integer-valued float32."""
  rgb = image.astype(jnp.int32)
  weights = jnp.asarray(_LUMA_WEIGHTS, jnp.int32)
  luma = (jnp.sum(rgb * weights, axis=-1, keepdims=True) + 0x8000) >> 16
  return luma.astype(jnp.float32)


def identity(image: Array, magnitude=None) -> Array:
  """Identity: the image unchanged (the magnitude is ignored)."""
  del magnitude
  return _check_image(image)


@functools.lru_cache(maxsize=None)
def _autocontrast_rounded_down_keys() -> np.ndarray:
  """Where PIL's float64 autocontrast LUT lands one below the exact value.

  ImageOps.autocontrast maps x to int(x * scale + offset) with scale = 255.0 / (hi - lo) and
  offset = -lo * scale in float64. When (x - lo) * 255 / (hi - lo) is an integer k the float64
  result is sometimes k - 1e-14, which int() truncates to k - 1 (e.g. lo = 0, hi = 25 maps 25 to
  254). float32 cannot reproduce float64's rounding, so these cases are tabulated once, as sorted
  keys lo * 65536 + hi * 256 + x over all 0 <= lo < hi <= 255 and lo <= x <= hi (about 12k).
  """
  keys = []
  values = np.arange(256)
  for lo in range(255):
    hi = np.arange(lo + 1, 256)[:, None]
    scale = 255.0 / (hi - lo)
    offset = -lo * scale
    pil = (values * scale + offset).astype(np.int64)  # Truncation, as int() in PIL.
    exact = (values - lo) * 255 // (hi - lo)
    in_range = (values >= lo) & (values <= hi)
    hit_hi, hit_x = np.nonzero(in_range & (pil < exact))
    keys.append(lo * 65536 + hi[hit_hi, 0] * 256 + values[hit_x])
  return np.sort(np.concatenate(keys)).astype(np.int32)


def auto_contrast(image: Array, magnitude=None) -> Array:
  """PIL's `ImageOps.autocontrast(image)`: each channel's [min, max] stretched to [0, 255].

  A constant channel is left unchanged, as in PIL. The magnitude is ignored.
  """
  del magnitude
  image = _check_image(image)
  values = image.astype(jnp.int32)
  lo = values.min(axis=(0, 1))
  hi = values.max(axis=(0, 1))
  span = jnp.maximum(hi - lo, 1)
  # PIL's LUT over the 256 values of each channel (256, C), then looked up per pixel.
  levels = jnp.arange(256, dtype=jnp.int32)[:, None]
  scaled = (levels - lo) * 255
  lut = scaled // span
  # Reproduce PIL's float64 truncation artefacts (_autocontrast_rounded_down_keys).
  table = jnp.asarray(_autocontrast_rounded_down_keys())
  keys = lo * 65536 + hi * 256 + levels
  found = table[jnp.clip(jnp.searchsorted(table, keys), 0, table.size - 1)] == keys
  lut = lut - (found & (scaled % span == 0)).astype(jnp.int32)
  stretched = jnp.take_along_axis(lut, values.reshape(-1, values.shape[-1]), axis=0)
  stretched = stretched.reshape(values.shape)
  return jnp.where(hi > lo, stretched, values).astype(jnp.float32)


def equalize(image: Array, magnitude=None) -> Array:
  """PIL's `ImageOps.equalize(image)`: per-channel histogram equalisation, in PIL's integers.

  PIL's LUT is lut[i] = (step // 2 + #pixels below i) // step with step = (#pixels - #pixels at the
  channel's maximum) // 255, clipped to 255 when applied; a channel with a single value or step 0
  is left unchanged. The magnitude is ignored.
  """
  del magnitude
  image = _check_image(image)
  height, width, channels = image.shape
  values = image.astype(jnp.int32).reshape(height * width, channels)

  def equalize_channel(channel):
    counts = jnp.bincount(channel, length=256)
    below = jnp.cumsum(counts) - counts
    step = (channel.size - counts[channel.max()]) // 255
    lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255)
    unchanged = (jnp.sum(counts > 0) <= 1) | (step == 0)
    return jnp.where(unchanged, channel, lut[channel])

  equalized = jax.vmap(equalize_channel, in_axes=1, out_axes=1)(values)
  return equalized.reshape(height, width, channels).astype(jnp.float32)


def brightness(image: Array, magnitude) -> Array:
  """PIL's `ImageEnhance.Brightness(image).enhance(magnitude)`: a blend with black."""
  image = _check_image(image)
  return _blend(jnp.zeros_like(image), image, magnitude)


def color(image: Array, magnitude) -> Array:
  """PIL's `ImageEnhance.Color(image).enhance(magnitude)`: a blend with the image's luma.

  On a grayscale image (C = 1) it is the identity, as PIL's Color is on mode 'L' (the degenerate
  image is the image itself).
  """
  image = _check_image(image)
  if image.shape[-1] == 1:
    return image
  return _blend(jnp.broadcast_to(_luma(image), image.shape), image, magnitude)


def contrast(image: Array, magnitude) -> Array:
  """PIL's `ImageEnhance.Contrast(image).enhance(magnitude)`: a blend with the mean luma.

  The degenerate image is the constant int(mean + 0.5) of the image's 'L' version (its luma for
  RGB), computed exactly in integers as floor((2 * sum + n) / (2 * n)).
  """
  image = _check_image(image)
  gray = image if image.shape[-1] == 1 else _luma(image)
  total = jnp.sum(gray.astype(jnp.int32))
  count = gray.size
  mean = ((2 * total + count) // (2 * count)).astype(jnp.float32)
  return _blend(jnp.full_like(image, mean), image, magnitude)


def _smooth(image: Array) -> Array:
  """PIL's `image.filter(ImageFilter.SMOOTH)`, operation for operation (libImaging/Filter.c).

  ImagingFilter3x3 sums in float32: ss = 0.5 (its rounding offset), plus, row by row from y + 1
  (kernel[0:3]) to y - 1 (kernel[6:9]), (in[x-1] * k0 + in[x] * k1) + in[x+1] * k2; then clips to
  [0, 255] and truncates. The outermost rows and columns are copied unchanged, and an image
  smaller than 3x3 is returned as is.
  """
  height, width, _ = image.shape
  if height < 3 or width < 3:
    return image
  edge, centre = _SMOOTH_EDGE_WEIGHT, _SMOOTH_CENTRE_WEIGHT

  def row_sum(rows, k0, k1, k2):
    return ((_rounded_product(rows[:, :-2], k0) + _rounded_product(rows[:, 1:-1], k1)) +
            _rounded_product(rows[:, 2:], k2))

  total = np.float32(0.5) + row_sum(image[2:], edge, edge, edge)
  total = total + row_sum(image[1:-1], edge, centre, edge)
  total = total + row_sum(image[:-2], edge, edge, edge)
  return image.at[1:-1, 1:-1].set(jnp.floor(jnp.clip(total, 0., 255.)))


def sharpness(image: Array, magnitude) -> Array:
  """PIL's `ImageEnhance.Sharpness(image).enhance(magnitude)`: a blend with the SMOOTH image."""
  image = _check_image(image)
  return _blend(_smooth(image), image, magnitude)


def posterize(image: Array, magnitude) -> Array:
  """PIL's `ImageOps.posterize(image, bits)`: keeps the `bits` (1..8) high bits of each value.

  The magnitude is truncated to an integer and clipped to PIL's valid 1..8 (PIL raises outside).
  """
  image = _check_image(image)
  bits = jnp.clip(jnp.asarray(magnitude).astype(jnp.int32), 1, 8)
  mask = ~((jnp.left_shift(1, 8 - bits)) - 1)
  return (image.astype(jnp.int32) & mask).astype(jnp.float32)


def solarize(image: Array, magnitude) -> Array:
  """PIL's `ImageOps.solarize(image, threshold)`: values >= threshold are inverted (255 - v)."""
  image = _check_image(image)
  return jnp.where(image < magnitude, image, 255. - image)


def _fixed_point(value: Array) -> Array:
  """libImaging/Geometry.c FIX: 16.16 fixed point, floor(v * 65536 + 0.5)."""
  return jnp.floor(jnp.asarray(value, jnp.float32) * 65536. + 0.5).astype(jnp.int32)


def _fixed_point_affine(a, b, c, d, e, f) -> Array:
  """PIL's 16.16 fixed-point form of the affine matrix (libImaging/Geometry.c affine_fixed).

  Returns:
    int32 (6,): FIX(c + a/2 + b/2), FIX(b), FIX(a), FIX(f + d/2 + e/2), FIX(e), FIX(d): each input
    coordinate's origin, step per output row and step per output column.
  """
  return jnp.stack([_fixed_point(c + a * 0.5 + b * 0.5), _fixed_point(b), _fixed_point(a),
                    _fixed_point(f + d * 0.5 + e * 0.5), _fixed_point(e), _fixed_point(d)])


def _affine(image: Array, fixed_point_matrix: Array) -> Array:
  """PIL's `image.transform(size, AFFINE, (a, b, c, d, e, f))` with NEAREST resampling.

  The matrix maps output to input: the output pixel (x, y) samples the input at
  (a x' + b y' + c, d x' + e y' + f) of its centre (x', y') = (x + 0.5, y + 0.5), floored, and
  takes GEOMETRIC_FILL outside the input. PIL evaluates this in 16.16 fixed point (affine_fixed),
  which we reproduce in int32: xin = (FIX(c + a/2 + b/2) + y FIX(b) + x FIX(a)) >> 16, likewise
  yin. (PIL uses float64 for pure translations, ImagingScaleAffine, which gives the same indices
  for the integer shifts RandAugment draws.) A gather, so it stays on the device.

  Args:
    image: (H, W, C) float32.
    fixed_point_matrix: the matrix's `_fixed_point_affine` form, int32 (6,).

  Returns:
    (H, W, C) float32.
  """
  height, width, channels = image.shape
  x_origin, x_row_step, x_step, y_origin, y_row_step, y_step = fixed_point_matrix
  rows = jnp.arange(height, dtype=jnp.int32)[:, None]
  cols = jnp.arange(width, dtype=jnp.int32)[None, :]
  x_in = (x_origin + rows * x_row_step + cols * x_step) >> 16
  y_in = (y_origin + rows * y_row_step + cols * y_step) >> 16
  inside = (x_in >= 0) & (x_in < width) & (y_in >= 0) & (y_in < height)
  flat_index = jnp.clip(y_in, 0, height - 1) * width + jnp.clip(x_in, 0, width - 1)
  sampled = image.reshape(height * width, channels)[flat_index]
  return jnp.where(inside[..., None], sampled, GEOMETRIC_FILL)


def _rotation_matrix(magnitude, height: int, width: int) -> Tuple[Array, ...]:
  """Image.rotate's affine matrix (a, b, c, d, e, f) for `magnitude` degrees, in float32.

  As Image.rotate (expand=False): the centre is (W / 2, H / 2) in pixel-edge coordinates, and
  with t = -radians(magnitude mod 360), (a, b, d, e) = (cos t, sin t, -sin t, cos t) and
  (c, f) = M (-centre) + centre.
  """
  angle = -jnp.deg2rad(jnp.mod(jnp.asarray(magnitude, jnp.float32), 360.))
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  centre_x, centre_y = width / 2, height / 2
  c = cos * -centre_x + sin * -centre_y + centre_x
  f = -sin * -centre_x + cos * -centre_y + centre_y
  return cos, sin, c, -sin, cos, f


@functools.lru_cache(maxsize=None)
def _integer_rotations_fixed_point(height: int, width: int) -> np.ndarray:
  """PIL's own fixed-point matrix (`_fixed_point_affine` order) of the rotations by 0..359 degrees.

  Computed on the host in float64, step by step as Image.rotate and affine_fixed do, for an image
  of (height, width). float32 gets one of the six numbers one unit off for ~20% of integer angles
  (and for some of RandAugment's, e.g. -6 and -18 degrees on 28x28 images), so integer angles use
  this table.

  Returns:
    int32 (360, 6).
  """
  def fix(value):
    return math.floor(value * 65536.0 + 0.5)

  rows = []
  for degrees in range(360):
    angle = -math.radians(degrees)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    c = a * -(width / 2) + b * -(height / 2) + 0.0 + width / 2
    f = d * -(width / 2) + e * -(height / 2) + 0.0 + height / 2
    rows.append((fix(c + a * 0.5 + b * 0.5), fix(b), fix(a),
                 fix(f + d * 0.5 + e * 0.5), fix(e), fix(d)))
  return np.asarray(rows, np.int32)


def _rotation_fixed_point(magnitude, height: int, width: int) -> Array:
  """The fixed-point matrix of Image.rotate(magnitude): PIL's own for an integer angle (the
  host-computed table), else from the float32 matrix."""
  degrees = jnp.mod(jnp.asarray(magnitude, jnp.float32), 360.)
  whole_degrees = jnp.round(degrees)
  table = jnp.asarray(_integer_rotations_fixed_point(height, width))
  tabulated = table[whole_degrees.astype(jnp.int32) % 360]
  computed = _fixed_point_affine(*_rotation_matrix(magnitude, height, width))
  return jnp.where(degrees == whole_degrees, tabulated, computed)


def rotate(image: Array, magnitude) -> Array:
  """PIL's `image.rotate(magnitude)`: counter-clockwise by `magnitude` degrees about the centre.

  NEAREST resampling, uncovered pixels GEOMETRIC_FILL, the image size kept (`_rotation_matrix`).
  For an integer angle (all that RandAugment draws) the fixed-point matrix is PIL's own, so the
  result equals PIL's; at other angles it comes from a float32 matrix where PIL's is float64, and
  one of its six numbers is occasionally one unit (1/65536 px) off, which moves the rare pixel
  whose sample point lies that close to a pixel edge (4e-6 of the pixels of 40 Fashion-MNIST
  images rotated by -30.00, -29.99, ..., 30.00 degrees).
  """
  image = _check_image(image)
  height, width, _ = image.shape
  return _affine(image, _rotation_fixed_point(magnitude, height, width))


def shear_x(image: Array, magnitude) -> Array:
  """kekmodel's ShearX: `image.transform(size, AFFINE, (1, magnitude, 0, 0, 1, 0))`."""
  image = _check_image(image)
  return _affine(image, _fixed_point_affine(1., magnitude, 0., 0., 1., 0.))


def shear_y(image: Array, magnitude) -> Array:
  """kekmodel's ShearY: `image.transform(size, AFFINE, (1, 0, 0, magnitude, 1, 0))`."""
  image = _check_image(image)
  return _affine(image, _fixed_point_affine(1., 0., 0., magnitude, 1., 0.))


def translate_x(image: Array, magnitude) -> Array:
  """kekmodel's TranslateX: `image.transform(size, AFFINE, (1, 0, magnitude, 0, 1, 0))`.

  The magnitude is in pixels; a positive one moves the content left (the matrix maps output to
  input).
  """
  image = _check_image(image)
  return _affine(image, _fixed_point_affine(1., 0., magnitude, 0., 1., 0.))


def translate_y(image: Array, magnitude) -> Array:
  """kekmodel's TranslateY: `image.transform(size, AFFINE, (1, 0, 0, 0, 1, magnitude))`.

  The magnitude is in pixels; a positive one moves the content up.
  """
  image = _check_image(image)
  return _affine(image, _fixed_point_affine(1., 0., 0., 0., 1., magnitude))


# kekmodel's level scaling (also google-research's third_party/auto_augment): a level v in
# [0, PARAMETER_MAX] maps to v * max_v / PARAMETER_MAX, as a float or truncated to an int.
_PARAMETER_MAX = 10
# RandAugmentMC(n, m=10) draws v = np.random.randint(1, m): levels 1..9 (10 is never drawn).
_LEVEL_MIN, _LEVEL_STOP = 1, 10
# Each drawn op is applied with this probability (kekmodel and google-research).
APPLY_PROBABILITY = 0.5


def _float_parameter(level: int, max_value: float) -> float:
  return float(level) * max_value / _PARAMETER_MAX


def _int_parameter(level: int, max_value: float) -> int:
  return int(level * max_value / _PARAMETER_MAX)


class _PoolOp(NamedTuple):
  """One op of the FixMatch pool: its function, its magnitude at level v for an image of
  (height, width), and whether the magnitude's sign is drawn at random."""
  function: Callable[[Array, Array], Array]
  magnitude: Callable[[int, int, int], float]
  random_sign: bool


def _no_magnitude(level, height, width):
  del level, height, width
  return 0.


def _enhance_factor(level, height, width):
  del height, width
  return _float_parameter(level, 0.9) + 0.05


# kekmodel's fixmatch_augment_pool: (op, max_v, bias) -> our function and magnitude formula.
_FIXMATCH_POOL = {
    'AutoContrast': _PoolOp(auto_contrast, _no_magnitude, False),
    'Brightness': _PoolOp(brightness, _enhance_factor, False),
    'Color': _PoolOp(color, _enhance_factor, False),
    'Contrast': _PoolOp(contrast, _enhance_factor, False),
    'Equalize': _PoolOp(equalize, _no_magnitude, False),
    'Identity': _PoolOp(identity, _no_magnitude, False),
    'Posterize': _PoolOp(posterize, lambda v, h, w: _int_parameter(v, 4) + 4, False),
    'Rotate': _PoolOp(rotate, lambda v, h, w: _int_parameter(v, 30), True),
    'Sharpness': _PoolOp(sharpness, _enhance_factor, False),
    'ShearX': _PoolOp(shear_x, lambda v, h, w: _float_parameter(v, 0.3), True),
    'ShearY': _PoolOp(shear_y, lambda v, h, w: _float_parameter(v, 0.3), True),
    # kekmodel: PIL.ImageOps.solarize(img, 256 - v) with v = _int_parameter(level, 256).
    'Solarize': _PoolOp(solarize, lambda v, h, w: 256 - _int_parameter(v, 256), False),
    # kekmodel: int(v * img.size[0]) pixels (size[0] is the width), after the sign flip; int()
    # truncates towards zero, so the sign can be drawn afterwards.
    'TranslateX': _PoolOp(translate_x, lambda v, h, w: int(_float_parameter(v, 0.3) * w), True),
    'TranslateY': _PoolOp(translate_y, lambda v, h, w: int(_float_parameter(v, 0.3) * h), True),
}
# The 14 ops of FixMatch's RandAugment (the paper's Table 12), in kekmodel's order.
OPS = tuple(_FIXMATCH_POOL)
# name -> op(image, magnitude), the magnitude in the op's own units (see each function).
OP_FUNCTIONS = {name: op.function for name, op in _FIXMATCH_POOL.items()}
_IDENTITY_INDEX = OPS.index('Identity')


def magnitude_table(height: int, width: int) -> np.ndarray:
  """Unsigned magnitude of op OPS[i] at level v, for images of (height, width): float32 (14, 10).

  Level 0 is in the table but never drawn (levels are 1..9).
  """
  return np.asarray([[op.magnitude(level, height, width) for level in range(_LEVEL_STOP)]
                     for op in _FIXMATCH_POOL.values()], np.float32)


def sample_policy(key: Array, num_ops: int, height: int, width: int) -> Tuple[Array, Array]:
  """Draws one image's RandAugmentMC policy, as kekmodel's `RandAugmentMC.__call__`.

  `num_ops` ops uniformly with replacement (random.choices); for each, a level uniform in 1..9, a
  sign (Rotate, Shear*, Translate* only) and whether it is applied (probability 0.5). An op that
  is not applied comes back as Identity.

  Args:
    key: PRNG key.
    num_ops: number of ops (2 in FixMatch); a Python int.
    height, width: the image's size (the translations are a fraction of it).

  Returns:
    (op_indices int32 (num_ops,) into OPS, magnitudes float32 (num_ops,)), for `apply_policy`.
  """
  op_key, level_key, sign_key, apply_key = jax.random.split(key, 4)
  op_indices = jax.random.randint(op_key, (num_ops,), 0, len(OPS))
  levels = jax.random.randint(level_key, (num_ops,), _LEVEL_MIN, _LEVEL_STOP)
  negate = jax.random.bernoulli(sign_key, 0.5, (num_ops,))
  applied = jax.random.bernoulli(apply_key, APPLY_PROBABILITY, (num_ops,))
  signed = jnp.asarray([op.random_sign for op in _FIXMATCH_POOL.values()])
  magnitudes = jnp.asarray(magnitude_table(height, width))[op_indices, levels]
  magnitudes = jnp.where(signed[op_indices] & negate, -magnitudes, magnitudes)
  op_indices = jnp.where(applied, op_indices, _IDENTITY_INDEX)
  return op_indices.astype(jnp.int32), magnitudes


def apply_policy(image: Array, op_indices: Array, magnitudes: Array) -> Array:
  """Applies the ops OPS[op_indices[i]] with magnitudes[i], in order, through `jax.lax.switch`."""
  image = _check_image(image)
  branches = [op.function for op in _FIXMATCH_POOL.values()]
  for i in range(op_indices.shape[0]):
    image = jax.lax.switch(op_indices[i], branches, image, magnitudes[i])
  return image


def cutout(key: Array, image: Array, size: int) -> Array:
  """Cutout (DeVries & Taylor, 2017) as google-research/fixmatch `cutout_numpy`, grey-filled.

  The centre is a uniform random pixel (cy, cx); rows cy - size // 2 .. cy - size // 2 + size - 1
  and the same columns, clipped to the image, are set to CUTOUT_FILL. A size <= 0 changes nothing.

  Args:
    key: PRNG key.
    image: (H, W, C) float32.
    size: side of the square in pixels; a Python int.

  Returns:
    The image with the square filled.
  """
  image = _check_image(image)
  if size <= 0:
    return image
  height, width, _ = image.shape
  y_key, x_key = jax.random.split(key)
  top = jax.random.randint(y_key, (), 0, height) - size // 2
  left = jax.random.randint(x_key, (), 0, width) - size // 2
  rows = jnp.arange(height)
  cols = jnp.arange(width)
  in_rows = (rows >= top) & (rows < top + size)
  in_cols = (cols >= left) & (cols < left + size)
  inside = in_rows[:, None] & in_cols[None, :]
  return jnp.where(inside[..., None], CUTOUT_FILL, image)


def default_cutout_size(height: int, width: int) -> int:
  """CUTOUT_SIZE_FRACTION of the shorter side, in pixels (16 for 32x32, 14 for 28x28)."""
  return int(CUTOUT_SIZE_FRACTION * min(height, width))


def rand_augment(key: Array, image: Array, num_ops: int = 2,
                 cutout_size: Optional[int] = None) -> Array:
  """FixMatch's strong view of one image: RandAugmentMC with `num_ops` ops, then Cutout.

  The policy is drawn from the first key of `jax.random.split(key)` (`sample_policy`), Cutout's
  position from the second.

  Args:
    key: PRNG key.
    image: (H, W, C) float32, integer values in [0, 255], C = 1 or 3.
    num_ops: ops drawn per image (2 in FixMatch); a Python int.
    cutout_size: side of the Cutout square in pixels; None: `default_cutout_size`; 0: no Cutout
      (google-research's ablation/ab_fixmatch_nocutout). A Python int.

  Returns:
    (H, W, C) float32, integer values in [0, 255].
  """
  image = _check_image(image)
  height, width, _ = image.shape
  policy_key, cutout_key = jax.random.split(key)
  image = apply_policy(image, *sample_policy(policy_key, num_ops, height, width))
  if cutout_size is None:
    cutout_size = default_cutout_size(height, width)
  return cutout(cutout_key, image, cutout_size)


def strong_augment(key: Array, images: Array, num_ops: int = 2,
                   cutout_size: Optional[int] = None) -> Array:
  """FixMatch's strong augmentation of a batch: `rand_augment` of each image with its own key.

  A pure function of (key, images), jit-able with static shapes: mark num_ops and cutout_size
  static (`jax.jit(strong_augment, static_argnames=('num_ops', 'cutout_size'))`). Under vmap every
  image evaluates all 14 ops and selects its own (jax.lax.switch becomes a select).

  Args:
    key: PRNG key; image i uses `jax.random.split(key, N)[i]`.
    images: (N, H, W, C) float32, integer values in [0, 255], C = 1 or 3.
    num_ops: ops drawn per image (2 in FixMatch).
    cutout_size: see `rand_augment`.

  Returns:
    (N, H, W, C) float32, integer values in [0, 255]; normalise afterwards.
  """
  images = jnp.asarray(images, jnp.float32)
  if images.ndim != 4:
    raise ValueError(f'images must be (N, H, W, C), got shape {images.shape}')
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(functools.partial(rand_augment, num_ops=num_ops, cutout_size=cutout_size))(
      keys, images)
