# Round 27's survivor, and round 12's non-atomic workdir write, against the new tests and the
# temporary-file clean-up added to predict.write_csv and workdir_io.write_bytes.
from mutants12 import M as M12
from mutants27 import M as M27
M = ([(n, f, old, new, 'tests/test_inference.py') for n, f, old, new, _ in M27
      if n == 'pr_csv_not_atomic'] +
     [(n, f, old, new, 'tests/test_workdir_io.py') for n, f, old, new, _ in M12
      if n == 'io_not_atomic'])
