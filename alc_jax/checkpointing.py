"""Orbax checkpoints of the train state: periodic, last k kept, resume from the newest one.

A resume never quietly goes wrong: a checkpoint of another train state or one the storage cannot
serve now stops the run with a one-line CheckpointError; only a provably corrupt one is skipped
(Manager.restore_latest says what "provably" means)."""

import errno
import os
import shutil

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp
import tensorstore as ts  # orbax's storage layer (a dependency of orbax).

from alc_jax import workdir_io

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# The tree metadata file orbax writes in an item directory (format_utils.PYTREE_METADATA_FILE).
PYTREE_METADATA_FILE = '_METADATA'


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


def _chain(error):
  """`error` and the errors it was raised from or during, innermost last."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def is_disk_full(error):
  """Whether `error`, or an error it was raised from or during, is a full disk or quota. Orbax
  re-raises the OSError of its background writer wrapped, sometimes only as text."""
  for e in _chain(error):
    if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
      return True
    if 'No space left on device' in str(e) or 'Disk quota exceeded' in str(e):
      return True
  return False


def disk_full_error(workdir, what):
  """The DiskFullError the run stops with, naming the path and its free space."""
  free = 'unknown' if workdir_io.is_remote(workdir) else _mib(free_bytes(workdir))
  return DiskFullError(
      errno.ENOSPC,
      f'the disk of {workdir} is full ({free} free) while {what}. The newest complete '
      'checkpoint is kept; free some space (or lower config.keep_checkpoints) and rerun the same '
      'command to resume from it.')


class CheckpointError(Exception):
  """A checkpoint the run cannot resume from and must not skip: nothing was moved or skipped, and
  the message (which reads after 'Checkpoint error: ') says what to do."""


class CheckpointMismatch(CheckpointError, ValueError):
  """The checkpoint holds another train state (tree structure, shapes or dtypes) than the one this
  code and config build: a code change, another backbone, changed TrainState fields."""


class CheckpointUnavailable(CheckpointError, OSError):
  """The storage did not answer a read of the checkpoint (EIO, a timeout, permission denied, a
  remote-storage error): the checkpoint may well be intact, so it is neither skipped nor moved."""

  def __str__(self):  # The message alone: '[Errno 5] ...' would repeat what it already says.
    return self.strerror or super().__str__()


class _Corrupt(Exception):
  """Internal: the checkpoint is provably incomplete or corrupt (see Manager.restore_latest)."""


# What each process's attempt at a checkpoint came to (`_agree`).
OUTCOMES = ('restored', 'corrupt', 'failed')


def _agree(outcome):
  """Every process's outcome (one of OUTCOMES) of its attempt at one checkpoint, in process
  order; a collective in a job of several processes, so every process must reach it."""
  if jax.process_count() == 1:
    return [outcome]
  codes = multihost_utils.process_allgather(np.int32(OUTCOMES.index(outcome)))
  return [OUTCOMES[int(code)] for code in np.ravel(codes)]


def _errno(error):
  """The errno of the first OSError in `error`'s chain that has one, else None."""
  return next((e.errno for e in _chain(error) if isinstance(e, OSError) and e.errno), None)


def _describe(error):
  return f'{type(error).__name__}: {" ".join(str(error).split())[:200]}'


def _path_name(path):
  return '.'.join(path) or '<root>'


def _leaf_spec(leaf):
  """(shape, dtype name) of a target leaf or of orbax's ArrayMetadata; None for either unknown."""
  shape = getattr(leaf, 'shape', None)
  dtype = getattr(leaf, 'dtype', None)
  if shape is None and isinstance(leaf, (bool, int, float, complex, np.generic)):
    shape, dtype = (), np.asarray(leaf).dtype
  try:
    dtype = None if dtype is None else np.dtype(dtype).name
  except TypeError:  # E.g. a typed PRNG key's dtype: compare its name.
    dtype = str(dtype)
  return (None if shape is None else tuple(shape)), dtype


def tree_differences(saved, target):
  """What differs between a checkpoint's metadata tree and `target`: a list of short phrases,
  empty when every leaf path, shape and dtype agrees. Paths are orbax's ('params.conv.kernel')."""
  saved = {k: _leaf_spec(v) for k, v in ocp.tree.to_flat_dict(saved).items()}
  target = {k: _leaf_spec(v) for k, v in ocp.tree.to_flat_dict(target).items()}
  out = [f'{_path_name(k)} is in the checkpoint only' for k in sorted(set(saved) - set(target))]
  out += [f'{_path_name(k)} is missing from the checkpoint'
          for k in sorted(set(target) - set(saved))]
  for key in sorted(set(saved) & set(target)):
    (s_shape, s_dtype), (t_shape, t_dtype) = saved[key], target[key]
    if (s_shape is not None and t_shape is not None and s_shape != t_shape) or (
        s_dtype is not None and t_dtype is not None and s_dtype != t_dtype):
      out.append(f'{_path_name(key)} is {s_dtype}{list(s_shape or ())} in the checkpoint but '
                 f'{t_dtype}{list(t_shape or ())} here')
  return out


