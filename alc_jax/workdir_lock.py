"""One run per workdir: a run takes `<workdir>/lock.json` before it writes anything there.

Two processes on one workdir (an accidental double launch, a SLURM requeue while the old job
still runs) would interleave metrics.jsonl and overwrite each other's checkpoints. The lock names
its holder (host, process id, since when) and carries a lease that a daemon thread renews every
`lease_seconds / 3`. Another process on the workdir:

* same host, on a local file system: the holder's process id decides. Alive -> `WorkdirInUse`;
  gone, a zombie, or reused by another program (its start time differs) -> the lock is taken over
  with a notice (kill -9 does not lock a workdir forever).
* another host (a shared NFS directory) or a bucket (`gs://`), where process ids mean nothing: the
  lease decides. Renewed less than `lease_seconds` ago -> `WorkdirInUse`, saying when it expires;
  expired -> taken over with a notice.

Locally the lock file is created with O_EXCL and a stale one is renamed away first, so of two
processes racing for a workdir exactly one wins. Object stores have no exclusive create: there
the lock is written, re-read after a moment and kept only if it is still ours (best effort).
The hosts of one multi-host job are one holder: process 0 takes the lock and tells the others.
"""

import errno
import json
import os
import socket
import threading
import time
import uuid

import jax
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from alc_jax import workdir_io

LOCK_NAME = 'lock.json'
LEASE_SECONDS = 300.0  # A holder that stops renewing (a lost node) frees the workdir after this.
REMOTE_SETTLE_SECONDS = 2.0  # Buckets: wait this long before re-reading a lock just written.


class WorkdirInUse(RuntimeError):
  """Another live process holds the workdir."""


def _start_time(pid):
  """The process's start time in clock ticks since boot (Linux /proc), or None where unknown."""
  try:
    with open(f'/proc/{pid}/stat', encoding='ascii') as f:
      fields = f.read().rsplit(')', 1)[1].split()  # After "pid (comm)", which may hold spaces.
  except (OSError, IndexError):
    return None
  return None if fields[0] == 'Z' else int(fields[19])  # State Z: dead, not yet reaped.


