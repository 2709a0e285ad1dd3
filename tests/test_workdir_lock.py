"""One run per workdir (alc_jax/workdir_lock.py): refusal, stale holders taken over, the lease.

The command-line double launch and the takeover after a SIGKILL are in test_reliability.py.
"""

import errno
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from alc_jax import workdir_lock


def _write_holder(workdir, **fields):
  holder = {'host': socket.gethostname(), 'pid': 1, 'pid_start_time': None, 'processes': 1,
            'since': time.time() - 60, 'renewed': time.time(), 'lease_seconds': 300,
            'token': 'other'}
  holder.update(fields)
  (workdir / workdir_lock.LOCK_NAME).write_text(json.dumps(holder))
  return holder


@pytest.fixture
def sleeper():
  """A live process of this host that is not us."""
  proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  yield proc
  proc.kill()
  proc.wait()


def test_the_lock_names_its_holder_and_is_freed_on_exit(tmp_path):
  path = tmp_path / workdir_lock.LOCK_NAME
  with workdir_lock.WorkdirLock(tmp_path):
    holder = json.loads(path.read_text())
    assert holder['host'] == socket.gethostname() and holder['pid'] == os.getpid()
    assert abs(holder['since'] - time.time()) < 60 and holder['processes'] == 1
  assert not path.exists()
  with pytest.raises(KeyError):  # Freed when the run fails too.
    with workdir_lock.WorkdirLock(tmp_path):
      raise KeyError('a bug in the run')
  assert not path.exists()


def test_a_live_holder_refuses_the_second_run_saying_who_and_what_to_do(tmp_path, sleeper):
  _write_holder(tmp_path, pid=sleeper.pid, pid_start_time=workdir_lock._start_time(sleeper.pid))
  with pytest.raises(workdir_lock.WorkdirInUse) as e:
    with workdir_lock.WorkdirLock(tmp_path):
      pytest.fail('the second run must not get the workdir')
  message = str(e.value)
  for fragment in (str(tmp_path), socket.gethostname(), f'process id {sleeper.pid}', 'since',
                   'another --workdir', str(tmp_path / workdir_lock.LOCK_NAME)):
    assert fragment in message, (fragment, message)
  assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())['token'] == 'other'


def test_this_process_cannot_take_a_workdir_it_already_holds(tmp_path):
  with workdir_lock.WorkdirLock(tmp_path):
    with pytest.raises(workdir_lock.WorkdirInUse, match=f'process id {os.getpid()}'):
      with workdir_lock.WorkdirLock(tmp_path):
        pass
    assert (tmp_path / workdir_lock.LOCK_NAME).exists()  # Still the first one's.


def _dead_pid():
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  proc.wait()
  return proc.pid


def _zombie_pid():
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  for _ in range(500):  # Exited, not reaped: `kill -0` still succeeds on it.
    try:  # Its state, read here rather than through the code under test.
      with open(f'/proc/{proc.pid}/stat', encoding='ascii') as f:
        if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
          return proc.pid, proc
    except OSError:
      break
    time.sleep(0.01)
  pytest.skip('no /proc state for zombies here')


@pytest.mark.parametrize('kind', ['dead', 'zombie', 'reused', 'unreadable'])
def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_notice(tmp_path, capsys, sleeper,
                                                                   kind):
  proc = None
  if kind == 'dead':
    _write_holder(tmp_path, pid=_dead_pid())
    reason = 'is no longer running'
  elif kind == 'zombie':
    pid, proc = _zombie_pid()
    _write_holder(tmp_path, pid=pid)
    reason = 'is no longer running'
  elif kind == 'reused':  # The id now belongs to another program, started later.
    _write_holder(tmp_path, pid=sleeper.pid,
                  pid_start_time=workdir_lock._start_time(sleeper.pid) - 1)
    reason = 'is no longer running'
  else:  # Its writer died mid-write.
    (tmp_path / workdir_lock.LOCK_NAME).write_text('{"host": "x", "pi')
    reason = 'unreadable'
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())['pid'] == os.getpid()
    assert lock.took_over is not None
  out = capsys.readouterr().out
  assert 'Taking over' in out and reason in out, out
  assert not list(tmp_path.glob('lock.json.*'))  # No temporary or stale files left.
  if proc is not None:
    proc.wait()


