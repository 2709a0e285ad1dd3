"""The trainer: end to end, loss decrease, the EMA teacher, gradients, N runs (vmap and loop), 8
devices."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from alc_jax import ema, objectives, train
from tests.conftest import ROOT, tiny_config


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_smoke_config_end_to_end_and_resume(tiny_npz, tmp_path):
  workdir = tmp_path / 'run'
  # A relative --workdir, as a user types it (orbax itself needs absolute paths).
  cmd = [sys.executable, '-m', 'alc_jax.main', f'--config={ROOT}/configs/smoke.py',
         '--workdir=run', '--config.dataset.name=npz', f'--config.dataset.path={tiny_npz}',
         '--config.dataset.num_labels=40']
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'steps/s' in out.stdout and 'ETA' in out.stdout  # The progress line.
  results = json.loads((workdir / 'results.json').read_text())
  assert results['steps'] == 30 and results['num_runs'] == 1
  for key in ('final', 'best', 'config', 'seeds', 'wall_time_s', 'device_kind', 'versions',
              'git_commit', 'num_labels'):
    assert key in results
  assert 0.0 <= results['final']['teacher_accuracy'][0] <= 1.0
  assert len(results['final_per_class']['teacher_class_accuracy'][0]) == 4  # [run][class]
  rows = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  train_rows = [r for r in rows if 'losses/total' in r]
  assert [r['step'] for r in train_rows] == [10, 20, 30]
  for key in ('losses/supervised', 'losses/consistency', 'losses/alc', 'learning_rate',
              'monitors/similarity_diagonal', 'monitors/similarity_entropy',
              'monitors/similarity_same_class', 'train/steps_per_second'):
    assert key in train_rows[-1]
  assert [r['step'] for r in rows if 'eval/student_accuracy' in r] == [15, 30]
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  assert sorted(os.listdir(workdir / 'checkpoints'))[-1] == '30'
  assert np.load(workdir / 'similarity.npz')['similarity'].shape == (96, 96)
  # Rerunning the same command resumes from the final checkpoint and reports the same result.
  again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'Resuming from the checkpoint at step 30' in again.stdout
  rerun = json.loads((workdir / 'results.json').read_text())
  assert rerun['final'] == results['final']


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
  for got, want in zip(leaves(ema.teacher_params(state.opt_state)), teacher):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('method', ['mean_teacher', 'pi_model'])
def test_consistency_gradient_never_reaches_the_teacher(tiny_npz, method):
  exp = train.create_experiment(tiny_config(tiny_npz, method=method,
                                            consistency_rampup_epochs=0.0))
  state = jax.tree.map(lambda a: a[0], exp.initial_state)
  batch = jax.tree.map(lambda a: np.asarray(a)[0], next(exp.train_batches()))

  def loss(student, teacher):
    opt_state = list(state.opt_state)
    opt_state[-1] = opt_state[-1]._replace(teacher=teacher)
    s = state.replace(opt_state=tuple(opt_state))
    return objectives.compute_loss(student, s, batch, jax.random.key(0), model=exp.model,
                                   config=exp.config, normalization=exp.data.normalization,
                                   rampup_steps=0.0)[0]

  g_student, g_teacher = jax.grad(loss, argnums=(0, 1))(
      state.params, ema.teacher_params(state.opt_state))
  assert all(np.all(g == 0) for g in leaves(g_teacher))
  assert any(np.any(g != 0) for g in leaves(g_student))


def test_run_batching_auto_loops_over_runs_on_the_cpu_only(tiny_npz):
  # A loop on the CPU (vmap's grouped convolutions are slow there), vmap on GPU/TPU; one run is
  # never looped.
  on_cpu = jax.default_backend() == 'cpu'
  for runs, mode, loop in ((2, 'auto', on_cpu), (1, 'auto', False), (2, 'vmap', False),
                           (2, 'loop', True), (1, 'loop', True)):
    assert train.use_run_loop(tiny_config(tiny_npz, num_runs=runs, run_batching=mode)) == loop


@pytest.mark.parametrize('run_batching', ['vmap', 'loop'])
def test_n_runs_in_one_program_equal_separate_runs(tiny_npz, run_batching):
  together = train.create_experiment(tiny_config(tiny_npz, num_runs=2, run_batching=run_batching,
                                                 **{'alc.enabled': True}))
  alone = train.create_experiment(tiny_config(tiny_npz, seed=1, **{'alc.enabled': True}))
  assert together.run_loop == (run_batching == 'loop')
  np.testing.assert_array_equal(together.data.splits[1].labeled, alone.data.splits[0].labeled)
  # 3 steps: both paths reorder float32 sums (vmap batches the convolutions; the loop is fused
  # into one program with the other run), ~1e-6 by step 3 here. Later steps can jump to ~1e-3
  # when such a difference flips a near-tie of a max in the ALC head (its gradient moves).
  state_together, _ = _steps(together, 3)
  state_alone, _ = _steps(alone, 3)
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
    {'method': 'supervised'},
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


MULTI_DEVICE_SCRIPT = r'''
import sys, numpy as np, jax
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + '/tests')
from conftest import tiny_config
from alc_jax import train
config = tiny_config({npz!r}, num_runs=2, **{{'alc.enabled': True, 'batch_size': 32,
                                              'labeled_batch_size': 8}})
exp = train.create_experiment(config)
assert jax.device_count() == {devices}, jax.devices()
state = exp.initial_state
for _, batch in zip(range(1), exp.train_batches()):  # One step, as the issue asks.
  state, metrics = exp.train_step(state, batch)
np.savez({out!r}, *[np.asarray(x) for x in jax.tree.leaves((state.params, state.batch_stats))],
         loss=np.asarray(metrics['losses/total']))
'''


def test_eight_devices_equal_one_device(tiny_npz, tmp_path):
  outputs = []
  for devices in (1, 8):
    out = tmp_path / f'{devices}.npz'
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
               JAX_PLATFORMS='cpu')
    code = MULTI_DEVICE_SCRIPT.format(root=ROOT, npz=tiny_npz, devices=devices, out=str(out))
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs.append(np.load(out))
  one, eight = outputs
  assert one.files == eight.files
  for name in one.files:
    np.testing.assert_allclose(one[name], eight[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_imagenet_config_trains_under_mock_data(tmp_path):
  """configs/imagenet_1pct.py (ResNet-18, streamed TFDS data), narrowed, under tfds mock data."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from configs import imagenet_1pct  # pylint: disable=g-import-not-at-top
  config = imagenet_1pct.get_config()
  config.model.width = 0.0625
  config.dataset.image_size = 32
  config.augment.translate = 2
  config.batch_size, config.labeled_batch_size = 8, 4
  config.num_train_steps = 2
  config.eval_every_steps = config.checkpoint_every_steps = 2
  config.dataset.eval_examples = 16
  config.eval_batch_size = 8
  with tfds.testing.mock_data(num_examples=16):
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results['steps'] == 2 and results['model'] == 'resnet18'
  assert 'student_top5_accuracy' in results['final']
  assert np.load(tmp_path / 'similarity.npz')['similarity'].shape == (8, 8)


