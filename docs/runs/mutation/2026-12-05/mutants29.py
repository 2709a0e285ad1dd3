# After write_csv moved onto workdir_io.write_bytes: the non-atomic workdir write against both
# writers' tests.
from mutants12 import M as M12
M = [(n, f, old, new, 'tests/test_workdir_io.py tests/test_inference.py') for n, f, old, new, _
     in M12 if n == 'io_not_atomic']
