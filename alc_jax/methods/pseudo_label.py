"""Pseudo-Label (Lee 2013): CE + w1 * cross-entropy of unlabeled rows to their own argmax.

w1(t) is the recipe's consistency weight and ramp-up, not Lee's alpha(t) (0 until epoch 100, then
linear to 3 at epoch 600): docs/results.md, Table 2, says what that changes."""

from alc_jax import losses
from alc_jax.methods import base


class PseudoLabel(base.Method):
  name = 'pseudo_label'
  label = 'Pseudo-Label'

  def loss(self, step, student, targets, weights=base.SampleWeights()):
    sup = base.supervised_cross_entropy(step, student, weights)
    # Above config.pseudo_label_threshold only (0 = Lee's argmax, 0.95 = Oliver et al.'s).
    pseudo = losses.pseudo_label_loss(student.logits, step.config.pseudo_label_threshold,
                                      mask=~step.labeled)
    return sup + step.w1 * pseudo, {'losses/supervised': sup, 'losses/pseudo_label': pseudo,
                                    'weights/consistency': step.w1}
