"""alc_jax/data/randaugment.py: every op equals PIL's on real images, the RandAugmentMC policy
matches kekmodel/FixMatch-pytorch, Cutout's square, and the batch API (jit, vmap, keys)."""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image, ImageEnhance, ImageOps

from alc_jax.data import randaugment
from alc_jax.data.fashion_mnist import load_fashion_mnist
from tests.conftest import ROOT

AFFINE = Image.Transform.AFFINE
# The reference: kekmodel/FixMatch-pytorch dataset/randaugment.py's PIL call for each op.
PIL_OPS = {
    'AutoContrast': lambda image, m: ImageOps.autocontrast(image),
    'Brightness': lambda image, m: ImageEnhance.Brightness(image).enhance(m),
    'Color': lambda image, m: ImageEnhance.Color(image).enhance(m),
    'Contrast': lambda image, m: ImageEnhance.Contrast(image).enhance(m),
    'Equalize': lambda image, m: ImageOps.equalize(image),
    'Identity': lambda image, m: image,
    'Posterize': lambda image, m: ImageOps.posterize(image, int(m)),
    'Rotate': lambda image, m: image.rotate(m),
    'Sharpness': lambda image, m: ImageEnhance.Sharpness(image).enhance(m),
    'ShearX': lambda image, m: image.transform(image.size, AFFINE, (1, m, 0, 0, 1, 0)),
    'ShearY': lambda image, m: image.transform(image.size, AFFINE, (1, 0, 0, m, 1, 0)),
    'Solarize': lambda image, m: ImageOps.solarize(image, m),
    'TranslateX': lambda image, m: image.transform(image.size, AFFINE, (1, 0, m, 0, 1, 0)),
    'TranslateY': lambda image, m: image.transform(image.size, AFFINE, (1, 0, 0, 0, 1, m)),
}
GEOMETRIC_OPS = ('Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY')

# Magnitudes compared with PIL, besides every magnitude RandAugment draws (`drawn_magnitudes`):
# the ends of the paper's Table 12 ranges, PIL's extremes, extrapolation (factors > 1: PIL's
# clipping path), non-integer angles and shifts, and right-angle rotations (PIL transposes).
FACTORS = (0., 0.05, 0.5, 0.95, 1., 1.3, 1.9)
TEST_MAGNITUDES = {
    'AutoContrast': (0.,),
    'Brightness': FACTORS,
    'Color': FACTORS,
    'Contrast': FACTORS,
    'Equalize': (0.,),
    'Identity': (0.,),
    'Posterize': (1, 2, 4, 8),
    'Rotate': (-30, -1, 0, 1, 30, 45, 90, 180, -90, -7.5, 12.3),
    'Sharpness': FACTORS,
    'ShearX': (-0.3, -0.15, 0., 0.05, 0.3),
    'ShearY': (-0.3, -0.15, 0., 0.05, 0.3),
    'Solarize': (0, 1, 128, 255, 256),
    'TranslateX': (-12, -0.3, 0, 1, 2.5, 12),
    'TranslateY': (-12, -0.3, 0, 1, 2.5, 12),
}
# Tolerance, the largest fraction of an image's pixels that may differ from PIL's: exact
# everywhere, but for rotations by a non-integer angle, whose float32 matrix is occasionally
# 1/65536 px off PIL's float64 one (randaugment.rotate); the worst measured was 4 of 784 pixels
# (40 Fashion-MNIST images, angles -30.00, -29.99, ..., 30.00).
MAX_DIFFERING_FRACTION = {name: 0. for name in PIL_OPS}
ROTATE_NON_INTEGER_MAX_DIFFERING_FRACTION = 0.006
# A magnitude one step off must be caught: (PIL's magnitude, ours) per op that has a magnitude.
WRONG_MAGNITUDES = {
    'Brightness': (0.5, 0.55), 'Color': (0.5, 0.55), 'Contrast': (0.5, 0.55),
    'Sharpness': (0.5, 0.55), 'Posterize': (4, 5), 'Rotate': (12, 13), 'ShearX': (0.15, 0.18),
    'ShearY': (0.15, 0.18), 'Solarize': (128, 120), 'TranslateX': (2, 3), 'TranslateY': (2, 3),
}
PHOTO_SIZE = (32, 32)  # (width, height); randaugment ops are checked on a non-square crop too.


@pytest.fixture(scope='module', autouse=True)
def optimized_xla():
  """Compile as training does: tests/conftest.py turns most XLA optimisations off, and with them
  the fused multiply-adds that randaugment._rounded_product guards against."""
  disabled = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', False)
  yield
  jax.config.update('jax_disable_most_optimizations', disabled)