def test_best_spans_resumptions_and_drops_evaluations_past_the_checkpoint(tiny_npz, tmp_path):
  workdir = str(tmp_path / 'run')
  config = tiny_config(tiny_npz, num_train_steps=4, eval_every_steps=2, checkpoint_every_steps=2)
  train.train_and_evaluate(config, workdir)
  record = tmp_path / 'run' / 'evaluations.json'
  rows = json.loads(record.read_text())
  assert [r['step'] for r in rows] == [2, 4]
  # Mark the record: an impossible accuracy before the checkpoint (must count for 'best') and an
  # evaluation after it (a crashed run's; its steps are trained again, so it must be dropped).
  rows[0]['student_accuracy'] = [1.5]
  rows.append({**rows[1], 'step': 99, 'teacher_accuracy': [7.0]})
  record.write_text(json.dumps(rows))
  config.num_train_steps = 6
  results = train.train_and_evaluate(config, workdir)
  assert results['resumed_from_step'] == 4
  assert results['best']['student_accuracy'] == [1.5]
  assert results['best']['teacher_accuracy'][0] <= 1.0
  assert [r['step'] for r in json.loads(record.read_text())] == [2, 4, 6]


@pytest.mark.parametrize('row,hinted', [('mean_teacher_alc@paper', True),
                                        ('mean_teacher_alc', False), ('mean_teacher', False)])
def test_nan_guard_names_the_unbounded_attention_only_where_it_can_diverge(row, hinted):
  from configs import fashion_mnist_250  # pylint: disable=g-import-not-at-top
  with pytest.raises(FloatingPointError, match='non-finite value at step 7 in losses/alc') as err:
    train._check_finite({'losses/alc': np.nan, 'losses/total': 1.0}, 7,
                        fashion_mnist_250.get_config(row))
  assert ('config.alc.logits=cosine' in str(err.value)) == hinted
