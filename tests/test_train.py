"""The train step: loss decrease, the EMA teacher, gradients, N runs (vmap and loop), every method.
(The trainer end to end is in tests/test_train_end_to_end.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alc_jax import ema, methods, runs, train
from tests.conftest import tiny_config


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _steps(exp, num_steps, state=None):
  state = exp.initial_state if state is None else state
  history = []
  for _, batch in zip(range(num_steps), exp.train_batches()):
    state, metrics = exp.train_step(state, batch)
    history.append((jax.tree.map(np.asarray, state.params), metrics))
  return state, history


def test_loss_falls_on_a_fixed_batch(tiny_npz):
  # Without augmentation or dropout the batch is truly fixed: the loss must fall steadily.
  exp = train.create_experiment(tiny_config(tiny_npz, **{
      'alc.enabled': True, 'num_train_steps': 200, 'augment.translate': 0,
      'augment.noise_std': 0.0, 'model.dropout': 0.0}))
  batch = next(exp.train_batches())
  state, losses = exp.initial_state, []
  for _ in range(30):
    state, metrics = exp.train_step(state, batch)
    losses.append(float(metrics['losses/supervised'][0]))
  assert losses[-1] < 0.3 * losses[0], losses


def test_teacher_is_the_ema_of_the_student(tiny_npz):
  exp = train.create_experiment(tiny_config(tiny_npz))
  decay = exp.config.ema_decay
  teacher = leaves(exp.initial_state.params)
  state = exp.initial_state
  for t, batch in zip(range(1, 6), exp.train_batches()):
    state, _ = exp.train_step(state, batch)
    alpha = min(1.0 - 1.0 / (t + 1.0), decay)  # Eq. 2 with the reference's ramp.
    teacher = [alpha * a + (1 - alpha) * s for a, s in zip(teacher, leaves(state.params))]
  for got, want in zip(leaves(ema.get_teacher(state.opt_state).params), teacher):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_teacher_update_takes_its_statistics_from_its_own_pass():
  # ema.ema_teacher: parameters by Eq. 2 from the updated student; the statistics replaced by the
  # teacher pass's when the step hands them over, kept otherwise.
  tx = ema.ema_teacher(0.9)
  opt_state = ema.init_teacher(tx.init({'w': jnp.ones(3)}), {'m': jnp.zeros(3)})
  updates = {'w': jnp.full(3, 0.5)}
  _, kept = tx.update(updates, opt_state, {'w': jnp.ones(3)})
  _, new = tx.update(updates, opt_state, {'w': jnp.ones(3)},
                     teacher_batch_stats={'m': jnp.ones(3)})
  alpha = min(1 - 1 / 2, 0.9)  # The first update.
  for state in (kept, new):
    np.testing.assert_allclose(ema.get_teacher(state).params['w'], alpha + (1 - alpha) * 1.5)
  np.testing.assert_array_equal(ema.get_teacher(kept).batch_stats['m'], np.zeros(3))
  np.testing.assert_array_equal(ema.get_teacher(new).batch_stats['m'], np.ones(3))


class _FakeClassifier:
  """logits = w * mean(image) + m: each model's parameters and statistics show in its logits."""

  def apply(self, variables, x, train):
    assert not train  # Evaluation runs the models in eval mode (running statistics).
    w, m = variables['params']['w'], variables['batch_stats']['m']
    return (jnp.mean(x, axis=(1, 2, 3))[:, None] * w + m,)


