"""FixMatch (alc_jax/methods/fixmatch.py): its loss against NumPy, what it detaches, its EMA model,
and FixMatch (+ ALC) training on the trainer."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alc_jax import ema, methods, train
from alc_jax.methods import base, fixmatch
from tests.conftest import np_log_softmax, tiny_config


def _reference_loss(weak, strong, student, labels, labeled, threshold, weight, consistency):
  """FixMatch's Eq. 2-4 in float64: CE on labeled rows + weight * mean over unlabeled rows of
  1[max q >= tau] * consistency * H(argmax q, strong)."""
  sup = -np_log_softmax(student)[np.arange(len(labels)), np.clip(labels, 0, None)]
  sup = sup[labeled].mean()
  q = np.exp(np_log_softmax(weak))
  pseudo = q.argmax(-1)
  confident = q.max(-1) >= threshold
  nll = -np_log_softmax(strong)[np.arange(len(pseudo)), pseudo]
  unlabeled = ~labeled
  unl = (confident * consistency * nll)[unlabeled].sum() / unlabeled.sum()
  return sup + weight * unl, unl, (confident & unlabeled).sum() / unlabeled.sum()


@pytest.mark.parametrize('with_weights', [False, True])
def test_loss_matches_numpy(with_weights):
  rng = np.random.default_rng(0)
  b, k = 24, 5
  student = rng.normal(size=(b, k)) * 2
  weak = rng.normal(size=(b, k)) * 3  # Wide: some rows pass tau = 0.6, others do not.
  strong = rng.normal(size=(b, k))
  labeled = np.arange(b) < 6
  labels = np.where(labeled, rng.integers(0, k, b), -1)
  consistency = rng.uniform(0.2, 1.0, b) if with_weights else np.ones(b)
  config = types.SimpleNamespace(
      supervised_normalization='labeled',
      fixmatch=types.SimpleNamespace(threshold=0.6, weight=2.5))
  step = types.SimpleNamespace(config=config, labels=jnp.asarray(labels, jnp.int32),
                               labeled=jnp.asarray(labeled))
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  stud = base.Student(None, f32(student), None, None, None, {})
  targets = base.Targets(logits=f32(weak), strong_logits=f32(strong))
  weights = base.SampleWeights(consistency=f32(consistency)) if with_weights else (
      base.SampleWeights())
  total, metrics = methods.get('fixmatch').loss(step, stud, targets, weights)
  want_total, want_unl, want_rate = _reference_loss(weak, strong, student, labels, labeled, 0.6,
                                                    2.5, consistency)
  np.testing.assert_allclose(float(total), want_total, rtol=1e-5)
  np.testing.assert_allclose(float(metrics['losses/fixmatch']), want_unl, rtol=1e-5)
  np.testing.assert_allclose(float(metrics['monitors/fixmatch_mask_rate']), want_rate)
  assert 0 < want_rate < 1  # The threshold separates rows, so the mask is exercised.


def test_pseudo_label_mask_is_the_threshold_on_the_top_probability():
  logits = jnp.log(jnp.array([[0.96, 0.02, 0.02], [0.94, 0.03, 0.03], [0.1, 0.1, 0.8]]))
  np.testing.assert_array_equal(fixmatch.pseudo_label_mask(logits, 0.95), [True, False, False])
  np.testing.assert_array_equal(fixmatch.pseudo_label_mask(logits, 0.8), [True, True, True])


def _step_and_student(exp):
  state = jax.tree.map(lambda a: a[0], exp.initial_state)
  batch = jax.tree.map(lambda a: np.asarray(a)[0], next(exp.train_batches()))
  batch.pop('diagnostic_label', None)
  method = exp.method
  norm = exp.data.normalization

  def passes(params):
    step = base.Step(params=params, state=state, images=jnp.asarray(batch['image']),
                     normalization=norm, x=norm(batch['image']),
                     labels=jnp.asarray(batch['label']), labeled=jnp.asarray(batch['labeled']),
                     keys=base.step_keys(jax.random.key(0)), model=exp.model, config=exp.config,
                     ramp=jnp.float32(1.0))
    (logits, features, similarity), updates = step.forward(
        params, state.batch_stats, method.student_view(step), step.keys['dropout'])
    student = base.Student(None, logits, features, similarity, updates['batch_stats'], {})
    return step, student, method.targets(step, student)

  return state, passes


def test_the_weak_target_is_detached_and_the_strong_view_is_trained(tiny_npz):
  exp = train.create_experiment(tiny_config(tiny_npz, method='fixmatch'))
  state, passes = _step_and_student(exp)
  norm_of = lambda tree: sum(float(jnp.sum(jnp.abs(g))) for g in jax.tree.leaves(tree))

  @jax.jit
  def run(params):
    weak_grad = jax.grad(lambda p: jnp.sum(passes(p)[2].logits))(params)
    strong_grad = jax.grad(lambda p: jnp.sum(passes(p)[2].strong_logits ** 2))(params)
    step, student, targets = passes(params)
    return (weak_grad, strong_grad, targets, student.batch_stats, step.x,
            exp.method.student_view(step))

  weak_grad, strong_grad, targets, student_stats, x, weak = run(state.params)
  assert norm_of(weak_grad) == 0
  assert norm_of(strong_grad) > 0
  # Weak and strong views differ, and the EMA model keeps the student's statistics.
  assert not np.allclose(targets.logits, targets.strong_logits)
  for got, want in zip(jax.tree.leaves(targets.teacher_batch_stats),
                       jax.tree.leaves(student_stats)):
    np.testing.assert_array_equal(got, want)
  # The weak view is the recipe's flip / translation only: no Gaussian input noise.
  assert exp.config.augment.noise_std > 0
  assert np.all(np.isin(np.round(np.asarray(weak), 4), np.round(np.asarray(x), 4)))


@pytest.mark.parametrize('alc', [False, True])
def test_fixmatch_trains_and_reports_its_ema_model(tiny_npz, alc):
  exp = train.create_experiment(tiny_config(tiny_npz, method='fixmatch', **{
      'alc.enabled': alc, 'fixmatch.ema_decay': 0.6}))
  assert exp.models == ('student', 'ema')  # An EMA for evaluation, not a teacher of the loss.
  assert exp.method.reported_model(exp.config) == 'ema'
  state = exp.initial_state
  teacher = [np.asarray(a) for a in jax.tree.leaves(state.params)]
  decay = exp.config.fixmatch.ema_decay
  assert decay != exp.config.ema_decay  # The test tells the two decays apart.
  for t, batch in zip(range(1, 4), exp.train_batches()):
    state, metrics = exp.train_step(state, batch)
    alpha = min(1.0 - 1.0 / (t + 1.0), decay)
    teacher = [alpha * a + (1 - alpha) * np.asarray(s)
               for a, s in zip(teacher, jax.tree.leaves(state.params))]
    metrics = jax.tree.map(np.asarray, metrics)
    assert all(np.all(np.isfinite(v)) for v in metrics.values()), metrics
    assert np.all((0 <= metrics['monitors/fixmatch_mask_rate'])
                  & (metrics['monitors/fixmatch_mask_rate'] <= 1))
  assert ('losses/alc' in metrics) == alc
  assert 'weights/consistency' not in metrics  # lambda_u is constant; w1 is not FixMatch's.
  for got, want in zip(jax.tree.leaves(ema.get_teacher(state.opt_state).params), teacher):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  result = exp.evaluate(state)
  assert 'ema_accuracy' in result and 'student_accuracy' in result
  assert 'teacher_accuracy' not in result


def test_fixmatch_without_ema_keeps_no_teacher_and_reports_the_student(tiny_npz):
  # fixmatch.ema_decay = 0: no EMA model in the optimizer state, one evaluation, the student.
  exp = train.create_experiment(tiny_config(tiny_npz, method='fixmatch', **{
      'fixmatch.ema_decay': 0.0}))
  assert exp.models == ('student',)
  assert exp.method.reported_model(exp.config) == 'student'
  state = exp.initial_state
  with pytest.raises(ValueError):
    ema.get_teacher(state.opt_state)
  for _, batch in zip(range(2), exp.train_batches()):
    state, _ = exp.train_step(state, batch)
  result = exp.evaluate(state)
  assert 'student_accuracy' in result and 'ema_accuracy' not in result


def test_fixmatch_alc_trains_on_rgb_images_with_the_cifar10_recipe(tmp_path):
  # CIFAR-10's recipe (configs/common.py): RGB, flips, ZCA whitening of the strong view too.
  from tests.conftest import make_tiny_images  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  x, y = make_tiny_images(160, 4, 16, rng)
  rgb = np.concatenate([x, x[..., ::-1, :] // 2, 255 - x], axis=-1)  # Three distinct channels.
  path = tmp_path / 'rgb.npz'
  np.savez(path, x_train=rgb[:128], y_train=y[:128], x_test=rgb[128:], y_test=y[128:])
  exp = train.create_experiment(tiny_config(str(path), method='fixmatch', **{
      'alc.enabled': True, 'augment.flip': True, 'dataset.zca': True, 'num_runs': 1}))
  assert exp.data.image_shape == (16, 16, 3)
  state = exp.initial_state
  for _, batch in zip(range(2), exp.train_batches()):
    state, metrics = exp.train_step(state, batch)
  metrics = jax.tree.map(np.asarray, metrics)
  assert all(np.all(np.isfinite(v)) for v in metrics.values()), metrics
