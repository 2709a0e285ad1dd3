"""Pseudo-Label (Lee 2013): CE + weight * cross-entropy of unlabeled rows to their own argmax.

The weight (config.pseudo_label_schedule, one of WEIGHT_SCHEDULES): 'recipe', w1(t), the data
set's consistency weight and ramp-up, as every configured row and recorded run uses; or
'lee2013', Lee's alpha(t) (0 until epoch 100, then linear to 3 at epoch 600,
losses.lee2013_weight), the original paper's setting, which the ALC paper says it followed
(docs/results.md, Table 2, says what that changes: over 8 epochs alpha is 0 throughout)."""

from alc_jax import losses
from alc_jax.methods import base

WEIGHT_SCHEDULES = ('recipe', 'lee2013')  # config.pseudo_label_schedule.


class PseudoLabel(base.Method):
  name = 'pseudo_label'
  label = 'Pseudo-Label'
  OWN_SETTINGS = ('pseudo_label_threshold', 'pseudo_label_schedule')
  SETTINGS = OWN_SETTINGS + base.ConsistencyMethod.SETTINGS  # w1(t) under the 'recipe' schedule.

  def settings(self, config):
    if config.pseudo_label_schedule == 'lee2013':  # Lee's alpha(t) instead of w1(t).
      return self.OWN_SETTINGS
    return self.SETTINGS

  def loss(self, step, student, targets, weights=base.SampleWeights()):
    sup = base.supervised_cross_entropy(step, student, weights)
    # Above config.pseudo_label_threshold only (0 = Lee's argmax, 0.95 = Oliver et al.'s).
    pseudo = losses.pseudo_label_loss(student.logits, step.config.pseudo_label_threshold,
                                      mask=~step.labeled)
    weight = (losses.lee2013_weight(step.epoch) if step.config.pseudo_label_schedule == 'lee2013'
              else step.w1)
    return sup + weight * pseudo, {'losses/supervised': sup, 'losses/pseudo_label': pseudo,
                                   'weights/consistency': weight}