def test_eval_step_counts_each_models_hits_against_numpy():
  # The student with its statistics, the EMA teacher with its own; rows whose mask is off (the
  # padding of the last batch) count nowhere, whatever their label.
  k, b = 7, 24
  rng = np.random.default_rng(0)
  images = (rng.integers(0, 256, (b, 2, 2, 1)) * np.linspace(0, 1, b)[:, None, None, None])
  labels = rng.integers(0, k, b).astype(np.int32)
  mask = np.arange(b) < 19
  weights = {'student': np.linspace(-9, 9, k), 'teacher': np.linspace(9, -6, k) ** 2 / 9}
  stats = {'student': rng.normal(size=k), 'teacher': rng.normal(size=k)}
  tx = ema.ema_teacher(0.9)
  opt_state = ema.init_teacher(tx.init({'w': jnp.asarray(weights['teacher'])}),
                               {'m': jnp.asarray(stats['teacher'])})
  state = train.TrainState(step=0, params={'w': jnp.asarray(weights['student'])},
                           batch_stats={'m': jnp.asarray(stats['student'])}, opt_state=opt_state,
                           prior=None, rng=None)
  normalization = lambda image: image.astype(jnp.float32) / 255.0
  batch = {'image': jnp.asarray(images, jnp.uint8), 'label': jnp.asarray(labels),
           'mask': jnp.asarray(mask)}
  out = jax.device_get(train.eval_step(state, batch, normalization, model=_FakeClassifier(),
                                       top5=True))
  means = np.asarray(images, np.uint8).astype(np.float64).mean(axis=(1, 2, 3)) / 255.0
  assert out['count'] == mask.sum()
  np.testing.assert_array_equal(out['class_count'], np.bincount(labels[mask], minlength=k))
  for name in ('student', 'teacher'):
    logits = means[:, None] * weights[name] + stats[name]
    hit = (logits.argmax(-1) == labels) & mask
    top5 = (np.argsort(-logits, -1)[:, :5] == labels[:, None]).any(-1) & mask
    assert 0 < hit.sum() < top5.sum() < mask.sum()  # Each count is exercised.
    assert out['correct'][name] == hit.sum()
    np.testing.assert_array_equal(out['class_correct'][name],
                                  np.bincount(labels[hit], minlength=k))
    assert out['top5_correct'][name] == top5.sum()


@pytest.mark.parametrize('method,has_teacher', [('mean_teacher', True), ('pi_model', False),
                                                ('supervised', False)])
def test_only_a_method_with_a_teacher_keeps_and_evaluates_one(tiny_npz, method, has_teacher):
  # The teacher is absent (not a copy) without one, and only the student is evaluated.
  labeled_only = {'labeled_batch_size': 0} if method == 'supervised' else {}
  exp = train.create_experiment(tiny_config(tiny_npz, method=method, **labeled_only))
  state, _ = _steps(exp, 1)
  teacher = ema.find_teacher(state.opt_state)
  assert (teacher is not None) == has_teacher
  assert exp.models == (('student', 'teacher') if has_teacher else ('student',))
  result = exp.evaluate(state)
  assert ('teacher_accuracy' in result) == has_teacher and 'student_accuracy' in result
  if has_teacher:  # Parameters and BatchNorm statistics in one place, updated together.
    assert set(teacher._fields) == {'params', 'batch_stats'}
    assert jax.tree.structure(teacher.batch_stats) == jax.tree.structure(state.batch_stats)
    assert any(not np.allclose(t, s) for t, s in zip(leaves(teacher.batch_stats),
                                                     leaves(state.batch_stats)))
    # ... and its statistics are those its own pass of the step left (train_step hands them to
    # the teacher's update): the loss's at the initial state, with run 0's key of step 0.
    initial = jax.tree.map(lambda a: a[0], exp.initial_state)
    batch = jax.tree.map(lambda a: np.asarray(a)[0], next(exp.train_batches()))
    batch.pop('diagnostic_label')
    rng = jax.random.fold_in(jax.random.wrap_key_data(initial.rng), 0)
    _, aux = jax.jit(lambda st, b, k: methods.loss_fn(
        st.params, st, b, k, method=exp.method, model=exp.model, config=exp.config,
        normalization=exp.data.normalization, rampup_steps=0.0))(initial, batch, rng)
    for got, want in zip(leaves(teacher.batch_stats), leaves(aux['teacher_batch_stats'])):
      np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('alc', [False, True])
