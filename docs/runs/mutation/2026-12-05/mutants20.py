# (name, file, old, new, test files): the workdir lock.
W = 'alc_jax/workdir_lock.py'
T = 'tests/test_workdir_lock.py'
M = [
 ('wl_zombie_alive', W, "  return None if fields[0] == 'Z' else int(fields[19])", "  return int(fields[19])", T),
 ('wl_reused_pid', W, "    return now is not None and (start_time is None or now == start_time)", "    return now is not None", T),
 ('wl_same_host_lease', W, "    return (self.remote or holder.get('host') != socket.gethostname()\n            or holder.get('processes', 1) > 1)", "    return (self.remote or holder.get('processes', 1) > 1)", T),
 ('wl_lease_never_expires', W, "    if time.time() > expires:\n", "    if False:\n", T),
 ('wl_unreadable_held', W, "    if not holder:\n      return 'its lock file is unreadable'\n", "    if not holder:\n      return None\n", T),
 ('wl_no_excl', W, "fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)", "fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)", T),
 ('wl_renew_ignores_token', W, "        if (self._read() or {}).get('token') != self.token:\n", "        if False:\n", T),
 ('wl_renew_new_since', W, "        self._write(self._record(since))\n", "        self._write(self._record())\n", T),
]
