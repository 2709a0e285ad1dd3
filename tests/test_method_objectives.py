"""Each method's objective against NumPy in float64: which passes it runs (model, statistics, view,
dropout key), how its terms are weighted (w1's ramp-up, Eq. 14 / 15's weights, w2) and summed.

A fake model stands in for the network (scenic's trainer tests do the same): its outputs say
which parameters, statistics, view and key a pass was given, so a pass handed the wrong one fails.
The pure losses are checked term by term in test_losses.py; FixMatch in test_fixmatch.py.
"""

import functools
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alc_jax import ema, methods
from alc_jax.data import augment
from alc_jax.methods import alc, base
from configs import common, default
from tests.conftest import np_log_softmax, np_softmax

B, K, H, C = 12, 4, 4, 2  # Batch, classes, image side, channels.
RAMP = 0.37  # The sigmoid ramp-up's value at this step: w1 and w2 are scaled by it.
RAMPUP_STEPS = 10.0


def _nll(logits, classes):
  return -np_log_softmax(logits)[np.arange(len(classes)), classes]


class FakeModel:
  """logits = w * mean(input) per image + the statistic m + uniform(dropout key): each part tells
  a pass's parameters, statistics, view and key apart. Its pass moves m towards the input mean."""

  def apply(self, variables, inputs, train, with_similarity, rngs, mutable):
    del train, with_similarity, mutable
    w, m = variables['params']['w'], variables['batch_stats']['m']
    means = jnp.mean(inputs, axis=(1, 2, 3))
    logits = means[:, None] * w + m + jax.random.uniform(rngs['dropout'], (K,))
    return (logits, inputs, None), {'batch_stats': {'m': 0.5 * m + jnp.mean(means)}}


def fake_pass(params, stats, view, key):
  """FakeModel's pass in float64: (logits, the statistics it leaves)."""
  means = np.asarray(view, np.float64).mean(axis=(1, 2, 3))
  noise = np.asarray(jax.random.uniform(key, (K,)), np.float64)
  logits = means[:, None] * np.asarray(params['w'], np.float64) + np.asarray(stats['m']) + noise
  return logits, 0.5 * np.asarray(stats['m'], np.float64) + means.mean()


def _config(method, **overrides):
  config = default.get_config()
  config.method = method
  config.augment.translate, config.augment.flip, config.augment.noise_std = 1, True, 0.3
  config.pseudo_label_threshold = 0.5  # Some rows pass it, some do not.
  config.sntg.base = 'mean_teacher'
  for key, value in overrides.items():
    common.set_path(config, key, value)
  return config


def _inputs():
  """(params, state, batch, rng): the student's and the teacher's parameters w and statistic m
  differ; images of different brightness get different classes; a step at which the sigmoid
  ramp-up is RAMP."""
  rng = np.random.default_rng(0)
  params = {'w': jnp.asarray([12.0, -12.0, 24.0, -6.0])}
  opt_state = ema.init_teacher(ema.ema_teacher(0.9).init({'w': jnp.asarray([-8.0, 8, 16, -16])}),
                               {'m': jnp.asarray([0.7, 0.2, -0.3, 0.1])})
  # exp(-5 (1 - t / T)^2) = RAMP at t = T (1 - sqrt(-log(RAMP) / 5)).
  step = jnp.float32(RAMPUP_STEPS * (1 - np.sqrt(-np.log(RAMP) / 5)))
  state = types.SimpleNamespace(step=step, batch_stats={'m': jnp.full((K,), 0.1)},
                                opt_state=opt_state, prior=jnp.asarray([0.1, 0.2, 0.3, 0.4]))
  labeled = np.arange(B) < 5
  brightness = np.linspace(0.1, 1.0, B)[:, None, None, None]
  images = rng.integers(0, 256, (B, H, H, C)) * brightness
  batch = {'image': jnp.asarray(images, jnp.uint8),
           'label': jnp.asarray(np.where(labeled, rng.integers(0, K, B), -1), jnp.int32),
           'labeled': jnp.asarray(labeled)}
  return params, state, batch, jax.random.key(3)