# The OCDBT keys of the arrays' zarr metadata, which orbax's metadata() reads.
_ZARR_METADATA_KEYS = (b'.zarray', b'.zattrs', b'.zgroup', b'zarr.json')


def _read_ocdbt_metadata(item):
  """Reads the index and the arrays' metadata of the OCDBT database in `item` (orbax's layout
  since 0.5, `manifest.ocdbt`), one key after another; raises what tensorstore raises if they do
  not decode. orbax's metadata() reads the same keys concurrently under asyncio.run, and when one
  fails it closes the event loop while the others are in flight: each of them then printed a
  traceback ("RuntimeError: Event loop is closed"), hundreds of lines under the one-line notice
  of a truncated checkpoint. Local directories only; elsewhere orbax reads first."""
  if workdir_io.is_remote(str(item)) or not (item / 'manifest.ocdbt').exists():
    return
  store = ts.KvStore.open({'driver': 'ocdbt', 'base': f'file://{os.path.abspath(item)}/'}).result()
  for key in store.list().result():
    if key.endswith(_ZARR_METADATA_KEYS):
      store.read(key).result()


FOLDER = 'checkpoints'  # A run's checkpoints: <workdir>/checkpoints/<step>/.


def has_checkpoint(directory):
  """Whether `directory` (local or gs://) holds a step directory: a run there has something to
  resume. A read, not orbax's listing (which creates and cleans the directory)."""
  path = epath.Path(directory)
  return path.is_dir() and any(p.name.isdigit() for p in path.iterdir())


