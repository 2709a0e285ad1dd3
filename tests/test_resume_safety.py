"""Resumes that cannot quietly go wrong (issue 28): a checkpoint is skipped (and the run falls
back to an older one, cutting its metrics back) only when it is provably corrupt. A checkpoint of
another train state, or one the storage cannot serve just now, stops the run with a one-line
error and stays where it is. (The skipped, corrupt ones: tests/test_checkpointing.py.)"""

import errno

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from etils import epath

from alc_jax import checkpointing
from tests.conftest import corrupt_checkpoint


def _state(value, **changes):
  """A small train-state-like tree of jnp arrays; `changes` replace or add leaves of 'params'."""
  params = {'w': jnp.full((16, 4), value, jnp.float32), 'b': jnp.arange(4.0) + value}
  params.update(changes)
  return {'params': params, 'step': jnp.asarray(value, jnp.int32)}


def _save(directory, states):
  manager = checkpointing.Manager(str(directory), max_to_keep=5)
  for step, state in states.items():
    manager.save(step, state)
  manager.wait()


def _listing(directory):
  return sorted(p.name for p in directory.iterdir())


def _fail_reads(monkeypatch, tmp_path, fails):
  """Storage that lists a file but cannot serve it: epath's open raises EIO for the paths that
  `fails(path)` selects."""
  path_class = type(epath.Path(tmp_path))
  original_open = path_class.open

  def open_(self, *args, **kwargs):
    if fails(self):
      raise OSError(errno.EIO, 'Input/output error', str(self))
    return original_open(self, *args, **kwargs)
  monkeypatch.setattr(path_class, 'open', open_)


@pytest.mark.parametrize('target,fragment', [
    (_state(0, extra=jnp.zeros(3)), 'params.extra is missing from the checkpoint'),
    (_state(0, w=jnp.zeros((16, 8))), 'params.w is float32[16, 4] in the checkpoint but '
                                     'float32[16, 8] here'),
    (_state(0, b=jnp.zeros(4, jnp.int32)), 'params.b is float32[4] in the checkpoint but '
                                          'int32[4] here'),
    ({'params': {'w': jnp.zeros((16, 4))}, 'step': jnp.asarray(0)},
     'params.b is in the checkpoint only'),
], ids=['extra_leaf', 'shape', 'dtype', 'missing_leaf'])
def test_a_checkpoint_of_another_train_state_is_refused_and_kept(tmp_path, target, fragment):
  # The run stops at the newest checkpoint; step 1, as mismatched, is never tried.
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)
  with pytest.raises(checkpointing.CheckpointMismatch) as error:
    manager.restore_latest(target)
  message = str(error.value)
  assert fragment in message, message
  assert f'the checkpoint {tmp_path / "2"} ' in message, message
  assert 'new --workdir' in message and 'code and config that wrote it' in message, message
  assert '\n' not in message
  assert isinstance(error.value, ValueError) and isinstance(error.value,
                                                            checkpointing.CheckpointError)
  assert _listing(tmp_path) == ['1', '2']  # Nothing moved aside.


def test_a_mismatch_does_not_fall_back_to_an_older_checkpoint_that_fits(tmp_path, monkeypatch):
  """Step 1 fits the target, step 2 (a changed backbone, say) does not: falling back to step 1
  would quietly resume an older run; the error comes before any array is restored."""
  _save(tmp_path, {1: _state(1, w=jnp.zeros((16, 8))), 2: _state(2)})
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)
  restored = []
  monkeypatch.setattr(manager._manager, 'restore', lambda *a, **k: restored.append(a))
  with pytest.raises(checkpointing.CheckpointMismatch, match='params.w'):
    manager.restore_latest(_state(0, w=jnp.zeros((16, 8))))
  assert not restored
  assert _listing(tmp_path) == ['1', '2']


def test_storage_errors_are_raised_not_skipped(tmp_path, monkeypatch):
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)

  def restore(*args, **kwargs):
    del args, kwargs
    raise OSError(errno.EIO, 'Input/output error')
  monkeypatch.setattr(manager._manager, 'restore', restore)
  with pytest.raises(checkpointing.CheckpointUnavailable) as error:
    manager.restore_latest(_state(0))
  message = str(error.value)
  assert f'the checkpoint {tmp_path / "2"} could not be read' in message, message
  assert 'Input/output error' in message and 'rerun the same command' in message, message
  assert '\n' not in message and not message.startswith('[Errno')
  assert error.value.errno == errno.EIO and isinstance(error.value, OSError)
  assert _listing(tmp_path) == ['1', '2']


def test_a_storage_error_behind_a_decode_error_is_not_taken_for_corruption(tmp_path, monkeypatch):
  """tensorstore reports a failed read as a ValueError: only when every file of the step reads
  back in full is the checkpoint called corrupt. Here the data does not decode (truncated) and a
  data file cannot be read now (EIO): that proves nothing, so nothing is skipped."""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  corrupt_checkpoint(tmp_path / '2')
  _fail_reads(monkeypatch, tmp_path,
              lambda path: path.parent.name == 'd' and str(tmp_path / '2') in str(path))
  with pytest.raises(checkpointing.CheckpointUnavailable, match='Input/output error'):
    checkpointing.Manager(str(tmp_path), max_to_keep=5).restore_latest(_state(0))
  assert _listing(tmp_path) == ['1', '2']


