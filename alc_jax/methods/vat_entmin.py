"""VAT + EntMin (Miyato et al. 2018): VAT plus the entropy of the student's predictions."""

from alc_jax import losses
from alc_jax.methods import vat


class VATEntMin(vat.VAT):
  name = 'vat_entmin'
  label = 'VAT + EntMin'
  SETTINGS = vat.VAT.SETTINGS + ('vat.entmin_weight',)

  def loss(self, step, student, targets, weights=vat.base.SampleWeights()):
    total, metrics = super().loss(step, student, targets, weights)
    entropy = losses.entropy(student.logits)
    metrics['losses/entropy'] = entropy
    return total + step.config.vat.entmin_weight * entropy, metrics
