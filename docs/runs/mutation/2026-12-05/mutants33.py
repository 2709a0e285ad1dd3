# Round 33: round 32's umask survivor against the new case, and the multi-process agreement on a
# checkpoint (8199993) against test 7 and the unit cases.
from mutants32 import M as M32
REL = 'tests/test_reliability.py'
SAFE = 'tests/test_resume_safety.py tests/test_checkpointing.py'
M = [(n, f, old, new, t) for n, f, old, new, t in M32 if n == 'io_mode_ignores_umask'] + [
  ('ck_every_process_moves_it', 'alc_jax/checkpointing.py',
   '    if jax.process_index() == 0:  # Once, for', '    if True:  # Once, for', REL),
  ('ck_no_agreement', 'alc_jax/checkpointing.py', '  if jax.process_count() == 1:\n    return [outcome]',
   '  if True:\n    return [outcome]', REL),
  ('ck_no_barrier_after_the_move', 'alc_jax/checkpointing.py',
   "      multihost_utils.sync_global_devices(f'checkpoint {step} moved aside')\n", '      pass\n', REL),
  ('ck_peer_failure_ignored', 'alc_jax/checkpointing.py',
   "      if 'failed' in outcomes or len(set(outcomes)) > 1:", "      if len(set(outcomes) - {'failed'}) > 1:",
   SAFE),
  ('ck_disagreement_ignored', 'alc_jax/checkpointing.py',
   "      if 'failed' in outcomes or len(set(outcomes)) > 1:", "      if 'failed' in outcomes:", SAFE),
  ('ck_names_the_wrong_process', 'alc_jax/checkpointing.py',
   "      what = f'process {failed[0]} of this job", "      what = f'process {failed[0] - 1} of this job", SAFE),
]
