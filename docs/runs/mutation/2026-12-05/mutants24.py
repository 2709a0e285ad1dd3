# Rounds 22-23's survivors against the new cases of tests/test_errors.py and test_checkpointing.py.
from mutants22 import M as M22
NEW = {'ck_disk_full_text': 'tests/test_errors.py', 'ck_chain_cause_only': 'tests/test_errors.py',
       'ck_skip_keeps_old_unreadable': 'tests/test_checkpointing.py',
       'ck_skip_same_manager': 'tests/test_checkpointing.py tests/test_resume_safety.py '
                               'tests/test_reliability.py'}
M = [(n, f, old, new, NEW[n]) for n, f, old, new, _ in M22 if n in NEW]
