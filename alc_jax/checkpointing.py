"""Orbax checkpoints of the train state: periodic, last k kept, resume from the newest readable one."""

import os

from absl import logging
import orbax.checkpoint as ocp


class Manager:
  """A thin wrapper over `ocp.CheckpointManager` that falls back past unreadable checkpoints."""

  def __init__(self, directory, max_to_keep):
    if '://' not in directory:  # Orbax needs absolute local paths (gs://... stays as it is).
      directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def save(self, step, state):
    self._manager.save(step, args=ocp.args.StandardSave(state))

  def wait(self):
    self._manager.wait_until_finished()

  def restore_latest(self, target):
    """(state, step) from the newest checkpoint that restores; (target, 0) if there is none.

    A truncated or corrupted newest checkpoint (a crash while writing, a full disk) is reported
    and skipped in favour of the one before it.
    """
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        state = self._manager.restore(step, args=ocp.args.StandardRestore(target))
      except Exception as e:  # pylint: disable=broad-except
        message = (f'Checkpoint at step {step} is unreadable ({type(e).__name__}: '
                   f'{str(e)[:200]}); falling back to the previous one.')
        logging.warning(message)
        print(message, flush=True)
        continue
      print(f'Resuming from the checkpoint at step {step}.', flush=True)
      return state, step
    return target, 0