def _dimmed(images, scale, offset=0.):
  """A real image with its contrast reduced: e.g. scale 0.1 puts Fashion-MNIST's maximum at 25,
  where PIL's autocontrast maps it to 254 (its float64 rounding)."""
  return (images.astype(np.float64) * scale + offset).astype(np.uint8)


@pytest.fixture(scope='module')
def real_images():
  """{'fashion_mnist': uint8 (8, 28, 28, 1), 'photo': uint8 (3, 32, 32, 3)}: four Fashion-MNIST
  test images (Debian's IDX files) and the Grace Hopper photo shipped with matplotlib, downsized
  with PIL, each also with reduced contrast."""
  _, _, x_test, _ = load_fashion_mnist('', None)
  fashion = x_test[:4]
  with cbook.get_sample_data('grace_hopper.jpg') as f:
    photo = np.asarray(Image.open(f).convert('RGB').resize(PHOTO_SIZE))[None]
  return {
      'fashion_mnist': np.concatenate(
          [fashion, _dimmed(fashion[:2], 0.4, 50.), _dimmed(fashion[2:], 0.1)]),
      'photo': np.concatenate([photo, _dimmed(photo, 0.4, 50.), _dimmed(photo, 0.1)]),
  }


def kekmodel_magnitudes(name, height, width):
  """Every magnitude RandAugmentMC can draw for op `name`, in float64 from kekmodel's formulas
  (fixmatch_augment_pool's (max_v, bias), levels 1..9, random sign where kekmodel flips it)."""
  levels = range(1, 10)
  magnitudes = {
      'Brightness': [v * 0.9 / 10 + 0.05 for v in levels],
      'Posterize': [int(v * 4 / 10) + 4 for v in levels],
      'Rotate': [int(v * 30 / 10) for v in levels],
      'ShearX': [v * 0.3 / 10 for v in levels],
      'Solarize': [256 - int(v * 256 / 10) for v in levels],
      'TranslateX': [int(v * 0.3 / 10 * width) for v in levels],
      'TranslateY': [int(v * 0.3 / 10 * height) for v in levels],
  }
  magnitudes['Color'] = magnitudes['Contrast'] = magnitudes['Sharpness'] = magnitudes['Brightness']
  magnitudes['ShearY'] = magnitudes['ShearX']
  drawn = magnitudes.get(name, [])
  if name in GEOMETRIC_OPS:  # The ops whose sign kekmodel draws.
    drawn = drawn + [-m for m in drawn]
  return drawn


def magnitudes_to_check(name, height, width):
  return sorted(set(TEST_MAGNITUDES[name]) | set(kekmodel_magnitudes(name, height, width))
                | set(WRONG_MAGNITUDES.get(name, ())))


def pil_reference(name, image, magnitude):
  """PIL's result of op `name` on one uint8 (H, W, C) image, as float32 (H, W, C)."""
  pil_image = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  return np.asarray(PIL_OPS[name](pil_image, magnitude), np.float32).reshape(image.shape)


def run_ops(images, names):
  """Our ops on every image at every magnitude of `magnitudes_to_check`, in one compilation.

  Returns:
    {name: (magnitudes, float32 (len(magnitudes), K, H, W, C))}.
  """
  height, width = images.shape[1:3]
  checked = {name: magnitudes_to_check(name, height, width) for name in names}
  width_of_table = max(len(m) for m in checked.values())
  table = np.zeros((len(names), width_of_table), np.float32)
  for i, name in enumerate(names):
    table[i, :len(checked[name])] = checked[name]

  @jax.jit
  def all_ops(images, table):
    return [jax.vmap(jax.vmap(randaugment.OP_FUNCTIONS[name], (0, None)), (None, 0))(
        images, table[i]) for i, name in enumerate(names)]

  outputs = all_ops(jnp.asarray(images, jnp.float32), table)
  return {name: (checked[name], np.asarray(out)[:len(checked[name])])
          for name, out in zip(names, outputs)}


@pytest.fixture(scope='module')
def op_outputs(real_images):
  return {group: run_ops(images, randaugment.OPS) for group, images in real_images.items()}


def differing_fraction(ours, reference):
  return float(np.mean(ours != reference))


