"""alc_jax/checkpointing.py in process: restoring falls back past unreadable checkpoints.
(The subprocess scenarios, crashes, preemption and full disks, are in tests/test_reliability.py.)"""

import shutil

import numpy as np

from alc_jax import checkpointing
from tests.conftest import corrupt_checkpoint


def _small_state(value):
  return {'params': {'w': np.full((64, 8), value, np.float32), 'b': np.arange(8.0) + value},
          'step': np.asarray(value, np.int32)}


def test_fallback_past_a_checkpoint_missing_its_item_directory(tmp_path):
  """orbax's CheckpointManager latches its item layout from the first step it reads (does
  step/default exist?): one manager for all steps then failed every older, intact checkpoint and
  silently restarted from step 0 (fixed in 8fea59f: a fresh manager after each failure)."""
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=3)
  for step in (1, 2):
    manager.save(step, _small_state(step))
  manager.wait()
  shutil.rmtree(tmp_path / '2' / 'default')  # E.g. a copy or a sync interrupted half-way.
  state, step = checkpointing.Manager(str(tmp_path), max_to_keep=3).restore_latest(
      _small_state(0))
  assert step == 1
  np.testing.assert_array_equal(state['params']['w'], _small_state(1)['params']['w'])


def test_fallback_past_a_truncated_checkpoint_in_process(tmp_path, capsys):
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=3)
  for step in (1, 2, 3):
    manager.save(step, _small_state(step))
  manager.wait()
  corrupt_checkpoint(tmp_path / '3')
  state, step = checkpointing.Manager(str(tmp_path), max_to_keep=3).restore_latest(
      _small_state(0))
  assert step == 2
  np.testing.assert_array_equal(state['params']['b'], _small_state(2)['params']['b'])
  out = capsys.readouterr().out
  assert 'Checkpoint at step 3 is unreadable' in out and 'at step 2.' in out
