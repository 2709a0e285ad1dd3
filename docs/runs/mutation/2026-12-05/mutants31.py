# Round 31: round 30's survivors against the tests written for them.
from mutants30 import M as M30
SURVIVORS = {
    'sweep_parallel_plus_one', 'sweep_ok_without_results', 'sweep_log_overwritten',
    'sweep_interrupt_no_terminate', 'sweep_bad_seed_accepted', 'sweep_bad_parallel_accepted',
    'sweep_cwd_dropped', 'cpu_knows_any_needle', 'cpu_any_platform_list', 'cpu_plugins_ignored',
    'cpu_cores_not_affinity', 'cpu_ynn_count_any_fusion', 'tool_extra_args_accepted',
    'tool_workdir_optional', 'tool_no_cpu_setup', 'main_extra_args_accepted',
    'main_verbosity_forced', 'main_multihost_ignored'}
TESTS = {'sweep': 'tests/test_launch.py', 'cpu': 'tests/test_cpu_setup.py',
         'tool': 'tests/test_errors.py tests/test_inference.py', 'main': 'tests/test_errors.py'}
M = [(n, f, old, new, TESTS[n.split('_')[0]]) for n, f, old, new, _ in M30 if n in SURVIVORS]
assert len(M) == len(SURVIVORS)
