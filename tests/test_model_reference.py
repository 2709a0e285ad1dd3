"""Each backbone's forward pass against a float64 NumPy reference written from its description.

tests/test_models.py checks shapes, parameter counts and train/eval semantics; none of that sees
a LeakyReLU slope, a BatchNorm epsilon, where dropout sits or which input a residual shortcut
takes. Here each network is written out in NumPy, layer by layer, from the references its module
docstring cites (CNN-13: Laine & Aila's `build_network`; WRN-28-2: Oliver et al.'s `_residual`;
ResNet-18: torchvision's `resnet18`), and run on the module's own variables with every BatchNorm
scale, bias and running statistic drawn at random, so that each constant moves the output.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alc_jax.models import create_model

LRELU_SLOPE = 0.1  # CNN-13 and WRN-28-2 (both references).
TF_EPSILON = 1e-3  # BatchNorm's epsilon in CNN-13, TinyCNN, WRN-28-2 (TF's batch_norm default).
TORCH_EPSILON = 1e-5  # ResNet-18 (torch's BatchNorm2d).


def _model(name, width, dropout=0.5):
  config = ml_collections.ConfigDict({'name': name, 'width': width, 'dropout': dropout})
  return create_model(config, 5)


def _same_pads(size, kernel, stride):
  """TensorFlow's 'SAME' padding of one axis: the output has ceil(size / stride) positions and
  the odd pixel, if any, goes after."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def conv(x, kernel, stride=1, padding='SAME'):
  """Cross-correlation of (N, H, W, Cin) with (kh, kw, Cin, Cout), no bias."""
  kh, kw = kernel.shape[:2]
  if padding == 'SAME':
    padding = (_same_pads(x.shape[1], kh, stride), _same_pads(x.shape[2], kw, stride))
  elif padding == 'VALID':
    padding = ((0, 0), (0, 0))
  x = np.pad(x, ((0, 0), *padding, (0, 0)))
  oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
  out = np.zeros((x.shape[0], oh, ow, kernel.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      window = x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
      out += window @ kernel[i, j]
  return out


def batch_norm(x, params, stats, epsilon, train):
  """Inference: the running statistics; training: the batch's (biased variance, as BN's paper)."""
  if train:
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  else:
    mean, var = stats['mean'], stats['var']
  return (x - mean) / np.sqrt(var + epsilon) * params['scale'] + params['bias']


def lrelu(x):
  return np.where(x >= 0, x, LRELU_SLOPE * x)


def relu(x):
  return np.maximum(x, 0)


def max_pool(x, size, stride, pad=0):
  """Max over size x size windows; padded pixels never win (-inf), as torch's MaxPool2d."""
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
  oh, ow = (x.shape[1] - size) // stride + 1, (x.shape[2] - size) // stride + 1
  windows = [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
             for i in range(size) for j in range(size)]
  return np.max(windows, axis=0)


def head(features, params):
  pooled = features.mean(axis=(1, 2))  # Global average pooling.
  return pooled @ params['kernel'] + params['bias']


def cnn13_reference(x, params, stats, train=False, dropped=None):
  """Laine & Aila's network: 3 x (3x3, 128) -> max-pool -> dropout -> 3 x (3x3, 256) -> max-pool
  -> dropout -> 3x3 VALID 512 -> 1x1 256 -> 1x1 128 -> mean -> dense; every conv -> BN -> LReLU.

  `dropped`: the two dropout layers' outputs (the mask is the model's own draw), in train mode.
  """
  def unit(x, name, padding='SAME'):
    y = conv(x, params[f'conv{name}']['kernel'], padding=padding)
    return lrelu(batch_norm(y, params[f'bn{name}'], stats.get(f'bn{name}'), TF_EPSILON,
                            train))

  for block, names in enumerate((('1a', '1b', '1c'), ('2a', '2b', '2c'))):
    for name in names:
      x = unit(x, name)
    x = max_pool(x, 2, 2)
    if dropped is not None:  # Inverted dropout at rate 0.5: kept values doubled.
      kept = dropped[block] != 0
      np.testing.assert_allclose(dropped[block], np.where(kept, x / 0.5, 0), rtol=2e-4,
                                 atol=2e-4)
      x = dropped[block]
  x = unit(x, '3a', 'VALID')
  x = unit(x, '3b')
  features = unit(x, '3c')
  return head(features, params['head']), features


def tiny_cnn_reference(x, params, stats):
  x = lrelu(batch_norm(conv(x, params['conv1']['kernel']), params['bn1'], stats['bn1'],
                       TF_EPSILON, False))
  x = max_pool(x, 2, 2)
  features = lrelu(batch_norm(conv(x, params['conv2']['kernel']), params['bn2'], stats['bn2'],
                              TF_EPSILON, False))
  return head(features, params['head']), features


def wrn_reference(x, params, stats):
  """Oliver et al.'s WRN-28-2: 3x3 conv, three groups of 4 pre-activation units (strides 1, 2,
  2), BN -> LReLU -> mean -> dense. A unit: BN -> LReLU on the input (the first unit of the
  first group also feeds its shortcut the activated input, the others the raw one), 3x3 conv
  with the stride, BN -> LReLU, 3x3 conv, plus the shortcut (a strided 1x1 conv where the shape
  changes)."""
  bn = lambda x, p, s: batch_norm(x, p, s, TF_EPSILON, False)
  x = conv(x, params['init_conv']['kernel'])
  for group, stride in enumerate((1, 2, 2)):
    for i in range(4):
      name = f'unit_{group + 1}_{i}'
      p, s = params[name], stats[name]
      activated = lrelu(bn(x, p['BatchNorm_0'], s['BatchNorm_0']))
      shortcut = activated if (group, i) == (0, 0) else x
      y = conv(activated, p['Conv_0']['kernel'], stride if i == 0 else 1)
      y = lrelu(bn(y, p['BatchNorm_1'], s['BatchNorm_1']))
      y = conv(y, p['Conv_1']['kernel'])
      if 'shortcut' in p:
        shortcut = conv(shortcut, p['shortcut']['kernel'], stride if i == 0 else 1)
      x = y + shortcut
  features = lrelu(bn(x, params['bn_last'], stats['bn_last']))
  return head(features, params['head']), features


def resnet18_reference(x, params, stats):
  """torchvision's resnet18: 7x7/2 conv (pad 3) -> BN -> ReLU -> 3x3/2 max-pool (pad 1), four
  stages of two basic blocks (3x3 conv with the stride, pad 1 -> BN -> ReLU -> 3x3 conv -> BN,
  plus the input or its strided 1x1 conv -> BN projection, then ReLU), mean, dense."""
  bn = lambda x, p, s: batch_norm(x, p, s, TORCH_EPSILON, False)
  pad1 = ((1, 1), (1, 1))
  x = conv(x, params['conv_init']['kernel'], 2, ((3, 3), (3, 3)))
  x = max_pool(relu(bn(x, params['bn_init'], stats['bn_init'])), 3, 2, pad=1)
  for block in range(8):
    p, s = params[f'BasicBlock_{block}'], stats[f'BasicBlock_{block}']
    stride = 2 if block in (2, 4, 6) else 1
    y = relu(bn(conv(x, p['Conv_0']['kernel'], stride, pad1), p['BatchNorm_0'], s['BatchNorm_0']))
    y = bn(conv(y, p['Conv_1']['kernel'], 1, pad1), p['BatchNorm_1'], s['BatchNorm_1'])
    if 'conv_proj' in p:
      x = bn(conv(x, p['conv_proj']['kernel'], stride, 'VALID'), p['norm_proj'], s['norm_proj'])
    x = relu(x + y)
  return head(x, params['head']), x


REFERENCES = {'cnn13': cnn13_reference, 'tiny_cnn': tiny_cnn_reference, 'wrn28_2': wrn_reference,
              'resnet18': resnet18_reference}


@functools.lru_cache(maxsize=None)
def _random_variables(name, width, input_shape):
  """The module's variables with every BatchNorm scale, bias, mean and variance random (away
  from 1 and 0, so that epsilon, the statistics and their order all show in the output)."""
  model = _model(name, width)
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0, impl='rbg'), jnp.zeros(input_shape))
  rng = np.random.default_rng(1)

  def draw(path, leaf):
    key = path[-1].key
    shape = leaf.shape
    if key in ('scale', 'var'):
      return rng.uniform(0.02, 1.5, shape)
    if key in ('bias', 'mean'):
      return rng.normal(0, 0.3, shape)
    return np.asarray(leaf, np.float64)

  return jax.tree_util.tree_map_with_path(draw, jax.device_get(variables))


