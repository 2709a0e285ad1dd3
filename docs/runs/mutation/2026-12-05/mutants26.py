# Round 25's survivors against tests/test_datasets.py's new cases.
from mutants25 import M as M25
M = [(n, f, old, new, 'tests/test_datasets.py') for n, f, old, new, _ in M25
     if n in ('uf_mode_rgba', 'uf_empty_class', 'uf_hidden_files')]