def assert_matches_pil(name, images, magnitudes, outputs, pil_magnitudes=None):
  """Each output (per magnitude, per image) is PIL's within the op's tolerance."""
  pil_magnitudes = magnitudes if pil_magnitudes is None else pil_magnitudes
  failures = []
  for j, (magnitude, pil_magnitude) in enumerate(zip(magnitudes, pil_magnitudes)):
    allowed = MAX_DIFFERING_FRACTION[name]
    if name == 'Rotate' and magnitude != int(magnitude):
      allowed = ROTATE_NON_INTEGER_MAX_DIFFERING_FRACTION
    for k, image in enumerate(images):
      reference = pil_reference(name, image, pil_magnitude)
      fraction = differing_fraction(outputs[j, k], reference)
      if fraction > allowed:
        failures.append(f'magnitude {magnitude}, image {k}: {fraction:.2%} of pixels differ '
                        f'(max |diff| {np.abs(outputs[j, k] - reference).max()})')
  assert not failures, f'{name} differs from PIL:\n' + '\n'.join(failures[:10])


def test_ops_are_fixmatchs_fourteen():
  assert len(randaugment.OPS) == 14
  assert set(randaugment.OPS) == set(PIL_OPS) == set(randaugment.OP_FUNCTIONS)


@pytest.mark.parametrize('group', ['fashion_mnist', 'photo'])
@pytest.mark.parametrize('name', randaugment.OPS)
def test_op_matches_pil_on_real_images(name, group, real_images, op_outputs):
  images = real_images[group]
  magnitudes, outputs = op_outputs[group][name]
  assert_matches_pil(name, images, magnitudes, outputs)
  assert outputs.dtype == np.float32 and outputs.shape[2:] == images.shape[1:]


def test_autocontrast_reproduces_pils_float64_rounding(real_images, op_outputs):
  """The faint images (maximum 25) are where PIL's float64 LUT gives 254, not 255: an exact
  integer stretch would fail test_op_matches_pil_on_real_images there."""
  images = real_images['fashion_mnist']
  faint = [k for k, image in enumerate(images) if image.max() == 25]
  assert faint
  outputs = op_outputs['fashion_mnist']['AutoContrast'][1][0]
  for k in faint:
    assert pil_reference('AutoContrast', images[k], 0).max() == 254
    assert outputs[k].max() == 254


def test_geometric_ops_match_pil_on_a_non_square_image(real_images):
  """H != W: the rotation centre (W/2, H/2) and which size each translation scales with."""
  crops = real_images['photo'][:2, 4:28, :, :]  # 24 rows, 32 columns.
  for name, (magnitudes, outputs) in run_ops(crops, GEOMETRIC_OPS).items():
    assert_matches_pil(name, crops, magnitudes, outputs)


def pil_rotation_fixed_point(degrees, height, width):
  """PIL's 16.16 fixed-point matrix of image.rotate(degrees): Image.rotate's float64 matrix, then
  libImaging/Geometry.c affine_fixed's FIX, in randaugment._fixed_point_affine's order."""
  angle = -math.radians(degrees % 360.0)
  a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
  d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
  cx, cy = width / 2, height / 2
  c = a * -cx + b * -cy + 0.0 + cx
  f = d * -cx + e * -cy + 0.0 + cy
  fix = lambda v: math.floor(v * 65536.0 + 0.5)
  return (fix(c + a * 0.5 + b * 0.5), fix(b), fix(a), fix(f + d * 0.5 + e * 0.5), fix(e), fix(d))


@pytest.mark.parametrize('height,width', [(28, 28), (32, 32), (24, 32), (96, 96)])
def test_integer_rotations_use_pils_fixed_point_matrix(height, width):
  """Image-independent: the sampling grid of every integer angle (all RandAugment draws) is
  PIL's, on any image of that size. float32 alone misses ~20% of them (e.g. -6 on 28x28)."""
  angles = np.arange(-360, 361)
  ours = jax.jit(jax.vmap(lambda m: randaugment._rotation_fixed_point(m, height, width)))(
      jnp.asarray(angles, jnp.float32))
  expected = np.asarray([pil_rotation_fixed_point(float(a), height, width) for a in angles])
  np.testing.assert_array_equal(np.asarray(ours), expected)


@pytest.mark.parametrize('name', sorted(WRONG_MAGNITUDES))
def test_a_wrong_magnitude_fails_the_comparison(name, real_images, op_outputs):
  pil_magnitude, our_magnitude = WRONG_MAGNITUDES[name]
  # Color is the identity on grayscale images, whatever the magnitude (as PIL's on mode 'L').
  groups = ('photo',) if name == 'Color' else tuple(real_images)
  for group in groups:
    magnitudes, outputs = op_outputs[group][name]
    wrong = outputs[magnitudes.index(our_magnitude)][None]
    with pytest.raises(AssertionError, match='differs from PIL'):
      assert_matches_pil(name, real_images[group], [our_magnitude], wrong,
                         pil_magnitudes=[pil_magnitude])


