# Round 18's survivors against the new tests.
from mutants18 import M as M18
NEW = {'rp_summary_ddof': 'tests/test_reporting.py', 'rp_epochs': 'tests/test_reporting.py',
       'lf_size_tiebreak': 'tests/test_user_data.py', 'lf_hidden_class': 'tests/test_user_data.py'}
M = [(n, f, old, new, NEW[n]) for n, f, old, new, _ in M18 if n in NEW]
