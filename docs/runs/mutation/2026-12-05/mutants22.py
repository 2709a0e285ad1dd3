# (name, file, old, new, test files): checkpoints (a second round; round 4 had the resume refusals).
C = 'alc_jax/checkpointing.py'
T = 'tests/test_resume_safety.py tests/test_checkpointing.py'
M = [
 ('ck_disk_full_text', C, "    if 'No space left on device' in str(e) or 'Disk quota exceeded' in str(e):\n", "    if 'No space left on device' in str(e):\n", T),
 ('ck_disk_full_errno', C, "    if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:\n", "    if False:\n", T),
 ('ck_chain_cause_only', C, "    error = error.__cause__ or error.__context__", "    error = error.__cause__", T),
 ('ck_diff_shape_ignored', C, "    if (s_shape is not None and t_shape is not None and s_shape != t_shape) or (", "    if False or (", T),
 ('ck_diff_dtype_ignored', C, "        s_dtype is not None and t_dtype is not None and s_dtype != t_dtype):", "        False):", T),
 ('ck_diff_extra_ignored', C, "  out = [f'{_path_name(k)} is in the checkpoint only' for k in sorted(set(saved) - set(target))]", "  out = []", T),
 ('ck_newest_last', C, "    for step in sorted(self._manager.all_steps(), reverse=True):", "    for step in sorted(self._manager.all_steps()):", T),
 ('ck_skip_keeps_old_unreadable', C, "    shutil.rmtree(f'{path}.unreadable', ignore_errors=True)\n", "", T),
 ('ck_skip_same_manager', C, "    # A fresh manager: orbax latches its item layout from the first step it reads.\n    self._manager = self._create()\n", "", T),
]
