"""Tests for alc_jax.models: shapes, exact parameter counts, train/eval semantics, dtypes."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alc_jax.models import MODEL_NAMES, create_model
from alc_jax.models.cnn13 import max_pool_2x2, scale_channels


def _model(name, num_classes=10, width=1.0, dropout=0.5, dtype=jnp.float32):
  cfg = ml_collections.ConfigDict({'name': name, 'width': width, 'dropout': dropout})
  return create_model(cfg, num_classes, dtype=dtype)


def _num_params(model, input_shape):
  """Counts 'params' (BN scale/bias included, running stats excluded) without computing."""
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros(input_shape), train=False))
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables['params']))


def _cnn13_count_from_table1(in_channels, num_classes):
  """CNN-13 parameter count written out from Table 1 (reference 3 x 256 convs)."""
  convs = [(in_channels, 128, 3), (128, 128, 3), (128, 128, 3),
           (128, 256, 3), (256, 256, 3), (256, 256, 3),
           (256, 512, 3), (512, 256, 1), (256, 128, 1)]
  conv_weights = sum(k * k * cin * cout for cin, cout, k in convs)  # Bias-free convs.
  batch_norm = sum(2 * cout for _, cout, _ in convs)  # Scale + bias after every conv.
  dense = 128 * num_classes + num_classes
  return conv_weights + batch_norm + dense


# ---------------------------------------------------------------------------------------------
# Parameter counts at full width (shape-only, no compute).


def test_cnn13_param_count_matches_table1():
  expected = _cnn13_count_from_table1(3, 10)
  assert expected == 3_121_802
  assert _num_params(_model('cnn13'), (1, 32, 32, 3)) == expected
  assert abs(expected - 3.1e6) / 3.1e6 < 0.01  # "3.1M" as usually cited.
  # Fashion-MNIST: only the first conv's input channels change.
  assert _num_params(_model('cnn13'), (1, 28, 28, 1)) == _cnn13_count_from_table1(1, 10)


def test_wrn28_2_param_count():
  n = _num_params(_model('wrn28_2'), (1, 32, 32, 3))
  assert n == 1_467_610  # Pinned: this implementation.
  assert abs(n - 1_467_610) / 1_467_610 < 0.02  # The usual WRN-28-2 figure.
  assert abs(n - 1.5e6) / 1.5e6 < 0.03  # Oliver et al. 2018: "1.5M parameters".


def test_resnet18_param_count_matches_torchvision():
  assert _num_params(_model('resnet18', num_classes=1000), (1, 224, 224, 3)) == 11_689_512


def test_tiny_cnn_param_count():
  # Two bias-free 3x3 convolutions of 128 channels, a BatchNorm (scale + bias) after each, the head.
  convs = 3 * 3 * 3 * 128 + 3 * 3 * 128 * 128
  assert _num_params(_model('tiny_cnn'), (1, 32, 32, 3)) == convs + 2 * 2 * 128 + 128 * 10 + 10


# ---------------------------------------------------------------------------------------------
# Shapes and semantics at small width (real compute).


@functools.lru_cache(maxsize=None)
def _variables(name, width, in_channels, hw=32):
  """Initialised variables, cached: random init dominates the runtime of these tests on CPU.

  The 'rbg' PRNG compiles several times faster than threefry on CPU; the init itself is the same.
  """
  model = _model(name, num_classes=7, width=width)
  return jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0, impl='rbg'), jnp.zeros((1, hw, hw, in_channels)))


def _apply_fns(model, x):
  """Jitted eval and train applies (one compile each instead of op-by-op dispatch)."""
  evaluate = jax.jit(lambda v: model.apply(v, x, train=False))
  train = jax.jit(lambda v, key: model.apply(v, x, train=True, rngs={'dropout': key},
                                             mutable=['batch_stats']))
  return evaluate, train


@pytest.mark.parametrize('name,input_shape,width,feature_shape', [
    ('cnn13', (2, 32, 32, 3), 0.125, (2, 6, 6, 16)),
    ('cnn13', (2, 28, 28, 1), 0.125, (2, 5, 5, 16)),
    ('cnn13', (2, 12, 12, 3), 0.125, (2, 1, 1, 16)),
    ('wrn28_2', (2, 32, 32, 3), 0.125, (2, 8, 8, 16)),
    ('resnet18', (2, 64, 64, 3), 0.125, (2, 2, 2, 64)),
    ('tiny_cnn', (2, 16, 16, 1), 0.0625, (2, 8, 8, 8)),
])
def test_shapes_and_train_eval_semantics(name, input_shape, width, feature_shape):
  model = _model(name, num_classes=7, width=width)
  x = jax.random.normal(jax.random.key(1), input_shape)
  variables = _variables(name, width, input_shape[-1], max(32, input_shape[1]))
  assert set(variables) == {'params', 'batch_stats'}
  evaluate, train = _apply_fns(model, x)

  # Eval: shapes, float32, deterministic.
  logits, features = evaluate(variables)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert features.shape == feature_shape and features.dtype == jnp.float32
  np.testing.assert_array_equal(logits, evaluate(variables)[0])

  # `features` is the map right before global average pooling + the dense head.
  head = variables['params']['head']
  np.testing.assert_allclose(features.mean(axis=(1, 2)) @ head['kernel'] + head['bias'],
                             logits, rtol=1e-4, atol=1e-4)

  # Train: batch statistics are updated; dropout (CNN-13, TinyCNN) depends on the rng.
  (train_logits, train_features), new_vars = train(variables, jax.random.key(2))
  assert train_logits.shape == (2, 7) and train_features.shape == feature_shape
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables['batch_stats'],
                         new_vars['batch_stats'])
  assert all(jax.tree.leaves(changed))
  np.testing.assert_array_equal(train_logits, train(variables, jax.random.key(2))[0][0])
  other_logits = train(variables, jax.random.key(3))[0][0]
  if name in ('cnn13', 'tiny_cnn'):
    assert not np.allclose(train_logits, other_logits)
  else:  # No dropout in the residual networks: the output does not depend on the rng.
    np.testing.assert_array_equal(train_logits, other_logits)


@pytest.mark.parametrize('shape', [(3, 8, 8, 5), (2, 7, 9, 3), (1, 2, 6, 10, 4)])
def test_max_pool_2x2_equals_flax_max_pool_bit_for_bit(shape):
  # CNN-13's pool (a max over reshaped windows, for XLA:CPU's speed) against nn.max_pool: values,
  # gradients and a forward-over-reverse product (VAT's exact power iteration), on continuous
  # inputs and on inputs full of ties (where the gradient must go to each window's first maximum,
  # as select-and-scatter sends it); odd sizes drop the last row/column; extra batch dimensions.
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  rng = np.random.default_rng(0)
  for x in (rng.normal(size=shape), rng.integers(-1, 2, size=shape)):
    x = jnp.asarray(x, jnp.float32)
    g = jnp.asarray(rng.normal(size=reference(x).shape), jnp.float32)
    v = jnp.asarray(rng.normal(size=shape), jnp.float32)
    results = []
    for pool in (reference, max_pool_2x2):
      grad = jax.jit(jax.grad(lambda x, pool=pool: jnp.sum(pool(x) * g)))
      hvp = jax.jvp(jax.grad(lambda x, pool=pool: jnp.sum(pool(x) ** 3)), (x,), (v,))[1]
      results.append([pool(x), grad(x), hvp])
    for i, (ours, theirs) in enumerate(zip(results[1], results[0])):
      assert ours.shape == theirs.shape
      if i < 2:  # Values and gradients: the same bytes.
        assert np.asarray(ours).tobytes() == np.asarray(theirs).tobytes()
      else:  # The product: equal values; a zero's sign may differ (select-and-scatter adds to +0).
        np.testing.assert_array_equal(ours, theirs)


def test_cnn13_without_dropout_is_deterministic_in_train_mode():
  model = _model('cnn13', num_classes=7, width=0.125, dropout=0.0)
  _, train = _apply_fns(model, jax.random.normal(jax.random.key(1), (2, 16, 16, 3)))
  variables = _variables('cnn13', 0.125, 3)
  np.testing.assert_array_equal(train(variables, jax.random.key(0))[0][0],
                                train(variables, jax.random.key(1))[0][0])


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_bfloat16_compute(name):
  model = _model(name, num_classes=7, width=0.125, dtype=jnp.bfloat16)
  hw = 64 if name == 'resnet18' else 32
  x = jax.random.normal(jax.random.key(1), (2, hw, hw, 3))
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))  # Params stay float32.
  variables = _variables(name, 0.125, 3, hw)
  evaluate, train = _apply_fns(model, x)
  (logits, features), _ = train(variables, jax.random.key(2))
  assert logits.dtype == jnp.float32 and features.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))
  bf16_logits, _ = evaluate(variables)
  f32_logits, _ = _apply_fns(_model(name, num_classes=7, width=0.125), x)[0](variables)
  assert bool(jnp.all(jnp.isfinite(bf16_logits)))
  np.testing.assert_allclose(bf16_logits, f32_logits, rtol=0.1, atol=0.1)


def test_unknown_model_name_raises():
  with pytest.raises(ValueError, match='cnn13.*wrn28_2.*resnet18'):
    _model('vgg16')


def test_width_multiplier_rounding():
  assert scale_channels(128, 1.0) == 128
  assert scale_channels(128, 0.125) == 16
  assert scale_channels(16, 0.01) == 1
  model = _model('cnn13', width=0.5)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                             train=False))
  assert shapes['params']['conv3a']['kernel'].shape == (3, 3, 128, 256)