def test_a_failure_that_is_not_the_checkpoints_keeps_its_traceback(tmp_path, monkeypatch):
  """A restore that fails although the arrays decode into host memory (a device out of memory,
  a bug) is raised as it is; the intact checkpoint stays."""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)

  def restore(*args, **kwargs):
    del args, kwargs
    raise RuntimeError('RESOURCE_EXHAUSTED: out of memory while placing the state')
  monkeypatch.setattr(manager._manager, 'restore', restore)
  with pytest.raises(RuntimeError, match='RESOURCE_EXHAUSTED'):
    manager.restore_latest(_state(0))
  assert _listing(tmp_path) == ['1', '2']


def test_corrupt_arrays_behind_intact_metadata_are_skipped(tmp_path, monkeypatch, capsys):
  """The metadata matches but restoring fails, and the arrays do not decode into host memory
  either (every file read back in full): corrupt, so moved aside and the one before restored."""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)
  original_restore = ocp.PyTreeCheckpointHandler.restore

  def fail_on_step_2(self, directory, *args, **kwargs):
    if epath.Path(directory).parent.name == '2':
      raise ValueError('DATA_LOSS: chunk checksum mismatch')
    return original_restore(self, directory, *args, **kwargs)
  monkeypatch.setattr(ocp.PyTreeCheckpointHandler, 'restore', fail_on_step_2)

  def restore(step, *args, **kwargs):
    if step == 2:
      raise ValueError('DATA_LOSS: chunk checksum mismatch')
    return original_manager_restore(step, *args, **kwargs)
  original_manager_restore = manager._manager.restore
  monkeypatch.setattr(manager._manager, 'restore', restore)
  state, step = manager.restore_latest(_state(0))
  assert step == 1 and int(state['step']) == 1
  np.testing.assert_array_equal(state['params']['b'], np.arange(4.0) + 1)
  out = capsys.readouterr().out
  assert 'Checkpoint at step 2 is unreadable (its arrays do not decode' in out, out
  assert _listing(tmp_path) == ['1', '2.unreadable']


def test_a_checkpoint_directory_the_storage_cannot_list_is_a_one_line_error(tmp_path,
                                                                           monkeypatch):
  """orbax creates and lists the directory when the manager starts: a storage error there (here
  EIO) is a CheckpointUnavailable naming the directory, not a traceback; nothing is moved."""
  _save(tmp_path, {1: _state(1)})

  def unavailable(*args, **kwargs):
    del args, kwargs
    raise OSError(errno.EIO, 'Input/output error')
  monkeypatch.setattr(ocp, 'CheckpointManager', unavailable)
  with pytest.raises(checkpointing.CheckpointUnavailable) as error:
    checkpointing.Manager(str(tmp_path), max_to_keep=5)
  assert error.value.errno == errno.EIO
  assert f'the checkpoint directory {tmp_path} could not be created or listed' in str(error.value)
  assert 'Input/output error' in str(error.value) and _listing(tmp_path) == ['1']


@pytest.mark.parametrize('host_error', ['memory', 'storage'])
def test_a_host_decode_that_proves_nothing_keeps_the_checkpoint(tmp_path, monkeypatch,
                                                                host_error):
  """The restore fails and so does decoding the arrays into host memory, but for a reason that
  says nothing of the bytes: host memory ran out (the restore's own error is raised) or the
  storage failed a read (CheckpointUnavailable). Either way nothing is skipped or moved."""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)

  def restore(*args, **kwargs):
    del args, kwargs
    raise ValueError('the restore failed')

  def host_decode(*args, **kwargs):
    del args, kwargs
    if host_error == 'memory':
      raise MemoryError('host memory ran out')
    raise OSError(errno.EIO, 'Input/output error')
  monkeypatch.setattr(manager._manager, 'restore', restore)
  monkeypatch.setattr(ocp.PyTreeCheckpointHandler, 'restore', host_decode)
  expected = ValueError if host_error == 'memory' else checkpointing.CheckpointUnavailable
  with pytest.raises(expected, match='the restore failed' if host_error == 'memory'
                     else 'Input/output error'):
    manager.restore_latest(_state(0))
  assert _listing(tmp_path) == ['1', '2']


def test_a_checkpoint_without_metadata_is_skipped_only_once_its_files_read_back(tmp_path,
                                                                                 monkeypatch):
  """No _METADATA (a copy cut short) proves the step incomplete only if the storage serves
  every other file of it: one that fails to read (EIO) stops the run, and nothing moves."""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  (tmp_path / '2' / 'default' / checkpointing.PYTREE_METADATA_FILE).unlink()
  _fail_reads(monkeypatch, tmp_path, lambda path: str(tmp_path / '2') in str(path))
  with pytest.raises(checkpointing.CheckpointUnavailable, match='Input/output error'):
    checkpointing.Manager(str(tmp_path), max_to_keep=5).restore_latest(_state(0))
  assert _listing(tmp_path) == ['1', '2']


