"""Mean Teacher (Tarvainen & Valpola 2017), Eq. 2-3: the EMA teacher's output is the target.

The teacher (parameters averaged by Eq. 2, and its own BatchNorm statistics) lives in the
optimizer state (alc_jax/ema.py); its pass here, under its own noise eta', updates its statistics.
"""

import jax

from alc_jax.methods import base


class MeanTeacher(base.ConsistencyMethod):
  name = 'mean_teacher'
  label = 'MeanTeacher'
  uses_teacher = True
  SETTINGS = base.ConsistencyMethod.SETTINGS + ('ema_decay',)  # alpha of Eq. 2.

  def reported_model(self, config):
    del config
    return 'teacher'  # As the Mean Teacher paper (and ours) report it.

  def targets(self, step, student):
    del student
    teacher = step.teacher()
    (logits, _, _), updates = step.forward(teacher.params, teacher.batch_stats,
                                           step.view('augment2'), step.keys['dropout2'])
    return base.Targets(logits=jax.lax.stop_gradient(logits),
                        teacher_batch_stats=updates['batch_stats'])
