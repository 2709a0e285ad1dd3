"""VAT (Miyato et al. 2018): CE + the local distributional smoothness under an adversarial
perturbation of radius config.vat.epsilon, found by one power iteration."""

import jax
import jax.numpy as jnp

from alc_jax import losses
from alc_jax.methods import base


# config.vat.power_iteration: how H d (H: the Hessian of the KL at r = 0) is computed.
# 'finite_difference': grad KL(xi d) / xi, Miyato et al.'s (their code's xi = 1e-6);
# 'exact': the Hessian-vector product itself (jax.jvp of jax.grad at r = 0), no xi.
POWER_ITERATIONS = ('finite_difference', 'exact')


def _normalize(d):
  return d / (jnp.sqrt(jnp.sum(d * d, axis=(1, 2, 3), keepdims=True)) + 1e-12)


def adversarial_direction(forward, x, logits, rng, xi, power_iteration='finite_difference'):
  """r_adv / epsilon of Miyato et al.: H d normalised per example, d random, by one power
  iteration (H: the Hessian of KL(p(x) || p(x + r)) at r = 0, where its gradient is 0)."""
  kl_at = lambda r: losses.kl_divergence(logits, forward(x + r))
  d = _normalize(jax.random.normal(rng, x.shape, x.dtype))
  if power_iteration == 'exact':
    hd = jax.jvp(jax.grad(kl_at), (jnp.zeros_like(x),), (d,))[1]
  else:
    hd = jax.grad(kl_at)(xi * d)  # ~ xi H d: only the direction matters.
  return _normalize(jax.lax.stop_gradient(hd))


def vat_loss(forward, x, logits, rng, xi, epsilon, power_iteration='finite_difference'):
  """LDS of Miyato et al.: KL(p(x) || p(x + r_adv)), r_adv from one power iteration."""
  direction = adversarial_direction(forward, x, logits, rng, xi, power_iteration)
  return losses.kl_divergence(logits, forward(x + epsilon * direction))


class VAT(base.Method):
  name = 'vat'
  label = 'VAT'
  # The LDS weight is ramped up like w1 (config.consistency_rampup_epochs).
  SETTINGS = ('vat.weight', 'vat.epsilon', 'vat.xi', 'vat.power_iteration',
              'consistency_rampup_epochs')

  def settings(self, config):
    if config.vat.power_iteration == 'exact':  # No finite difference: xi is not read.
      return tuple(field for field in self.SETTINGS if field != 'vat.xi')
    return self.SETTINGS

  def loss(self, step, student, targets, weights=base.SampleWeights()):
    sup = base.supervised_cross_entropy(step, student, weights)
    # The perturbed passes use the student's first view, dropout key and batch statistics.
    forward = lambda inputs: step.forward(step.params, step.state.batch_stats, inputs,
                                          step.keys['dropout'])[0][0]
    vat_config = step.config.vat
    xi = vat_config.xi if vat_config.power_iteration == 'finite_difference' else None  # Unused.
    vat = vat_loss(forward, student.inputs, jax.lax.stop_gradient(student.logits),
                   step.keys['vat'], xi, vat_config.epsilon, vat_config.power_iteration)
    weight = vat_config.weight * step.ramp
    return sup + weight * vat, {'losses/supervised': sup, 'losses/vat': vat, 'weights/vat': weight}