def test_when_every_checkpoint_is_corrupt_nothing_moves_and_the_run_does_not_start_over(
    tmp_path):
  """All failing alike points to a common cause (another orbax): restarting from step 0 would
  move every checkpoint aside and cut metrics.jsonl back, so it is an error with the fix."""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  corrupt_checkpoint(tmp_path / '1')
  corrupt_checkpoint(tmp_path / '2')
  with pytest.raises(checkpointing.CheckpointError) as error:
    checkpointing.Manager(str(tmp_path), max_to_keep=5).restore_latest(_state(0))
  message = str(error.value)
  assert 'no checkpoint could be read' in message, message
  assert 'did not start over from step 0' in message, message
  assert 'step 2: ' in message and 'step 1: ' in message, message
  assert f'mv {tmp_path / "2"} {tmp_path / "2"}.unreadable' in message, message
  assert _listing(tmp_path) == ['1', '2']


def _bucket_restore_error(tmp_path, monkeypatch):
  """The CheckpointError's message of restore_latest on `tmp_path` taken for a bucket (gs://)."""
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)
  is_remote = checkpointing.workdir_io.is_remote
  monkeypatch.setattr(checkpointing.workdir_io, 'is_remote',
                      lambda path: str(path) == manager._directory or is_remote(path))
  with pytest.raises(checkpointing.CheckpointError) as error:
    manager.restore_latest(_state(0))
  return str(error.value)


def test_the_only_checkpoint_corrupt_in_a_bucket_names_the_bucket_command(tmp_path, monkeypatch):
  _save(tmp_path, {1: _state(1)})
  corrupt_checkpoint(tmp_path / '1')
  message = _bucket_restore_error(tmp_path, monkeypatch)
  assert 'its only checkpoint could not be read' in message, message
  assert f'`gsutil -m mv {tmp_path / "1"} {tmp_path / "1"}.unreadable`' in message, message
  assert _listing(tmp_path) == ['1']


def test_corrupt_checkpoints_move_aside_only_once_an_older_one_restored(tmp_path, capsys):
  _save(tmp_path, {1: _state(1), 2: _state(2), 3: _state(3)})
  corrupt_checkpoint(tmp_path / '2')
  corrupt_checkpoint(tmp_path / '3')
  state, step = checkpointing.Manager(str(tmp_path), max_to_keep=5).restore_latest(_state(0))
  assert step == 1 and int(state['step']) == 1
  out = capsys.readouterr().out
  said = [out.index(f'Checkpoint at step {s} is unreadable') for s in (3, 2)]
  assert said == sorted(said) and said[-1] < out.index('Resuming from the checkpoint at step 1.')
  assert _listing(tmp_path) == ['1', '2.unreadable', '3.unreadable']
  manager = checkpointing.Manager(str(tmp_path), max_to_keep=5)  # The resumed run saves 2 again.
  manager.save(2, _state(2))
  manager.wait()
  assert manager.restore_latest(_state(0))[1] == 2


def test_a_corrupt_checkpoint_in_a_bucket_is_named_not_moved(tmp_path, monkeypatch):
  """A bucket cannot move a directory atomically: once the older one restored, the error names
  the corrupt checkpoint, the command that moves it aside and the step the rerun resumes from;
  nothing is moved."""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  corrupt_checkpoint(tmp_path / '2')
  message = _bucket_restore_error(tmp_path, monkeypatch)
  assert f'the checkpoint {tmp_path / "2"} is incomplete or corrupt' in message, message
  assert f'gsutil -m mv {tmp_path / "2"} {tmp_path / "2"}.unreadable' in message, message
  assert 'resume from the intact one of step 1.' in message, message
  assert _listing(tmp_path) == ['1', '2']


@pytest.mark.parametrize('mine,peers,fragment', [
    ('restored', ['restored', 'failed'], 'process 1 of this job could not restore'),
    ('restored', ['restored', 'corrupt'], 'disagree whether the checkpoint'),
    ('corrupt', ['corrupt', 'restored'], 'process 0 found it incomplete or corrupt'),
])
def test_the_processes_of_a_job_agree_before_a_checkpoint_is_used_or_skipped(
    tmp_path, monkeypatch, mine, peers, fragment):
  """In a job of several processes, a checkpoint is restored only where every process restored
  it and skipped only where every process found it corrupt; otherwise each process stops, with
  a one-line error naming the process at fault, and nothing is moved. (Test 7 of
  tests/test_reliability.py runs the agreeing case in a real 2-process job.)"""
  _save(tmp_path, {1: _state(1), 2: _state(2)})
  if mine == 'corrupt':
    corrupt_checkpoint(str(tmp_path / '2'))
  seen = []
  monkeypatch.setattr(checkpointing, '_agree', lambda outcome: seen.append(outcome) or peers)
  with pytest.raises(checkpointing.CheckpointUnavailable, match=fragment):
    checkpointing.Manager(str(tmp_path), 5).restore_latest(_state(0))
  assert seen == [mine]  # This process's own outcome, at the newest checkpoint.
  assert _listing(tmp_path) == ['1', '2']