def test_magnitude_table_is_kekmodels():
  """Levels 1..9 of kekmodel's fixmatch_augment_pool, worked out by hand (unsigned)."""
  table = {name: randaugment.magnitude_table(28, 28)[i, 1:]
           for i, name in enumerate(randaugment.OPS)}
  factors = [0.14, 0.23, 0.32, 0.41, 0.5, 0.59, 0.68, 0.77, 0.86]
  for name in ('Brightness', 'Color', 'Contrast', 'Sharpness'):
    np.testing.assert_allclose(table[name], factors, rtol=1e-6)
  np.testing.assert_array_equal(table['Posterize'], [4, 4, 5, 5, 6, 6, 6, 7, 7])
  np.testing.assert_array_equal(table['Rotate'], [3, 6, 9, 12, 15, 18, 21, 24, 27])
  np.testing.assert_allclose(table['ShearX'], np.arange(1, 10) * 0.03, rtol=1e-6)
  np.testing.assert_array_equal(table['ShearY'], table['ShearX'])
  np.testing.assert_array_equal(table['Solarize'], [231, 205, 180, 154, 128, 103, 77, 52, 26])
  np.testing.assert_array_equal(table['TranslateX'], [0, 1, 2, 3, 4, 5, 5, 6, 7])  # 28 px.
  np.testing.assert_array_equal(randaugment.magnitude_table(28, 32)[randaugment.OPS.index(
      'TranslateX'), 1:], [0, 1, 2, 3, 4, 5, 6, 7, 8])  # 32 px wide.
  for name in ('AutoContrast', 'Equalize', 'Identity'):
    np.testing.assert_array_equal(table[name], 0)


def test_policy_draws_every_op_level_and_sign():
  keys = jax.random.split(jax.random.key(0), 4000)
  ops, magnitudes = jax.jit(jax.vmap(lambda k: randaugment.sample_policy(k, 2, 28, 28)))(keys)
  ops, magnitudes = np.asarray(ops).ravel(), np.asarray(magnitudes).ravel()
  counts = np.bincount(ops, minlength=14)
  # Each op is drawn with probability 1/14 and applied with 0.5 (else it comes back as Identity):
  # 8000 draws, 286 expected per op (std 16).
  identity = randaugment.OPS.index('Identity')
  others = np.delete(counts, identity)
  assert others.min() > 220 and others.max() < 350, counts
  assert abs(counts[identity] / ops.size - (0.5 + 0.5 / 14)) < 0.02, counts
  table = randaugment.magnitude_table(28, 28)
  for i, name in enumerate(randaugment.OPS):
    drawn = set(np.round(magnitudes[ops == i], 5))
    levels = set(np.round(table[i, 1:], 5))
    if name in GEOMETRIC_OPS:
      levels |= {-m for m in levels}
    if name != 'Identity':  # Not-applied ops add Identity with other ops' magnitudes.
      assert drawn == levels, (name, drawn, levels)


def test_rand_augment_is_kekmodels_pil_chain_then_cutout(real_images):
  """strong_augment (jit, vmap, lax.switch) of real images equals PIL applying the drawn ops in
  order (as kekmodel's RandAugmentMC) followed by `cutout` with rand_augment's second key."""
  for group, batch in (('fashion_mnist', real_images['fashion_mnist']),
                       ('photo', real_images['photo'][:2])):
    height, width = batch.shape[1:3]
    size = randaugment.default_cutout_size(height, width)

    def policy_and_keys(key, height=height, width=width):
      policy_key, cutout_key = jax.random.split(key)
      return randaugment.sample_policy(policy_key, 2, height, width), cutout_key

    policy_of = jax.jit(jax.vmap(policy_and_keys))
    cutout_of = jax.jit(jax.vmap(lambda k, image, size=size: randaugment.cutout(k, image, size)))
    applied = set()
    for seed in range(20):
      key = jax.random.key(seed)
      views = np.asarray(jax.jit(randaugment.strong_augment)(key, batch.astype(np.float32)))
      (ops, magnitudes), cutout_keys = policy_of(jax.random.split(key, batch.shape[0]))
      chains = []
      for image, image_ops, image_magnitudes in zip(batch, np.asarray(ops),
                                                    np.asarray(magnitudes)):
        for op, magnitude in zip(image_ops, image_magnitudes):
          image = pil_reference(randaugment.OPS[op], image.astype(np.uint8), float(magnitude))
          applied.add(randaugment.OPS[op])
        chains.append(image)
      expected = np.asarray(cutout_of(cutout_keys, np.stack(chains)))
      np.testing.assert_array_equal(views, expected, err_msg=f'{group}, seed {seed}')
  assert applied == set(randaugment.OPS)  # The chains exercised every op.


