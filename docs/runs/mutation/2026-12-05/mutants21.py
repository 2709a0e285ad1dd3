# Round 20's survivors against tests/test_workdir_lock.py's new cases.
from mutants20 import M as M20
M = [m for m in M20 if m[0] in ('wl_zombie_alive', 'wl_no_excl', 'wl_renew_ignores_token')]
