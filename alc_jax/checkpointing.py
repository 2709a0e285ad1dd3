"""Orbax checkpoints of the train state: periodic, last k kept, resume from the newest readable one."""

import errno
import os
import shutil

from absl import logging
import jax
import orbax.checkpoint as ocp

from alc_jax import workdir_io

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
  """The workdir's disk (or quota) is full: the run stopped, the newest complete checkpoint kept."""


def free_bytes(path):
  """Free bytes on the file system of local `path` (or of its nearest existing parent)."""
  path = os.path.abspath(path)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return shutil.disk_usage(path).free


def _mib(nbytes):
  return f'{nbytes / 2**20:.1f} MiB'


def is_disk_full(error):
  """Whether `error`, or an error it was raised from or during, is a full disk or quota. Orbax
  re-raises the OSError of its background writer wrapped, sometimes only as text."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
      return True
    if 'No space left on device' in str(error) or 'Disk quota exceeded' in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def disk_full_error(workdir, what):
  """The DiskFullError the run stops with, naming the path and its free space."""
  free = 'unknown' if workdir_io.is_remote(workdir) else _mib(free_bytes(workdir))
  return DiskFullError(
      errno.ENOSPC,
      f'the disk of {workdir} is full ({free} free) while {what}. The newest complete '
      'checkpoint is kept; free some space (or lower config.keep_checkpoints) and rerun the same '
      'command to resume from it.')


class Manager:
  """A thin wrapper over `ocp.CheckpointManager` that falls back past unreadable checkpoints."""

  def __init__(self, directory, max_to_keep):
    if not workdir_io.is_remote(directory):  # Orbax needs absolute local paths; gs://... as is.
      directory = os.path.abspath(directory)
    self._directory, self._max_to_keep = directory, max_to_keep
    self._manager = self._create()

  def _create(self):
    return ocp.CheckpointManager(
        self._directory,
        # cleanup_tmp_directories: a save cut short (a crash, a full disk) leaves a temporary
        # directory; the resumed run deletes it instead of leaving it to fill the disk.
        options=ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=True,
                                             cleanup_tmp_directories=True))

  def save(self, step, state):
    """Saves `state` (asynchronously); refuses with DiskFullError when a local disk has no room
    for it, before anything is written (a partial checkpoint would only fill the disk more)."""
    if not workdir_io.is_remote(self._directory):
      need = sum(x.nbytes for x in jax.tree.leaves(state)) + 2**20  # ~1 MiB of metadata.
      free = free_bytes(self._directory)
      if free < need:
        raise disk_full_error(self._directory, f'saving the checkpoint of step {step}, which '
                                               f'needs about {_mib(need)}')
    self._manager.save(step, args=ocp.args.StandardSave(state))

  def wait(self):
    self._manager.wait_until_finished()

  def restore_latest(self, target):
    """(state, step) from the newest checkpoint that restores; (target, 0) if there is none.

    A truncated or corrupted newest checkpoint (a crash while writing, a full disk, an interrupted
    copy) is reported, moved aside to `<step>.unreadable` (so that the resumed run can write that
    step again), and the one before it is tried.
    """
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        state = self._manager.restore(step, args=ocp.args.StandardRestore(target))
      except Exception as e:  # pylint: disable=broad-except
        message = (f'Checkpoint at step {step} is unreadable ({type(e).__name__}: '
                   f'{str(e)[:200]}); falling back to the previous one.')
        logging.warning(message)
        print(message, flush=True)
        self._manager.close()
        if not workdir_io.is_remote(self._directory):
          bad = os.path.join(self._directory, str(step))
          shutil.rmtree(f'{bad}.unreadable', ignore_errors=True)
          os.replace(bad, f'{bad}.unreadable')
        # A fresh manager: orbax latches its item layout from the first step it reads.
        self._manager = self._create()
        continue
      print(f'Resuming from the checkpoint at step {step}.', flush=True)
      return state, step
    return target, 0
