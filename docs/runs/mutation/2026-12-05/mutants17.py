# Round 16's survivors against the new tests (test_train.py, test_train_end_to_end.py) and, for
# the checkpoint taken on a preemption, tests/test_reliability.py (its SIGTERM scenarios).
from mutants16 import M as M16
TT = 'tests/test_train.py tests/test_train_end_to_end.py'
NEW = {n: TT for n in ('tr_totals_not_reset', 'tr_ckpt_no_guard', 'tr_log_no_guard',
                       'tr_nesterov_off', 'tr_decay_after_sgd', 'tr_lr_next_step',
                       'tr_no_last_eval', 'tr_finished_no_eval', 'tr_grad_norm_params')}
NEW['tr_no_ckpt_on_stop'] = 'tests/test_reliability.py'
M = [(n, f, old, new, NEW[n]) for n, f, old, new, _ in M16 if n in NEW]
