# Round 12's survivors against the new tests.
from mutants12 import M as M12
NEW = {'io_not_atomic': 'tests/test_workdir_io.py', 'idx_label_range': 'tests/test_datasets.py',
       'idx_count_mismatch': 'tests/test_datasets.py', 'idx_size_check': 'tests/test_datasets.py',
       'cache_key_no_mtime': 'tests/test_user_data.py', 'cache_shared_tag': 'tests/test_user_data.py'}
M = [(n, f, old, new, NEW[n]) for n, f, old, new, _ in M12 if n in NEW]