def test_another_hosts_lock_holds_until_its_lease_expires(tmp_path, capsys):
  _write_holder(tmp_path, host='node-17', pid=os.getpid(), renewed=time.time() - 10,
                lease_seconds=300)
  with pytest.raises(workdir_lock.WorkdirInUse) as e:
    with workdir_lock.WorkdirLock(tmp_path):
      pass
  assert "host 'node-17'" in str(e.value) and 'frees itself at' in str(e.value)
  _write_holder(tmp_path, host='node-17', pid=os.getpid(), renewed=time.time() - 400,
                lease_seconds=300)
  with workdir_lock.WorkdirLock(tmp_path):
    pass
  assert 'lease expired' in capsys.readouterr().out


def test_of_two_racing_runs_the_second_creator_does_not_overwrite_the_first(tmp_path,
                                                                           monkeypatch, sleeper):
  # Both found no lock file; the other run created it first. Ours must not overwrite it: the
  # exclusive create fails, and the holder it then reads (alive) refuses us.
  holder = _write_holder(tmp_path, pid=sleeper.pid,
                         pid_start_time=workdir_lock._start_time(sleeper.pid))
  reads = []
  real_read = workdir_lock.WorkdirLock._read

  def read(self):
    reads.append(1)
    return None if len(reads) == 1 else real_read(self)  # The first read came before theirs.

  monkeypatch.setattr(workdir_lock.WorkdirLock, '_read', read)
  with pytest.raises(workdir_lock.WorkdirInUse):
    with workdir_lock.WorkdirLock(tmp_path):
      pytest.fail('the second run must not get the workdir')
  assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text()) == holder


def test_the_lock_file_never_exists_without_its_whole_record(tmp_path, monkeypatch):
  """Created empty and written after, a racing run could read it empty between the two, take it
  for a dead holder's and take the workdir as well: the name appears with the record in it."""
  seen = []
  real_link = os.link

  def link(source, target):
    seen.append((os.path.exists(target), json.loads(open(source, encoding='utf-8').read())))
    real_link(source, target)

  monkeypatch.setattr(workdir_lock.os, 'link', link)
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    assert seen == [(False, json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text()))]
    assert seen[0][1]['token'] == lock.token
    assert os.listdir(tmp_path) == [workdir_lock.LOCK_NAME]  # No record file left beside it.


def test_without_hard_links_the_lock_is_created_exclusively(tmp_path, monkeypatch):
  def no_links(source, target):
    raise OSError(errno.EPERM, 'Operation not permitted', source)

  monkeypatch.setattr(workdir_lock.os, 'link', no_links)
  with workdir_lock.WorkdirLock(tmp_path) as lock:
    assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())['token'] == lock.token
    assert os.listdir(tmp_path) == [workdir_lock.LOCK_NAME]
    with pytest.raises(workdir_lock.WorkdirInUse):
      with workdir_lock.WorkdirLock(tmp_path):
        pass


def test_a_holder_whose_lock_was_taken_stops_renewing_it(tmp_path):
  with workdir_lock.WorkdirLock(tmp_path, lease_seconds=0.3):
    holder = _write_holder(tmp_path, token='the-run-that-took-over')
    time.sleep(0.5)  # Past a renewal: ours sees another token and leaves the file alone.
    assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text()) == holder
  assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text()) == holder  # Not freed.


def test_the_holder_renews_its_lease(tmp_path):
  with workdir_lock.WorkdirLock(tmp_path, lease_seconds=0.3):
    first = json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())
    time.sleep(0.5)
    later = json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())
  assert later['renewed'] > first['renewed'] and later['since'] == first['since']
  assert later['token'] == first['token']