class Manager:
  """A thin wrapper over `ocp.CheckpointManager` that falls back past corrupt checkpoints only."""

  def __init__(self, directory, max_to_keep):
    if not workdir_io.is_remote(directory):  # Orbax needs absolute local paths; gs://... as is.
      directory = os.path.abspath(directory)
    self._directory, self._max_to_keep = directory, max_to_keep
    self._manager = self._create()

  def _create(self):
    """orbax's manager of the directory; it creates the directory and lists its steps, so a
    storage that fails there is a CheckpointUnavailable (one line), not a traceback."""
    try:
      return ocp.CheckpointManager(
          self._directory,
          # cleanup_tmp_directories: a save cut short (a crash, a full disk) leaves a temporary
          # directory; the resumed run deletes it instead of leaving it to fill the disk.
          options=ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=True,
                                               cleanup_tmp_directories=True))
    except OSError as e:
      raise CheckpointUnavailable(
          _errno(e), f'the checkpoint directory {self._directory} could not be created or listed '
          f'({_describe(e)}). Nothing was read or moved: check its permissions, mount or network '
          f'and rerun the same command.') from e

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
    """(state, step) from the newest checkpoint; (target, 0) if there is none.

    Each checkpoint, newest first, ends in one of four ways:
    - restored: resume from it;
    - CheckpointMismatch: its stored metadata (every leaf's path, shape and dtype, read before
      any array) differs from `target`'s: the code or config changed. Raised; nothing is moved;
    - CheckpointUnavailable: the storage failed a read (any OSError, raised by orbax or by our
      own read of the step directory's files): it may be intact. Raised; nothing is moved;
    - provably incomplete or corrupt: the one before it is tried; once an older one restored,
      each skipped one is reported and moved aside to `<step>.unreadable` (so that the resumed
      run can write that step again). If none restores, CheckpointError: nothing is moved and
      the run does not start over from step 0 (which would cut metrics.jsonl back): every
      checkpoint failing alike points to a common cause (an orbax or jaxlib that reads them
      differently) more than to damage, and the error says how to start over. "Provably" means
      that the storage answered every read and the bytes are not a checkpoint: the step
      directory has no `_METADATA` (in `default/`, or in the step directory for orbax's older
      layout: a copy or sync cut short), or its metadata cannot be decoded (a truncated
      `_METADATA`, array data files truncated or missing: tests/conftest.py's
      corrupt_checkpoint), or the arrays cannot be decoded into host memory either; in each
      case after every file of the step directory was read back in full without an error.
    A restore that fails although the arrays decode into host memory (a device out of memory, a
    bug) is not the checkpoint's fault: its error is raised as it is and nothing is moved.
    On a remote workdir (gs://...) a corrupt checkpoint cannot be moved aside atomically; once an
    older one restored, the CheckpointError raised names it and says how to move it aside by hand.
    In a job of several processes every process tries each checkpoint, then they agree (a
    collective): restored where all restored it; skipped (moved aside once, by process 0) where
    all found it corrupt; otherwise every process stops, each with its own error, or a
    CheckpointUnavailable naming the process that failed.
    """
    skipped = []  # (step, path, why) of the corrupt ones, newest first.
    for step in sorted(self._manager.all_steps(), reverse=True):
      path = epath.Path(self._directory) / str(step)
      state = error = None
      try:
        self._check_metadata(path, target)
        state = self._manager.restore(step, args=ocp.args.StandardRestore(target))
      except (CheckpointError, _Corrupt) as e:
        error = e
      except Exception as e:  # pylint: disable=broad-except
        try:
          self._diagnose(path, target, e)
          error = e  # Not the checkpoint's fault (the arrays decode): a traceback for a bug.
        except (CheckpointError, _Corrupt) as diagnosed:
          error = diagnosed
      outcomes = _agree('restored' if error is None else
                        'corrupt' if isinstance(error, _Corrupt) else 'failed')
      if error is not None and not isinstance(error, _Corrupt):
        if isinstance(error, CheckpointError):
          self._manager.close()  # Its threads would otherwise outlive the one-line error.
        raise error
      if 'failed' in outcomes or len(set(outcomes)) > 1:
        self._manager.close()
        raise self._peers_failed(path, outcomes)
      if error is not None:  # Every process found it corrupt.
        skipped.append((step, path, error))
        # A fresh manager: orbax latches its item layout from the first step it reads.
        self._manager.close()
        self._manager = self._create()
        continue
      if skipped:
        self._move_aside(skipped, step)
      print(f'Resuming from the checkpoint at step {step}.', flush=True)
      return state, step
    if skipped:
      self._manager.close()
      raise self._none_readable(skipped)
    return target, 0

  def _peers_failed(self, path, outcomes):
    """The CheckpointUnavailable of a process whose own attempt did not fail while another
    process's did, or found the checkpoint corrupt where it did not."""
    failed = [i for i, outcome in enumerate(outcomes) if outcome == 'failed']
    if failed:
      what = f'process {failed[0]} of this job could not restore the checkpoint {path}'
    else:
      corrupt = [i for i, outcome in enumerate(outcomes) if outcome == 'corrupt']
      what = (f'the processes of this job disagree whether the checkpoint {path} is readable '
              f'(process {corrupt[0]} found it incomplete or corrupt)')
    return CheckpointUnavailable(
        errno.EIO, f'{what}; its log says why. Nothing was skipped or moved: rerun the same '
        'command once that is fixed.')

  def _move_aside(self, skipped, restored):
    """Moves each corrupt checkpoint of `skipped` ((step, path, why), newer than the step
    `restored`) to `<step>.unreadable`, saying so once for the job's processes."""
    if workdir_io.is_remote(self._directory):
      self._manager.close()
      named = ', '.join(str(path) for _, path, _ in skipped)
      named = f'checkpoints {named} are' if len(skipped) > 1 else f'checkpoint {named} is'
      moves = '; '.join(f'gsutil -m mv {path} {path}.unreadable' for _, path, _ in skipped)
      raise CheckpointError(
          f'the {named} incomplete or corrupt ({skipped[0][2]}); a checkpoint in a bucket cannot '
          f'be moved aside atomically: move it aside yourself (`{moves}`) and rerun the same '
          f'command to resume from the intact one of step {restored}.')
    for step, path, corrupt in skipped:
      message = (f'Checkpoint at step {step} is unreadable ({corrupt}); falling back to the '
                 'previous one.')
      logging.warning(message)
      if jax.process_index() == 0:  # Once, for the job's processes, which all agreed to skip it.
        print(message, flush=True)
        shutil.rmtree(f'{path}.unreadable', ignore_errors=True)
        os.replace(path, f'{path}.unreadable')
    if jax.process_count() > 1:  # No process lists the steps before the moves.
      multihost_utils.sync_global_devices('corrupt checkpoints moved aside')
    self._manager.close()  # orbax's manager lists the steps it has; it would skip saving them.
    self._manager = self._create()

  def _none_readable(self, skipped):
    """The CheckpointError when every checkpoint is corrupt (`skipped`: (step, path, why))."""
    which = '; '.join(f'step {step}: {why}' for step, _, why in skipped[:3])
    more = f'; and {len(skipped) - 3} more' if len(skipped) > 3 else ''
    mv = 'gsutil -m mv' if workdir_io.is_remote(self._directory) else 'mv'
    moves = '; '.join(f'{mv} {path} {path}.unreadable' for _, path, _ in skipped)
    what = ('its only checkpoint could not be read: it is incomplete or corrupt'
            if len(skipped) == 1 else 'no checkpoint could be read, each incomplete or corrupt')
    return CheckpointError(
        f'{self._directory}: {what} ({which}{more}). Nothing was moved and the run did not start '
        f'over from step 0 (which would drop the logged metrics): an orbax or jaxlib version that '
        f'reads checkpoints differently fails them all alike. Rerun with the versions that wrote '
        f'them to resume; if they are damaged, move them aside (`{moves}`) and rerun to start '
        f'from step 0, or use a new --workdir.')

  def _unavailable(self, path, error):
    """The CheckpointUnavailable for a failed read of the checkpoint at `path`."""
    return CheckpointUnavailable(
        _errno(error), f'the checkpoint {path} could not be read ({_describe(error)}). It may well '
        f'be intact, so nothing was skipped or moved: rerun the same command once the storage '
        f'answers again (check its permissions, mount or network).')

  @staticmethod
  def _item_dir(path):
    """The directory holding the checkpoint's `_METADATA`: `step/default` (what orbax writes in
    its default-item mode) or `step` itself (its older layout)."""
    for item in (path / 'default', path):
      if (item / PYTREE_METADATA_FILE).exists():
        return item
    raise _Corrupt(f'{path} has no {PYTREE_METADATA_FILE}: it was never completed')

  def _check_metadata(self, path, target):
    """Raises CheckpointMismatch if the checkpoint's tree differs from `target`'s; its errors
    are diagnosed like a failed restore."""
    try:
      item = self._item_dir(path)
      _read_ocdbt_metadata(item)
      handler = ocp.StandardCheckpointHandler()
      try:
        metadata = handler.metadata(item)
      finally:
        handler.close()
    except _Corrupt:
      self._read_all_files(path)  # A storage error would not prove anything.
      raise
    except Exception as e:  # pylint: disable=broad-except
      self._raise_if_unavailable(path, e)
      # Every byte was read back: the metadata itself (the JSON, or the arrays' zarr metadata
      # that orbax reads from the data files) does not decode.
      raise _Corrupt(f'its metadata does not decode: {_describe(e)}') from e
    tree = metadata.tree if hasattr(metadata, 'tree') else metadata
    differences = tree_differences(tree, target)
    if differences:
      more = f' and {len(differences) - 4} more' if len(differences) > 4 else ''
      raise CheckpointMismatch(
          f'the checkpoint {path} holds another train state than this code and config build '
          f'({"; ".join(differences[:4])}{more}). It is left as it is: use a new --workdir, or '
          f'rerun with the code and config that wrote it.')

  def _diagnose(self, path, target, error):
    """After a restore failed with `error` although the metadata matched: raises
    CheckpointUnavailable or _Corrupt, or returns when the checkpoint is not at fault."""
    self._raise_if_unavailable(path, error)
    # Decode every array into host memory, away from the devices and the target's shardings: if
    # this fails too, the stored bytes (all read back without an error) are not the arrays.
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    handler = ocp.PyTreeCheckpointHandler()
    try:
      handler.restore(self._item_dir(path),
                      args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args))
    except Exception as e:  # pylint: disable=broad-except
      if any(isinstance(x, OSError) for x in _chain(e)):
        raise self._unavailable(path, e) from e
      if any(isinstance(x, MemoryError) for x in _chain(e)):
        return  # Host memory ran out: that proves nothing about the checkpoint.
      raise _Corrupt(f'its arrays do not decode: {_describe(e)}') from e
    finally:
      handler.close()

  def _raise_if_unavailable(self, path, error):
    """Raises CheckpointUnavailable if `error` is (or came from) an OSError, or if any file of
    the step directory cannot be read back in full now."""
    if any(isinstance(e, OSError) for e in _chain(error)):
      raise self._unavailable(path, error) from error
    self._read_all_files(path)

  def _read_all_files(self, path):
    try:
      folders = [path]
      while folders:  # No rglob: epath refuses '**' (one listing per folder on a bucket).
        for entry in sorted(folders.pop().iterdir()):
          if entry.is_dir():
            folders.append(entry)
          else:
            with entry.open('rb') as f:
              while f.read(2**24):
                pass
    except Exception as e:  # pylint: disable=broad-except
      # Any failure to read plain bytes, whatever the backend calls it, is the storage's.
      raise self._unavailable(path, e) from e