def _loss(method_name, config):
  """methods.loss_fn with FakeModel: (total, aux, what the reference needs)."""
  params, state, batch, rng = _inputs()
  normalization = lambda images: images.astype(jnp.float32) / 255.0 - 0.5
  method = methods.get(method_name)
  if config.alc.enabled:
    method = alc.WithALC(method)
  total, aux = methods.loss_fn(params, state, batch, rng, method=method, model=FakeModel(),
                               config=config, normalization=normalization,
                               rampup_steps=RAMPUP_STEPS)
  keys = base.step_keys(rng)
  x = normalization(batch['image'])
  aug = config.augment
  views = dict(zip(('augment', 'augment2'), augment.augment_views(
      [keys['augment'], keys['augment2']], x, aug.translate, aug.flip, aug.noise_std)))
  return float(total), jax.tree.map(np.asarray, aux), dict(
      params=params, state=state, batch=jax.tree.map(np.asarray, batch), keys=keys, views=views)


def test_pseudo_label_weighted_by_lee2013_alpha_at_the_step_s_epoch():
  """config.pseudo_label_schedule='lee2013': the pseudo-label term's weight is Lee's alpha(t) at
  the step's epoch (t = step / steps_per_epoch), not w1(t); the supervised term is unchanged."""
  params, state, batch, rng = _inputs()
  normalization = lambda images: images.astype(jnp.float32) / 255.0 - 0.5
  config = _config('pseudo_label')
  totals, terms = {}, {}
  for schedule in ('recipe', 'lee2013'):
    config.pseudo_label_schedule = schedule
    state = types.SimpleNamespace(**{**vars(state), 'step': jnp.float32(700.0)})
    totals[schedule], aux = methods.loss_fn(
        params, state, batch, rng, method=methods.get('pseudo_label'), model=FakeModel(),
        config=config, normalization=normalization, rampup_steps=RAMPUP_STEPS,
        steps_per_epoch=2)  # Step 700 is epoch 350: alpha = 3 * 250 / 500.
    terms[schedule] = aux['metrics']
  lee = terms['lee2013']
  np.testing.assert_allclose(lee['weights/consistency'], 1.5, rtol=1e-6)
  np.testing.assert_allclose(totals['lee2013'],
                             lee['losses/supervised'] + 1.5 * lee['losses/pseudo_label'],
                             rtol=1e-5)
  assert terms['recipe']['weights/consistency'] == config.consistency_weight  # Ramped up: w1.
  with pytest.raises(ValueError, match='pass steps_per_epoch'):
    methods.loss_fn(params, state, batch, rng, method=methods.get('pseudo_label'),
                    model=FakeModel(), config=config, normalization=normalization,
                    rampup_steps=RAMPUP_STEPS)


def _reference(method_name, config, ref):
  """(total, the target's logits, the teacher's statistics after its pass) in float64."""
  params, state, batch, keys, views = (ref[k] for k in ('params', 'state', 'batch', 'keys',
                                                          'views'))
  labels, labeled = batch['label'], batch['labeled']
  teacher = ema.get_teacher(state.opt_state)
  student, _ = fake_pass(params, state.batch_stats, views['augment'], keys['dropout'])
  w1 = config.consistency_weight * RAMP
  total = _nll(student, np.clip(labels, 0, None))[labeled].mean()
  target, teacher_stats = None, None
  name = config.sntg.base if method_name == 'sntg' else method_name
  if name == 'pi_model':  # Eq. 1: the student again, on the second view under the second key.
    target, _ = fake_pass(params, state.batch_stats, views['augment2'], keys['dropout2'])
  if name == 'mean_teacher':  # Eq. 3: the teacher's parameters and its own statistics.
    target, teacher_stats = fake_pass(teacher.params, teacher.batch_stats, views['augment2'],
                                      keys['dropout2'])
  if target is not None:
    mse = ((np_softmax(student) - np_softmax(target)) ** 2).sum(-1) / K
    total += w1 * mse.mean()
  if method_name == 'pseudo_label':
    probs = np_softmax(student)
    mask = ~labeled & (probs.max(-1) >= config.pseudo_label_threshold)
    assert 0 < mask.sum() < (~labeled).sum()  # The threshold is exercised.
    total += w1 * _nll(student, probs.argmax(-1))[mask].sum() / mask.sum()
  if method_name in ('vat', 'vat_entmin'):
    # FakeModel sees an image through its mean only, so KL(p(x) || p(x + r)) depends on mean(r):
    # the power iteration's H d is uniform over the pixels, with the sign of the random d's mean.
    x = np.asarray(views['augment'])
    d = np.asarray(jax.random.normal(keys['vat'], x.shape, jnp.float32))
    shift = config.vat.epsilon * np.sign(d.mean(axis=(1, 2, 3))) / np.sqrt(x[0].size)
    adversarial, _ = fake_pass(params, state.batch_stats, x + shift[:, None, None, None],
                               keys['dropout'])
    p = np_softmax(student)
    kl = (p * (np.log(p) - np.log(np_softmax(adversarial)))).sum(-1)
    total += config.vat.weight * RAMP * kl.mean()
    if method_name == 'vat_entmin':
      total += config.vat.entmin_weight * -(p * np.log(p)).sum(-1).mean()
  if method_name == 'sntg':  # Luo et al.: pairs the target puts in one class pull, others push.
    h = np.asarray(views['augment'], np.float64).mean(axis=(1, 2))
    d = np.sqrt(((h[:, None] - h[None]) ** 2).mean(-1))  # The public code's mean over dimensions.
    classes = np.where(labeled, labels, target.argmax(-1))  # Labeled rows: their labels.
    same = classes[:, None] == classes[None]
    pair = np.where(same, d ** 2, np.maximum(config.sntg.margin - d, 0) ** 2)
    sntg = (pair * (1 - np.eye(B))).sum() / (B * (B - 1))
    total += w1 * config.sntg.weight * sntg
  return total, target, teacher_stats


