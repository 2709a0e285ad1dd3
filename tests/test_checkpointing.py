"""alc_jax/checkpointing.py in process: restoring falls back past provably corrupt checkpoints.
(Checkpoints that must not be skipped, of another train state or on unavailable storage, are in
tests/test_resume_safety.py; the subprocess scenarios, crashes, preemption and full disks, are in
tests/test_reliability.py.)"""

import shutil

import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from alc_jax import checkpointing
from tests.conftest import corrupt_checkpoint


def _small_state(value):
  return {'params': {'w': np.full((64, 8), value, np.float32), 'b': np.arange(8.0) + value},
          'step': np.asarray(value, np.int32)}


def _save(directory, steps):
  manager = checkpointing.Manager(str(directory), max_to_keep=3)
  for step in steps:
    manager.save(step, _small_state(step))
  manager.wait()


def test_fallback_past_a_checkpoint_missing_its_item_directory(tmp_path):
  """orbax's CheckpointManager latches its item layout from the first step it reads (does
  step/default exist?): one manager for all steps then failed every older, intact checkpoint and
  silently restarted from step 0 (fixed in 8fea59f: a fresh manager after each failure)."""
  _save(tmp_path, (1, 2))
  shutil.rmtree(tmp_path / '2' / 'default')  # E.g. a copy or a sync interrupted half-way.
  state, step = checkpointing.Manager(str(tmp_path), max_to_keep=3).restore_latest(
      _small_state(0))
  assert step == 1
  np.testing.assert_array_equal(state['params']['w'], _small_state(1)['params']['w'])
  assert (tmp_path / '2.unreadable').is_dir() and not (tmp_path / '2').exists()


def test_fallback_past_a_truncated_checkpoint_in_process(tmp_path, capsys):
  _save(tmp_path, (1, 2, 3))
  corrupt_checkpoint(tmp_path / '3')
  # An earlier fallback's step 3, moved aside then: the newer unreadable copy replaces it.
  (tmp_path / '3.unreadable').mkdir()
  (tmp_path / '3.unreadable' / 'from_an_earlier_run').write_text('x')
  state, step = checkpointing.Manager(str(tmp_path), max_to_keep=3).restore_latest(
      _small_state(0))
  assert step == 2
  assert not (tmp_path / '3.unreadable' / 'from_an_earlier_run').exists()
  np.testing.assert_array_equal(state['params']['b'], _small_state(2)['params']['b'])
  out = capsys.readouterr().out
  assert 'Checkpoint at step 3 is unreadable' in out and 'at step 2.' in out
  # Moved aside, so that the resumed run can write step 3 again (orbax skips a step it has).
  assert (tmp_path / '3.unreadable').is_dir() and not (tmp_path / '3').exists()
  assert (tmp_path / '2').is_dir() and (tmp_path / '1').is_dir()


def test_orbax_never_reads_a_truncated_checkpoint_concurrently(tmp_path, monkeypatch):
  """orbax's metadata() reads every array's metadata at once under asyncio.run; on a truncated
  checkpoint the reads still in flight when the first fails each printed a traceback ("Event
  loop is closed", up to hundreds of lines in a CLI rerun). The metadata is read first one key
  at a time, so orbax reads only the checkpoint that decodes."""
  _save(tmp_path, (1, 2, 3))
  corrupt_checkpoint(tmp_path / '3')
  read = []
  original = ocp.StandardCheckpointHandler.metadata

  def metadata(self, directory):
    read.append(epath.Path(directory).parent.name)
    return original(self, directory)
  monkeypatch.setattr(ocp.StandardCheckpointHandler, 'metadata', metadata)
  _, step = checkpointing.Manager(str(tmp_path), max_to_keep=3).restore_latest(_small_state(0))
  assert step == 2 and read == ['2']


def test_fallback_past_a_truncated_tree_metadata_file(tmp_path, capsys):
  """A `_METADATA` cut short (valid JSON no more) is corrupt: the file reads back in full."""
  _save(tmp_path, (1, 2))
  metadata = tmp_path / '2' / 'default' / '_METADATA'
  metadata.write_bytes(metadata.read_bytes()[:40])
  state, step = checkpointing.Manager(str(tmp_path), max_to_keep=3).restore_latest(
      _small_state(0))
  assert step == 1 and int(state['step']) == 1
  assert 'Checkpoint at step 2 is unreadable' in capsys.readouterr().out
  assert (tmp_path / '2.unreadable').is_dir()


def test_an_intact_checkpoint_restores_and_nothing_moves(tmp_path, capsys):
  _save(tmp_path, (1, 2))
  state, step = checkpointing.Manager(str(tmp_path), max_to_keep=3).restore_latest(
      _small_state(0))
  assert step == 2
  np.testing.assert_array_equal(state['params']['w'], _small_state(2)['params']['w'])
  assert 'Resuming from the checkpoint at step 2.' in capsys.readouterr().out
  assert sorted(p.name for p in tmp_path.iterdir()) == ['1', '2']


def test_no_checkpoint_returns_the_target_at_step_0(tmp_path):
  target = _small_state(0)
  state, step = checkpointing.Manager(str(tmp_path / 'none'), max_to_keep=3).restore_latest(target)
  assert step == 0 and state is target