def test_consistency_gradient_never_reaches_the_teacher(tiny_npz, alc):
  exp = train.create_experiment(tiny_config(tiny_npz, method='mean_teacher',
                                            consistency_rampup_epochs=0.0,
                                            **{'alc.enabled': alc}))
  state = jax.tree.map(lambda a: a[0], exp.initial_state)
  batch = jax.tree.map(lambda a: np.asarray(a)[0], next(exp.train_batches()))
  batch.pop('diagnostic_label')
  teacher = ema.get_teacher(state.opt_state)

  def loss(student, teacher_params):
    s = state.replace(opt_state=ema.replace_teacher(
        state.opt_state, teacher._replace(params=teacher_params)))
    return methods.loss_fn(student, s, batch, jax.random.key(0), method=exp.method,
                           model=exp.model, config=exp.config,
                           normalization=exp.data.normalization, rampup_steps=0.0)[0]

  g_student, g_teacher = jax.grad(loss, argnums=(0, 1))(state.params, teacher.params)
  assert all(np.all(g == 0) for g in leaves(g_teacher))
  assert any(np.any(g != 0) for g in leaves(g_student))


def test_the_loss_cannot_see_the_true_labels_of_unlabeled_rows(tiny_npz):
  exp = train.create_experiment(tiny_config(tiny_npz))
  state = jax.tree.map(lambda a: a[0], exp.initial_state)
  batch = jax.tree.map(lambda a: np.asarray(a)[0], next(exp.train_batches()))
  with pytest.raises(ValueError, match='diagnostic_label'):
    methods.loss_fn(state.params, state, batch, jax.random.key(0), method=exp.method,
                    model=exp.model, config=exp.config, normalization=exp.data.normalization,
                    rampup_steps=0.0)


def test_run_batching_auto_loops_over_runs_on_the_cpu_only(tiny_npz):
  # A loop on the CPU (vmap's grouped convolutions are slow there), vmap on GPU/TPU; one run is
  # never looped.
  on_cpu = jax.default_backend() == 'cpu'
  for num_runs, mode, loop in ((2, 'auto', on_cpu), (1, 'auto', False), (2, 'vmap', False),
                               (2, 'loop', True), (1, 'loop', True)):
    assert runs.use_run_loop(tiny_config(tiny_npz, num_runs=num_runs, run_batching=mode)) == loop


@pytest.mark.parametrize('run_batching', ['vmap', 'loop'])
def test_n_runs_in_one_program_equal_separate_runs(tiny_npz, run_batching):
  together = train.create_experiment(tiny_config(tiny_npz, num_runs=2, run_batching=run_batching,
                                                 **{'alc.enabled': True}))
  alone = train.create_experiment(tiny_config(tiny_npz, seed=1, **{'alc.enabled': True}))
  assert together.run_loop == (run_batching == 'loop')
  np.testing.assert_array_equal(together.data.splits[1].labeled, alone.data.splits[0].labeled)
  # 2 steps: both paths reorder float32 sums (vmap batches the convolutions; the loop is fused
  # into one program with the other run), ~3e-7 by step 2 here. Later steps can jump to ~1e-3
  # when such a difference flips a near-tie of a max in the ALC head (its gradient moves): step 3
  # does under the suite's unoptimised compilation (1.6e-3).
  state_together, _ = _steps(together, 2)
  state_alone, _ = _steps(alone, 2)
  for a, b in zip(leaves(state_together.params), leaves(state_alone.params)):
    np.testing.assert_allclose(a[1], b[0], rtol=1e-4, atol=1e-4)
  first = leaves(state_together.params)
  assert any(not np.allclose(a[0], a[1]) for a in first)  # The two runs differ.
  counts = together.evaluate(state_together)  # The eval step maps over the runs the same way.
  assert counts['teacher_accuracy'].shape == (2,)
  np.testing.assert_allclose(counts['teacher_accuracy'][1],
                             alone.evaluate(state_alone)['teacher_accuracy'][0], atol=0.02)
  _assert_counts_match_numpy(together, state_together, counts)


