# Round 14's survivors against tests/test_launch.py's new cases (and the whole file).
from mutants14 import M as M14
SURVIVORS = ('ag_pair_seed_only', 'ag_mean_curve_union', 'ag_mean_curve_steps',
             'ag_checkpoints_walked')
M = [(n, f, old, new, 'tests/test_launch.py') for n, f, old, new, _ in M14 if n in SURVIVORS]