@pytest.mark.parametrize('method_name', ['supervised', 'pseudo_label', 'pi_model',
                                         'mean_teacher', 'sntg', 'vat', 'vat_entmin'])
def test_each_method_objective_matches_numpy(method_name):
  config = _config(method_name)
  total, aux, ref = _loss(method_name, config)
  want, target, teacher_stats = _reference(method_name, config, ref)
  np.testing.assert_allclose(total, want, rtol=2e-5)
  np.testing.assert_allclose(aux['metrics']['losses/total'], want, rtol=2e-5)
  if teacher_stats is None:
    assert aux['teacher_batch_stats'] is None
  else:  # The teacher's statistics after its own pass, handed to its update (ema.py).
    np.testing.assert_allclose(aux['teacher_batch_stats']['m'], teacher_stats, rtol=1e-6)
  if target is not None:
    assert 'weights/consistency' in aux['metrics']
    np.testing.assert_allclose(aux['metrics']['weights/consistency'],
                               config.consistency_weight * RAMP, rtol=1e-5)
  # The student's statistics after its pass on the first view.
  means = np.asarray(ref['views']['augment'], np.float64).mean()
  np.testing.assert_allclose(aux['batch_stats']['m'], 0.05 + means, rtol=1e-6)
  labels, labeled = ref['batch']['label'], ref['batch']['labeled']
  student, _ = fake_pass(ref['params'], ref['state'].batch_stats, ref['views']['augment'],
                         ref['keys']['dropout'])
  np.testing.assert_allclose(aux['metrics']['train/accuracy'],
                             (student.argmax(-1) == labels)[labeled].mean(), rtol=1e-6)


