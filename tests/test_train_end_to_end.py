"""The trainer end to end: the command line and resumption, 8 devices against 1, the ImageNet config
under mock data, the best evaluation across resumptions. (The train step's own properties are in
tests/test_train.py.)"""

import json
import os
import re
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from alc_jax import checkpointing, methods, train
from tests.conftest import (ROOT, TEST_XLA_FLAGS, checkpoint_steps, metrics_rows,
                            tiny_config)


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
  assert 'cpu_isa' in results and [h['from_step'] for h in results['hosts']] == [0]
  assert len(results['final_per_class']['teacher_class_accuracy'][0]) == 4  # [run][class]
  rows = metrics_rows(workdir)
  train_rows = [r for r in rows if 'losses/total' in r]
  assert [r['step'] for r in train_rows] == [10, 20, 30]
  for key in ('losses/supervised', 'losses/consistency', 'losses/alc', 'learning_rate',
              'monitors/similarity_diagonal', 'monitors/similarity_entropy',
              'monitors/similarity_same_class', 'train/steps_per_second'):
    assert key in train_rows[-1]
  # Each row is the mean over the steps since the previous one: the learning rate of steps 0-9,
  # 10-19 and 20-29 (the cosine schedule at each step's start).
  config = ml_collections.ConfigDict(results['config'])
  _, schedule = train.create_optimizer(config, 30, results['steps_per_epoch'],
                                       methods.get(config.method))
  windows = np.array([schedule(s) for s in range(30)]).reshape(3, 10).mean(axis=1)
  np.testing.assert_allclose([r['learning_rate'] for r in train_rows], windows, rtol=1e-5)
  assert [r['step'] for r in rows if 'eval/student_accuracy' in r] == [15, 30]
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  assert sorted(os.listdir(workdir / 'checkpoints'))[-1] == '30'
  assert np.load(workdir / 'similarity.npz')['similarity'].shape == (96, 96)
  # Rerunning the same command resumes from the final checkpoint and reports the same result;
  # without TensorBoard events (a bookkeeping field may change on a rerun; ~4 s less start-up).
  again = subprocess.run(cmd + ['--config.tensorboard=False'], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'Resuming from the checkpoint at step 30' in again.stdout
  rerun = json.loads((workdir / 'results.json').read_text())
  assert rerun['final'] == results['final']
  for key in ('images_per_second', 'wall_time_s'):  # The training's, not the rerun's (0 steps).
    assert rerun[key] == results[key] > 0, key
  assert rerun['hosts'] == results['hosts'] and 'another host' not in again.stdout  # Same host.


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
    env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=(
        f'--xla_force_host_platform_device_count={devices} {TEST_XLA_FLAGS}').strip())
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
  # Mock data makes up every example it reads (a random image, encoded): filling the recipe's
  # 10,000-image buffers took ~9 s of this test's 45 (17 s under cProfile).
  config.dataset.shuffle_buffer = 16
  config.eval_batch_size = 8
  with tfds.testing.mock_data(num_examples=16):
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results['steps'] == 2 and results['model'] == 'resnet18'
  assert 'student_top5_accuracy' in results['final']
  assert np.load(tmp_path / 'similarity.npz')['similarity'].shape == (8, 8)


def test_the_last_step_is_logged_evaluated_and_checkpointed(tiny_npz, tmp_path):
  # 7 steps, every 5: step 7 is no multiple of 5, and still the run's last log, evaluation and
  # checkpoint.
  config = tiny_config(tiny_npz, num_train_steps=7, log_every_steps=5, eval_every_steps=5,
                       checkpoint_every_steps=5)
  train.train_and_evaluate(config, str(tmp_path))
  assert [r['step'] for r in metrics_rows(tmp_path) if 'losses/total' in r] == [5, 7]
  evaluations = json.loads((tmp_path / 'evaluations.json').read_text())
  assert [r['step'] for r in evaluations] == [5, 7]
  assert checkpoint_steps(tmp_path / 'checkpoints') == [5, 7]
  # A finished run rerun without its evaluation record reports its restored model's accuracy.
  first = json.loads((tmp_path / 'results.json').read_text())
  (tmp_path / 'evaluations.json').unlink()
  assert train.train_and_evaluate(config, str(tmp_path))['final'] == first['final']


@pytest.mark.parametrize('log_every,checkpoint_every', [(1, 100), (100, 1)])
def test_a_non_finite_step_stops_the_run_at_the_next_log_or_checkpoint(tiny_npz, tmp_path,
                                                                       log_every,
                                                                       checkpoint_every):
  # lr = 1e30: the first update is finite, a later step is not. Whichever comes first, a log
  # step or a checkpoint step, stops the run there: nothing non-finite is logged or saved.
  config = tiny_config(tiny_npz, num_train_steps=12, learning_rate=1e30, eval_every_steps=100,
                       log_every_steps=log_every, checkpoint_every_steps=checkpoint_every)
  with pytest.raises(FloatingPointError, match=r'non-finite value at step (\d+)') as error:
    train.train_and_evaluate(config, str(tmp_path))
  step = int(re.search(r'at step (\d+)', str(error.value)).group(1))
  assert 2 <= step < 12, step
  assert all(s < step for s in checkpoint_steps(tmp_path / 'checkpoints', finalized=False))
  rows = metrics_rows(tmp_path)
  assert all(r['step'] < step and np.isfinite(r['losses/total']) for r in rows)
  assert not (tmp_path / 'results.json').exists()


def test_best_spans_resumptions_and_drops_evaluations_past_the_checkpoint(tiny_npz, tmp_path,
                                                                          capsys, monkeypatch):
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
  config.allow_schedule_change = True  # A longer schedule: refused unless asked for.
  # As if steps 0-4 had run under another jaxlib: the resume here says the set-up changed.
  hosts_file = tmp_path / 'run' / 'hosts.json'
  hosts = json.loads(hosts_file.read_text())
  hosts[0]['jaxlib'] = '0.0.1-of-another-host'
  hosts_file.write_text(json.dumps(hosts))
  capsys.readouterr()
  results = train.train_and_evaluate(config, workdir)
  assert "jaxlib: '0.0.1-of-another-host' -> " in capsys.readouterr().out
  assert [h['from_step'] for h in results['hosts']] == [0, 4]
  assert results['resumed_from_step'] == 4
  assert results['best']['student_accuracy'] == [1.5]
  assert results['best']['teacher_accuracy'][0] <= 1.0
  assert [r['step'] for r in json.loads(record.read_text())] == [2, 4, 6]
  # A checkpoint the storage cannot serve now is an error before anything is written: the logs
  # are not cut back to a step the run would restart from (issue 28).
  logs = {name: (tmp_path / 'run' / name).read_bytes()
          for name in ('metrics.jsonl', 'evaluations.json')}

  def unavailable(self, target):
    del self, target
    raise checkpointing.CheckpointUnavailable(5, 'the checkpoint could not be read')
  monkeypatch.setattr(checkpointing.Manager, 'restore_latest', unavailable)
  config.num_train_steps = 8
  with pytest.raises(checkpointing.CheckpointUnavailable):
    train.train_and_evaluate(config, workdir)
  assert logs == {name: (tmp_path / 'run' / name).read_bytes() for name in logs}
