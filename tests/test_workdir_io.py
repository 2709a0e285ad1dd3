"""alc_jax/workdir_io.py: whole-file writes are atomic and round-trip."""

import os

import numpy as np
import pytest

from alc_jax import workdir_io


def test_json_and_npz_round_trip_without_leftovers(tmp_path):
  workdir_io.write_json(str(tmp_path / 'r.json'), {'x': np.arange(3), 'y': 1.5})
  assert workdir_io.read_json(str(tmp_path / 'r.json')) == {'x': [0, 1, 2], 'y': 1.5}
  assert workdir_io.read_json(str(tmp_path / 'missing.json'), default=[]) == []
  workdir_io.write_npz(str(tmp_path / 's.npz'), similarity=np.eye(3))
  np.testing.assert_array_equal(np.load(tmp_path / 's.npz')['similarity'], np.eye(3))
  assert sorted(p.name for p in tmp_path.iterdir()) == ['r.json', 's.npz']  # No .tmp left.


def test_remote_paths_are_recognised():
  assert workdir_io.is_remote('gs://bucket/run') and not workdir_io.is_remote('/tmp/run')


def test_a_write_that_fails_leaves_the_old_file_whole(tmp_path, monkeypatch):
  # The new bytes go to a temporary file that replaces the old one only once complete.
  path = str(tmp_path / 'results.json')
  workdir_io.write_json(path, {'step': 1})

  def crash(src, dst):
    raise OSError('crashed before the rename')

  monkeypatch.setattr(workdir_io.os, 'replace', crash)
  with pytest.raises(OSError, match='crashed'):
    workdir_io.write_json(path, {'step': 2})
  assert workdir_io.read_json(path) == {'step': 1}
  assert sorted(p.name for p in tmp_path.iterdir()) == ['results.json']  # No .tmp left.


def test_each_write_has_its_own_temporary_file_and_the_umask_mode(tmp_path, monkeypatch):
  # Unique temporary names: two processes writing one path (a shared decoded-image cache) never
  # write into one file. The mode is the umask's, as open() gives (not mkstemp's 0600).
  path = str(tmp_path / 'entry.npy')
  renamed, replace = [], os.replace
  monkeypatch.setattr(workdir_io.os, 'replace',
                      lambda src, dst: renamed.append(src) or replace(src, dst))
  for _ in range(2):
    workdir_io.write_atomically(path, lambda f: np.save(f, np.arange(3)))
  assert len(set(renamed)) == 2 and all(os.path.dirname(src) == str(tmp_path) for src in renamed)
  np.testing.assert_array_equal(np.load(path), np.arange(3))
  umask = os.umask(0o022)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
  old = os.umask(0o077)  # A private umask gives private files.
  try:
    assert workdir_io._file_mode() == 0o600  # pylint: disable=protected-access
  finally:
    os.umask(old)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['entry.npy']