def _alc_reference(config, student, target, similarity, labels, labeled, prior):
  """ALC's additions in float64: Eq. 14 / 15's weights, w2 * Eq. 13 and the graph loss."""
  a = config.alc
  hard = lambda classes: 1 - prior[classes]
  weights_sup = np.ones(B) if a.imbalance == 'none' else hard(np.clip(labels, 0, None))
  if a.imbalance == 'none' or target is None:
    weights_cons = np.ones(B)
  else:
    q = np_softmax(target)
    soft = q.max(-1) * hard(q.argmax(-1))
    weights_cons = hard(q.argmax(-1)) if a.imbalance == 'hard' else np.where(
        labeled, hard(q.argmax(-1)), soft)
  outputs = np_softmax(student) if a.outputs == 'probs' else student
  groups = similarity.shape[0]
  n = B // groups
  divisor = {'batch': n, 'pairs': n ** 2, 'pairs_classes': n ** 2 * K}[a.pairwise_scale]
  reference = student if target is None else target
  targets = np_softmax(reference) if a.outputs == 'probs' else reference
  if a.outputs == 'probs':
    targets = np.where(labeled[:, None], np.eye(K)[np.clip(labels, 0, None)], targets)
  alc_terms, graph_terms = [], []
  for g in range(groups):
    rows = slice(g * n, (g + 1) * n)
    s, o = similarity[g], outputs[rows]
    if a.head_training == 'eq13':  # sum_j sum_i s_ji ||p_i - p_j||^2 (+ beta sum s log s).
      term = (s * ((o[None, :, :] - o[:, None, :]) ** 2).sum(-1)).sum()
      term += a.entropy_weight * (s * np.log(s)).sum()
    else:  # The decoupled reading: outputs pulled to their neighbours' fixed targets.
      term = (s * ((o[:, None, :] - targets[rows][None, :, :]) ** 2).sum(-1)).sum()
      q = np_softmax(reference[rows])
      known = labeled[rows] | (q.max(-1) >= a.graph_threshold)
      cls = np.where(labeled[rows], labels[rows], q.argmax(-1))
      graph = (known[:, None] & known[None] & (cls[:, None] == cls[None])).astype(float)
      if not a.include_self:
        graph *= 1 - np.eye(n)
      graph /= np.maximum(graph.sum(-1, keepdims=True), 1)
      full = graph.sum(-1) > 0
      graph_terms.append((-(graph * np.log(s)).sum(-1))[full].sum() / max(full.sum(), 1))
    alc_terms.append(term / divisor)
  graph = np.mean(graph_terms) if graph_terms else None
  return weights_sup, weights_cons, np.mean(alc_terms), graph


ALC_CASES = {  # On the shipped decoupled graph over probabilities unless said.
    'mt': ('mean_teacher', {'alc.imbalance': 'none'}),
    'mt_hard': ('mean_teacher', {'alc.imbalance': 'hard'}),
    'mt_soft': ('mean_teacher', {'alc.imbalance': 'soft'}),
    'pi_soft_logits_no_self': ('pi_model', {'alc.imbalance': 'soft', 'alc.outputs': 'logits',
                                            'alc.include_self': False}),
    'mt_hard_eq13_entropy': ('mean_teacher', {'alc.imbalance': 'hard', 'alc.head_training': 'eq13',
                                              'alc.outputs': 'logits', 'alc.entropy_weight': 0.3,
                                              'alc.pairwise_scale': 'batch'}),
    'pseudo_label_hard': ('pseudo_label', {'alc.imbalance': 'hard',
                                           'alc.pairwise_scale': 'pairs_classes'}),
}


