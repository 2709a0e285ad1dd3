"""Orbax checkpoints of the train state: periodic, last k kept, resume from the newest readable one."""

import os
import shutil

from absl import logging
import orbax.checkpoint as ocp

from alc_jax import reporting


class Manager:
  """A thin wrapper over `ocp.CheckpointManager` that falls back past unreadable checkpoints."""

  def __init__(self, directory, max_to_keep):
    if not reporting.is_remote(directory):  # Orbax needs absolute local paths; gs://... as is.
      directory = os.path.abspath(directory)
    self._directory, self._max_to_keep = directory, max_to_keep
    self._manager = self._create()

  def _create(self):
    return ocp.CheckpointManager(
        self._directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=True))

  def save(self, step, state):
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
        if not reporting.is_remote(self._directory):
          bad = os.path.join(self._directory, str(step))
          shutil.rmtree(f'{bad}.unreadable', ignore_errors=True)
          os.replace(bad, f'{bad}.unreadable')
        # A fresh manager: orbax latches its item layout from the first step it reads.
        self._manager = self._create()
        continue
      print(f'Resuming from the checkpoint at step {step}.', flush=True)
      return state, step
    return target, 0