def _process_alive(pid, start_time):
  """Whether `pid` is still the process that wrote the lock (not dead, a zombie, or reused)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Alive, owned by another user.
    pass
  if os.path.exists('/proc/self/stat'):  # Linux: also catches zombies and reused ids.
    now = _start_time(pid)
    return now is not None and (start_time is None or now == start_time)
  return True


def describe(holder):
  since = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.get('since', 0)))
  return (f'host {holder.get("host")!r}, process id {holder.get("pid")}, since {since} '
          f'({holder.get("processes", 1)} process(es))')


class WorkdirLock:
  """Context manager: takes the workdir on enter (or raises WorkdirInUse), frees it on exit."""

  def __init__(self, workdir, lease_seconds=None):
    self.workdir = str(workdir)
    self.path = epath.Path(workdir) / LOCK_NAME
    self.remote = workdir_io.is_remote(workdir)
    self.lease_seconds = LEASE_SECONDS if lease_seconds is None else lease_seconds
    self.token = uuid.uuid4().hex
    self._stop = threading.Event()
    self._renewer = None
    self.took_over = None  # The stale holder replaced on enter, if any.

  # --- The lock file -------------------------------------------------------------------------

  def _record(self, since=None):
    now = time.time()
    pid = os.getpid()
    return {'host': socket.gethostname(), 'pid': pid, 'pid_start_time': _start_time(pid),
            'processes': jax.process_count(), 'since': now if since is None else since,
            'renewed': now, 'lease_seconds': self.lease_seconds, 'token': self.token}

  def _read(self):
    try:
      return json.loads(self.path.read_text())
    except FileNotFoundError:
      return None
    except (ValueError, OSError):  # Half-written (its writer died mid-write): stale.
      return {}

  def _write(self, record):
    workdir_io.write_bytes(str(self.path), json.dumps(record, indent=1).encode('utf-8'))

  def _create_local(self, record):
    """Creates the lock file whole; False if it exists (someone else holds or just took it). The
    record is written to a file of its own, then linked to the lock's name (atomic, and refused
    where the name exists): created empty and written after, a racing run could read it empty,
    take it for a dead holder's and take the workdir too."""
    new = f'{self.path}.new.{self.token}'
    fd = os.open(new, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
      with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(json.dumps(record, indent=1))
      os.link(new, self.path)
    except FileExistsError:
      return False
    except OSError as e:  # A file system without hard links (FAT, some network mounts).
      if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
        raise
      return self._create_exclusive(record)
    finally:
      os.remove(new)
    return True

  def _create_exclusive(self, record):
    """O_EXCL create, then write: where hard links are missing (the short window in which a
    racing run could read it empty remains there)."""
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(json.dumps(record, indent=1))
    return True

  def _lease_decides(self, holder):
    """Whether the lease, not the process id, says if `holder` is alive: process ids mean nothing
    on a bucket, on another host, or for the hosts of a multi-host job."""
    return (self.remote or holder.get('host') != socket.gethostname()
            or holder.get('processes', 1) > 1)

  def _expires(self, holder):
    return holder.get('renewed', 0) + holder.get('lease_seconds', self.lease_seconds)

  def _stale_reason(self, holder):
    """Why `holder` no longer holds the workdir, or None if it does."""
    if not holder:
      return 'its lock file is unreadable'
    if not self._lease_decides(holder):
      if not _process_alive(holder['pid'], holder.get('pid_start_time')):
        return f'process {holder["pid"]} is no longer running'
      return None
    expires = self._expires(holder)
    if time.time() > expires:
      return f'its lease expired at {time.strftime("%H:%M:%S", time.localtime(expires))}'
    return None

  def _refusal(self, holder):
    message = (f'{self.workdir} is in use by another run ({describe(holder)}); two runs in one '
               'workdir would overwrite each other\'s checkpoints and metrics.')
    if self._lease_decides(holder):
      expires = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self._expires(holder)))
      message += (' Its lease is renewed while it runs; if it has died, the workdir frees itself '
                  f'at {expires}.')
    return message + (' Wait for it to finish (or stop it), or use another --workdir. If you are '
                      f'sure no run uses it, delete {self.path}.')

  def _take(self):
    """Takes the lock or raises WorkdirInUse (process 0 of a multi-host job only)."""
    for _ in range(10):  # Retries only when another process changes the lock under us.
      holder = self._read()
      if holder is None:
        if self.remote:
          self._write(self._record())
          time.sleep(REMOTE_SETTLE_SECONDS)
          if (self._read() or {}).get('token') == self.token:
            return
          continue
        if self._create_local(self._record()):
          return
        continue
      reason = self._stale_reason(holder)
      if reason is None:
        raise WorkdirInUse(self._refusal(holder))
      notice = (f'Taking over {self.workdir} from a run that no longer holds it ({reason}; '
                f'{describe(holder) if holder else "no holder recorded"}).')
      logging.warning(notice)
      print(notice, flush=True)
      self.took_over = holder
      if self.remote:
        self.path.unlink(missing_ok=True)
      else:  # A rename succeeds for one of several racing processes; the others retry.
        try:
          os.replace(self.path, f'{self.path}.stale.{self.token}')
          os.remove(f'{self.path}.stale.{self.token}')
        except FileNotFoundError:
          pass
    raise WorkdirInUse(f'{self.workdir}: could not take {self.path}: other processes keep '
                       'changing it. Use another --workdir.')

  def _renew(self):
    since = (self._read() or {}).get('since')
    while not self._stop.wait(self.lease_seconds / 3):
      try:
        if (self._read() or {}).get('token') != self.token:
          logging.error('%s was taken by another process; this run keeps going.', self.path)
          return
        self._write(self._record(since))
      except OSError as e:  # A full disk or a network hiccup: try again next time.
        logging.warning('Could not renew %s: %s', self.path, e)

  # --- Context manager -----------------------------------------------------------------------

  def __enter__(self):
    error = ''
    if jax.process_index() == 0:
      try:
        self._take()
      except WorkdirInUse as e:
        error = str(e)
    if jax.process_count() > 1:  # One holder for all hosts: process 0 decides for them.
      failed = multihost_utils.broadcast_one_to_all(np.int32(bool(error)))
      if int(failed) and not error:
        error = f'{self.workdir} is in use by another run (see the log of process 0).'
    if error:
      raise WorkdirInUse(error)
    if jax.process_index() == 0:
      self._renewer = threading.Thread(target=self._renew, daemon=True, name='workdir-lock')
      self._renewer.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    if self._renewer is not None:
      self._renewer.join(timeout=5)
      try:
        if (self._read() or {}).get('token') == self.token:
          self.path.unlink(missing_ok=True)
      except OSError as e:
        logging.warning('Could not remove %s: %s', self.path, e)
    return False