@pytest.mark.parametrize('case', list(ALC_CASES))
@pytest.mark.parametrize('groups', [1, 2])
def test_alc_objective_on_a_method_matches_numpy(case, groups):
  """WithALC(method): the method's terms under Eq. 14 / 15's weights + w2 * Eq. 13 (+ the head's
  graph loss), on fixed student and target outputs and a fixed S per group."""
  method_name, alc_settings = ALC_CASES[case]
  config = _config(method_name, **{'alc.enabled': True, 'alc.weight': 2.5,
                                   'alc.graph_threshold': 0.4, 'alc.graph_weight': 0.7,
                                   **alc_settings})
  rng = np.random.default_rng(1)
  student = rng.normal(size=(B, K)) * 2
  target = rng.normal(size=(B, K)) * 2 if method_name != 'pseudo_label' else None
  similarity = np_softmax(rng.normal(size=(groups, B // groups, B // groups)) * 2)
  labeled = np.arange(B) % 3 == 0
  labels = np.where(labeled, rng.integers(0, K, B), -1)
  prior = np.array([0.1, 0.2, 0.3, 0.4])
  f32 = lambda a: None if a is None else jnp.asarray(a, jnp.float32)
  step = base.Step(params=None, state=types.SimpleNamespace(prior=f32(prior)), images=None,
                   normalization=None, x=None, labels=jnp.asarray(labels, jnp.int32),
                   labeled=jnp.asarray(labeled), keys={}, model=None, config=config,
                   ramp=jnp.float32(RAMP))
  stud = base.Student(None, f32(student), None, f32(similarity), None, {})
  total, metrics = alc.WithALC(methods.get(method_name)).loss(step, stud,
                                                              base.Targets(logits=f32(target)))
  weights_sup, weights_cons, alc_term, graph = _alc_reference(
      config, student, target, similarity, labels, labeled, prior)
  sup = (weights_sup * _nll(student, np.clip(labels, 0, None)))[labeled].sum() / labeled.sum()
  w1, w2 = config.consistency_weight * RAMP, config.alc.weight * RAMP
  if target is not None:  # Eq. 3 weighted per example (Eq. 14 / 15).
    mse = ((np_softmax(student) - np_softmax(target)) ** 2).sum(-1) / K
    want = sup + w1 * (weights_cons * mse).mean()
  else:  # Pseudo-Label: its own term, unweighted (no target to weigh it by).
    probs = np_softmax(student)
    mask = ~labeled & (probs.max(-1) >= config.pseudo_label_threshold)
    want = sup + w1 * _nll(student, probs.argmax(-1))[mask].sum() / mask.sum()
  want += w2 * alc_term + (0 if graph is None else config.alc.graph_weight * graph)
  np.testing.assert_allclose(float(metrics['losses/supervised']), sup, rtol=2e-5)
  np.testing.assert_allclose(float(metrics['losses/alc']), alc_term, rtol=2e-5)
  np.testing.assert_allclose(float(metrics['weights/alc']), w2, rtol=1e-6)
  assert ('losses/alc_graph' in metrics) == (graph is not None)
  if graph is not None:
    np.testing.assert_allclose(float(metrics['losses/alc_graph']), graph, rtol=2e-5)
  np.testing.assert_allclose(float(total), want, rtol=2e-5)


class _ReadRecorder:
  """A config that records the dotted path of every value read through it."""

  def __init__(self, node, prefix, seen):
    self._node, self._prefix, self._seen = node, prefix, seen

  def __getattr__(self, name):
    value = getattr(self._node, name)
    if isinstance(value, ml_collections.ConfigDict):
      return _ReadRecorder(value, f'{self._prefix}{name}.', self._seen)
    self._seen.add(self._prefix + name)
    return value

  __getitem__ = __getattr__


_SETTINGS_CASES = [*[(name, ()) for name in methods.NAMES],
                   ('pseudo_label', (('pseudo_label_schedule', 'lee2013'),)),
                   ('sntg', (('sntg.base', 'pi_model'),)),
                   ('vat', (('vat.power_iteration', 'finite_difference'),)),
                   ('fixmatch', (('fixmatch.ema_decay', 0.0),))]


@functools.lru_cache(maxsize=None)
def _fields_read(method_name, overrides):
  """(the config fields a method's hooks and loss read, traced through a recording config;
  whether its loss is ramped up: its total changes with the ramp-up's length)."""
  config = _config(method_name, **dict(overrides))
  method, seen = methods.get(method_name), set()
  recorder = _ReadRecorder(config, '', seen)
  if method.has_teacher(recorder):
    method.ema_decay(recorder)
  method.reported_model(recorder)
  method.view_keys(recorder)
  params, state, batch, rng = _inputs()
  batch = dict(batch, image=batch['image'][..., :1])  # One channel, as RandAugment takes.
  normalization = lambda images: images.astype(jnp.float32) / 255.0 - 0.5

  def total(rampup_steps, config):
    return methods.loss_fn(params, state, batch, rng, method=method, model=FakeModel(),
                           config=config, normalization=normalization,
                           rampup_steps=rampup_steps, steps_per_epoch=3)[0]

  jax.eval_shape(lambda: total(RAMPUP_STEPS, recorder))
  ramped = float(total(RAMPUP_STEPS, config)) != float(total(100 * RAMPUP_STEPS, config))
  return frozenset(seen), ramped


@pytest.mark.parametrize('method_name,overrides', _SETTINGS_CASES)
def test_a_method_s_settings_are_the_method_specific_fields_it_reads(method_name, overrides):
  """methods.fields_read (Method.settings and the views' noise; alc_jax.main refuses overrides
  of the others) is what the method reads that not every method reads, plus the ramp-up where its
  loss is ramped:
  a field read but not declared would be refused as ignored; one declared but not read would let
  an ignored override through."""
  read, ramped = _fields_read(method_name, overrides)
  read_by_all = frozenset.intersection(*(_fields_read(*case)[0] for case in _SETTINGS_CASES))
  config = _config(method_name, **dict(overrides))
  declared = set(methods.fields_read(methods.get(method_name), config))
  assert declared == (read - read_by_all) | ({'consistency_rampup_epochs'} if ramped else set())
  assert declared <= set(methods.all_settings(config))