def _assert_counts_match_numpy(exp, state, result):
  """Accuracy in all and per class, from the eval step's counts over sharded batches, against the
  argmax of the model applied to the whole test set outside the eval step."""
  data = exp.data.dataset
  for run in range(exp.config.num_runs):
    variables = {'params': jax.tree.map(lambda a, r=run: a[r], state.params),
                 'batch_stats': jax.tree.map(lambda a, r=run: a[r], state.batch_stats)}
    logits = exp.model.apply(variables, exp.data.normalization(data.x_test), train=False)[0]
    correct = np.argmax(np.asarray(logits), -1) == data.y_test
    np.testing.assert_allclose(result['student_accuracy'][run], correct.mean(), atol=1e-6)
    per_class = [correct[data.y_test == c].mean() for c in range(data.num_classes)]
    np.testing.assert_allclose(result['student_class_accuracy'][run], per_class, atol=1e-6)
  assert result['teacher_class_accuracy'].shape == (exp.config.num_runs, data.num_classes)


@pytest.mark.parametrize('overrides', [
    {'method': 'supervised', 'labeled_batch_size': 0},
    {'method': 'pseudo_label', 'pseudo_label_threshold': 0.5},
    {'method': 'pi_model', 'alc.enabled': True, 'alc.imbalance': 'hard'},
    {'method': 'mean_teacher', 'alc.enabled': True, 'alc.imbalance': 'soft',
     'alc.outputs': 'probs', 'alc.include_self': False, 'alc.scope': 'per_device'},
    {'method': 'sntg', 'sntg.base': 'mean_teacher'},
    {'method': 'vat_entmin', 'dataset.validation_size': 40},
], ids=lambda o: '-'.join(str(v) for v in o.values()))
def test_every_method_trains(tiny_npz, overrides):
  exp = train.create_experiment(tiny_config(tiny_npz, **overrides))
  _, history = _steps(exp, 2)
  metrics = jax.tree.map(np.asarray, history[-1][1])
  assert all(np.all(np.isfinite(v)) for v in metrics.values()), metrics
  if overrides.get('method') == 'supervised':
    assert 'losses/consistency' not in metrics
  # w1 is logged by the methods whose loss it weighs, VAT's ramped weight by VAT only.
  uses_w1 = overrides['method'] in ('pseudo_label', 'pi_model', 'mean_teacher', 'sntg')
  assert ('weights/consistency' in metrics) == uses_w1, sorted(metrics)
  assert ('weights/vat' in metrics) == overrides['method'].startswith('vat'), sorted(metrics)


@pytest.mark.parametrize('row,hinted', [('mean_teacher_alc@paper', True),
                                        ('mean_teacher_alc', False), ('mean_teacher', False)])
def test_nan_guard_names_the_unbounded_attention_only_where_it_can_diverge(row, hinted):
  from configs import fashion_mnist_250  # pylint: disable=g-import-not-at-top
  with pytest.raises(FloatingPointError, match='non-finite value at step 7 in losses/alc') as err:
    train._check_finite(train.nonfinite_names({'losses/alc': True, 'losses/total': False}), 7,
                        fashion_mnist_250.get_config(row))
  assert ('config.alc.attention_logits=cosine' in str(err.value)) == hinted


def test_the_experiment_stays_usable_after_steps_that_donate_its_state(tiny_npz):
  # The compiled steps donate the state they get; initial_state is a new one at every read.
  exp = train.create_experiment(tiny_config(tiny_npz))
  batch = next(exp.train_batches())
  first, _ = exp.train_step(exp.initial_state, batch)
  again, _ = exp.train_step(exp.initial_state, batch)
  for a, b in zip(leaves(first), leaves(again)):
    np.testing.assert_array_equal(a, b)


def test_optimizer_is_nesterov_sgd_with_coupled_l2_on_a_cosine_schedule(tiny_npz):
  # torch.optim.SGD(nesterov=True, weight_decay=wd) as Mean Teacher's PyTorch code trains: the
  # decay is added to the gradient before the momentum (coupled L2), lr by cosine annealing.
  lr, wd, momentum, total = 0.1, 2e-4, 0.9, 10
  config = tiny_config(tiny_npz, learning_rate=lr, weight_decay=wd, momentum=momentum,
                       nesterov=True, lr_warmup_epochs=0.0)
  tx, _ = train.create_optimizer(config, total, 5, methods.get('supervised'))
  rng = np.random.default_rng(0)
  params = {'w': rng.normal(size=(4,))}
  opt_state = tx.init(params)
  want, buffer = params['w'].copy(), np.zeros(4)
  for step in range(3):
    grad = rng.normal(size=(4,))
    updates, opt_state = tx.update({'w': grad}, opt_state, params)
    params = {'w': params['w'] + np.asarray(updates['w'])}
    decayed = grad + wd * want
    buffer = momentum * buffer + decayed
    want = want - lr * 0.5 * (1 + np.cos(np.pi * step / total)) * (decayed + momentum * buffer)
    np.testing.assert_allclose(params['w'], want, rtol=1e-6)


