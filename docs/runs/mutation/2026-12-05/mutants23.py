# Round 22's disk-full survivors against tests/test_errors.py, which tests is_disk_full.
from mutants22 import M as M22
M = [(n, f, old, new, 'tests/test_errors.py') for n, f, old, new, _ in M22
     if n in ('ck_disk_full_text', 'ck_disk_full_errno', 'ck_chain_cause_only')]