@pytest.mark.parametrize('name,width,input_shape', [
    ('cnn13', 0.0625, (2, 16, 16, 1)),
    ('tiny_cnn', 0.0625, (2, 8, 8, 3)),
    ('wrn28_2', 0.125, (2, 8, 8, 3)),
    ('resnet18', 0.125, (2, 32, 32, 3)),
])
def test_inference_forward_equals_the_numpy_reference(name, width, input_shape):
  variables = _random_variables(name, width, input_shape)
  x = np.random.default_rng(2).normal(size=input_shape)
  as_f32 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
  logits, features = jax.jit(lambda v, x: _model(name, width).apply(v, x, train=False))(
      as_f32(variables), jnp.asarray(x, jnp.float32))
  want_logits, want_features = REFERENCES[name](x, variables['params'], variables['batch_stats'])
  scale = np.abs(want_features).max()
  np.testing.assert_allclose(features, want_features, rtol=1e-4, atol=1e-4 * scale)
  np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-4 * np.abs(want_logits).max())


def test_cnn13_training_forward_dropout_and_running_statistics():
  # Train mode: BatchNorm normalises with the batch's statistics and moves each running average
  # by 1 - momentum (0.999) towards them; dropout at rate 0.5 follows each of the first two
  # max-pools (the model's masks, read from its Dropout layers, are reused by the reference).
  name, width, shape = 'cnn13', 0.0625, (4, 16, 16, 1)
  variables = _random_variables(name, width, shape)
  x = np.random.default_rng(3).normal(size=shape)
  model = _model(name, width)
  (logits, features), updated = jax.jit(lambda v, x: model.apply(
      v, x, train=True, rngs={'dropout': jax.random.key(4)},
      mutable=['batch_stats', 'intermediates'], capture_intermediates=True))(
          jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), variables),
          jnp.asarray(x, jnp.float32))
  inter = updated['intermediates']
  assert sorted(k for k in inter if k.startswith('Dropout')) == ['Dropout_0', 'Dropout_1']
  dropped = [np.asarray(inter[f'Dropout_{i}']['__call__'][0], np.float64) for i in (0, 1)]
  for d in dropped:  # About half of each layer's values are dropped.
    assert 0.35 < np.mean(d == 0) < 0.65
  params, stats = variables['params'], variables['batch_stats']
  want_logits, want_features = cnn13_reference(x, params, {}, train=True, dropped=dropped)
  np.testing.assert_allclose(features, want_features, rtol=1e-4,
                             atol=1e-4 * np.abs(want_features).max())
  np.testing.assert_allclose(logits, want_logits, rtol=1e-4,
                             atol=1e-4 * np.abs(want_logits).max())
  # The first layer's running statistics: m * old + (1 - m) * the batch's (biased variance).
  y = conv(x, params['conv1a']['kernel'])
  for stat, batch in (('mean', y.mean(axis=(0, 1, 2))), ('var', y.var(axis=(0, 1, 2)))):
    want = 0.999 * stats['bn1a'][stat] + 0.001 * batch
    np.testing.assert_allclose(updated['batch_stats']['bn1a'][stat], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name,width,layer', [
    ('cnn13', 0.5, ('conv2a',)),  # (3, 3, 64, 128)
    ('wrn28_2', 1.0, ('unit_1_0', 'Conv_0')),  # (3, 3, 16, 32)
    ('resnet18', 1.0, ('conv_init',)),  # (7, 7, 3, 64)
])
def test_convolutions_start_he_normal_fan_out(name, width, layer):
  # torchvision's kaiming_normal_(mode='fan_out'), as Mean Teacher's PyTorch CNN-13 initialises:
  # std sqrt(2 / (kh kw Cout)) (fan_in would give 1.4 to 4.6 times it here), untruncated.
  model = _model(name, width)
  params = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(5, impl='rbg'), jnp.zeros((1, 32, 32, 3)))['params']
  kernel = np.asarray(functools.reduce(lambda tree, key: tree[key], layer, params)['kernel'])
  kh, kw, _, channels_out = kernel.shape
  want = np.sqrt(2 / (kh * kw * channels_out))
  assert abs(np.std(kernel) / want - 1) < 0.05
  # A normal's tails: 4.6 % of the values beyond two standard deviations (none if truncated).
  assert 0.035 < np.mean(np.abs(kernel) > 2 * want) < 0.06