@pytest.mark.parametrize('epochs,steps_per_epoch,warmup', [(0.1, 5, 1), (0.5, 5, 2), (2.0, 3, 6)])
def test_a_learning_rate_warm_up_is_rounded_to_steps_never_to_none(tiny_npz, epochs,
                                                                    steps_per_epoch, warmup):
  """lr_warmup_epochs in steps of the data set: rounded, and at least one step (0.1 epoch of 5
  steps truncated to no warm-up at all)."""
  config = tiny_config(tiny_npz, learning_rate=0.1, lr_warmup_epochs=epochs)
  _, schedule = train.create_optimizer(config, 20, steps_per_epoch, methods.get('supervised'))
  assert float(schedule(0)) == 0.0  # Linear from 0 ...
  np.testing.assert_allclose(float(schedule(warmup)), 0.1, rtol=1e-6)  # ... to the peak.
  assert float(schedule(warmup - 1)) < 0.1


def test_grad_norm_monitor_is_the_norm_of_the_step_gradient(tiny_npz):
  # Without weight decay, Nesterov SGD's first update is -lr (1 + momentum) g: the parameters
  # move by lr (1 + momentum) |g|, |g| being what monitors/grad_norm reports.
  exp = train.create_experiment(tiny_config(tiny_npz, weight_decay=0.0, lr_warmup_epochs=0.0))
  before = jax.device_get(exp.initial_state.params)
  state, metrics = exp.train_step(exp.initial_state, next(exp.train_batches()))
  moved = np.sqrt(sum(np.sum((np.asarray(a, np.float64) - b) ** 2) for a, b in
                      zip(leaves(state.params), jax.tree.leaves(before))))
  config = exp.config
  np.testing.assert_allclose(moved, config.learning_rate * (1 + config.momentum)
                             * np.asarray(metrics['monitors/grad_norm']).item(), rtol=1e-4)


def test_metrics_accumulate_on_the_device_with_a_sticky_non_finite_flag():
  rng = np.random.default_rng(0)
  steps = [{'a': rng.normal(size=(3,)).astype(np.float32), 'b': np.float32(rng.normal())}
           for _ in range(4)]
  steps[1]['b'] = np.float32(np.nan)
  totals = train.zero_totals(steps[0])
  for metrics in steps:
    totals = train.accumulate_metrics(totals, metrics)
  means, bad = train.read_metrics(totals)
  np.testing.assert_allclose(means['a'], np.mean([np.mean(m['a']) for m in steps]), rtol=1e-6)
  assert bad == ['b'] and np.isnan(means['b'])
  with pytest.raises(FloatingPointError, match='non-finite value at step 9 in b;'):
    train._check_finite(bad, 9, tiny_config('unused.npz'))


def test_batches_reach_the_device_ahead_of_their_step(tiny_npz):
  exp = train.create_experiment(tiny_config(tiny_npz))
  ahead, on_demand = exp.data.train_batches(3, prefetch=2), exp.data.train_batches(3, prefetch=0)
  first = next(ahead)
  assert len(ahead._ahead) == 2  # Two later batches already on their way to the devices.
  assert isinstance(first['image'], jax.Array)
  assert first['image'].sharding == exp.data.train_sharding
  for want in (first, next(ahead)):
    got = next(on_demand)
    for key in want:
      np.testing.assert_array_equal(np.asarray(want[key]), np.asarray(got[key]))
  ahead.close()
  on_demand.close()
