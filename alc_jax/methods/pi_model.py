"""The Π-model (Laine & Aila 2017), Eq. 1: the student's second stochastic pass is the target."""

import jax

from alc_jax.methods import base


class PiModel(base.ConsistencyMethod):
  name = 'pi_model'
  label = 'Π model'

  def targets(self, step, student):
    del student
    # z of Eq. 1: the same network under other noise (augmentation, dropout), detached.
    (logits, _, _), _ = step.forward(step.params, step.state.batch_stats, step.view('augment2'),
                                     step.keys['dropout2'])
    return base.Targets(logits=jax.lax.stop_gradient(logits))
