# (name, file, old, new, test files): resumes that cannot quietly go wrong (issue 28).
T = 'tests/test_resume_safety.py tests/test_checkpointing.py tests/test_config_lib.py tests/test_reliability.py'
M = [
 ('sched_never_refused', 'alc_jax/config_lib.py', "if current.get('allow_schedule_change', False) or old is None or old == new:", "if True:", T),
 ('config_diff_ignored', 'alc_jax/config_lib.py', "if k not in ignored and saved.get(k) != current.get(k))", "if False)", T),
 ('mismatch_as_corrupt', 'alc_jax/checkpointing.py', "      raise CheckpointMismatch(\n", "      raise _Corrupt(\n", T),
 ('unavailable_as_corrupt', 'alc_jax/checkpointing.py', "      raise self._unavailable(path, error) from error", "      raise _Corrupt('storage') from error", T),
 ('corrupt_unverified', 'alc_jax/checkpointing.py', "      self._read_all_files(path)  # A storage error would not prove anything.", "      pass", T),
 ('remote_moved', 'alc_jax/checkpointing.py', "    if workdir_io.is_remote(self._directory):", "    if False:", T),
 ('oom_as_corrupt', 'alc_jax/checkpointing.py', "        return  # Host memory ran out: that proves nothing about the checkpoint.", "        raise _Corrupt('memory') from e", T),
 ('decode_oserror_as_corrupt', 'alc_jax/checkpointing.py', "      if any(isinstance(x, OSError) for x in _chain(e)):\n        raise self._unavailable(path, e) from e", "      if False:\n        raise self._unavailable(path, e) from e", T),
]