@pytest.fixture(scope='module')
def fashion_batch(real_images):
  return real_images['fashion_mnist'].astype(np.float32)


def test_strong_augment_is_a_pure_function_of_key_and_images(fashion_batch):
  augment = jax.jit(randaugment.strong_augment)
  key = jax.random.key(1)
  first = np.asarray(augment(key, fashion_batch))
  np.testing.assert_array_equal(first, np.asarray(augment(key, fashion_batch)))
  other = np.asarray(augment(jax.random.key(2), fashion_batch))
  assert np.mean(first != other) > 0.05


def test_strong_augment_keeps_shape_dtype_and_range(fashion_batch):
  views = jax.jit(randaugment.strong_augment)(jax.random.key(3), fashion_batch)
  assert views.shape == fashion_batch.shape and views.dtype == jnp.float32
  views = np.asarray(views)
  assert views.min() >= 0 and views.max() <= 255
  np.testing.assert_array_equal(views, np.round(views))  # uint8 values, as PIL's.


def test_each_image_gets_its_own_draw(fashion_batch):
  """One image repeated: every copy has its own key, so (almost) every view differs."""
  batch = np.repeat(fashion_batch[:1], 8, axis=0)
  views = np.asarray(jax.jit(randaugment.strong_augment)(jax.random.key(4), batch))
  distinct = {view.tobytes() for view in views}
  assert len(distinct) >= 7


def test_cutout_square_size_and_fill():
  size = randaugment.default_cutout_size(28, 28)
  assert size == 14 and randaugment.default_cutout_size(32, 32) == 16
  keys = jax.random.split(jax.random.key(0), 500)
  image = jnp.zeros((28, 28, 1))
  cut = np.asarray(jax.jit(jax.vmap(lambda k: randaugment.cutout(k, image, size)))(keys))[..., 0]
  assert set(np.unique(cut)) == {0., randaugment.CUTOUT_FILL} and randaugment.CUTOUT_FILL == 127
  masks = cut == randaugment.CUTOUT_FILL
  rows, cols = masks.any(axis=2), masks.any(axis=1)
  # Each mask is one axis-aligned rectangle: the square clipped by the border.
  np.testing.assert_array_equal(masks, rows[:, :, None] & cols[:, None, :])
  for line in np.concatenate([rows, cols]):
    on = np.flatnonzero(line)
    assert on.size and on[-1] - on[0] + 1 == on.size  # Contiguous.
  heights, widths = rows.sum(axis=1), cols.sum(axis=1)
  assert heights.max() == widths.max() == size  # Whole squares inside the image...
  assert heights.min() == widths.min() == size // 2  # ...clipped to 7 rows by a centre on row 0.
  interior = (heights == size) & (widths == size)
  assert np.all(masks[interior].sum(axis=(1, 2)) == size * size)
  # Centres are uniform over the 28 rows: the square is whole for 15 of them, (15/28)^2 = 29%.
  assert 0.2 < interior.mean() < 0.38
  np.testing.assert_array_equal(randaugment.cutout(keys[0], image, 0), image)


def test_rejects_bad_shapes():
  with pytest.raises(ValueError, match=r'\(N, H, W, C\)'):
    randaugment.strong_augment(jax.random.key(0), np.zeros((28, 28, 1), np.float32))
  with pytest.raises(ValueError, match='C = 1 or 3'):
    randaugment.rand_augment(jax.random.key(0), np.zeros((28, 28, 2), np.float32))


def test_plot_strong_views_writes_a_png(tmp_path):
  path = os.path.join(ROOT, 'launch', 'plot_strong_views.py')
  spec = importlib.util.spec_from_file_location('plot_strong_views', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  # 2 views of the 4 Fashion-MNIST rows: the (8, 28, 28, 1) batch compiled above.
  out = module.plot_strong_views(str(tmp_path / 'views.png'), num_views=2)
  with open(out, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with Image.open(out) as image:
    assert image.width > 200 and image.height > 200
