"""VAT (Miyato et al. 2018): CE + the local distributional smoothness under an adversarial
perturbation of radius config.vat.epsilon, found by one power iteration."""

import jax
import jax.numpy as jnp

from alc_jax import losses
from alc_jax.methods import base


def vat_loss(forward, x, logits, rng, xi, epsilon):
  """LDS of Miyato et al.: KL(p(x) || p(x + r_adv)), r_adv from one power iteration."""

  def normalize(d):
    return d / (jnp.sqrt(jnp.sum(d * d, axis=(1, 2, 3), keepdims=True)) + 1e-12)

  def kl_at(r):
    return losses.kl_divergence(logits, forward(x + r))

  d = normalize(jax.random.normal(rng, x.shape, x.dtype))
  grad = jax.grad(kl_at)(xi * d)
  return kl_at(epsilon * normalize(jax.lax.stop_gradient(grad)))


class VAT(base.Method):
  name = 'vat'
  label = 'VAT'
  config_block = 'vat'

  def loss(self, step, student, targets, weights=base.SampleWeights()):
    sup = base.supervised_cross_entropy(step, student, weights)
    # The perturbed passes use the student's first view, dropout key and batch statistics.
    forward = lambda inputs: step.forward(step.params, step.state.batch_stats, inputs,
                                          step.keys['dropout'])[0][0]
    vat = vat_loss(forward, student.inputs, jax.lax.stop_gradient(student.logits),
                   step.keys['vat'], step.config.vat.xi, step.config.vat.epsilon)
    return (sup + step.config.vat.weight * step.ramp * vat,
            {'losses/supervised': sup, 'losses/vat': vat})
