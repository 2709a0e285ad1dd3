"""SNTG (Luo et al. 2018): a consistency method (config.sntg.base) plus a contrastive term on the
embeddings of pairs that the target predicts in the same or different classes."""

import jax.numpy as jnp

from alc_jax import losses
from alc_jax.methods import base, mean_teacher, pi_model

# The consistency methods SNTG runs on (config.sntg.base).
BASES = {'pi_model': pi_model.PiModel(), 'mean_teacher': mean_teacher.MeanTeacher()}


class SNTG(base.Method):
  name = 'sntg'
  label = 'SNTG'
  has_targets = True  # Its base's (Π or Mean Teacher).
  OWN_SETTINGS = ('sntg.base', 'sntg.weight', 'sntg.margin', 'sntg.distance')
  SETTINGS = OWN_SETTINGS + tuple(dict.fromkeys(
      field for base_method in BASES.values() for field in base_method.SETTINGS))

  def settings(self, config):
    return self.OWN_SETTINGS + self._base(config).settings(config)

  def _base(self, config):
    return BASES[config.sntg.base]

  def has_teacher(self, config):
    return self._base(config).has_teacher(config)

  def reported_model(self, config):
    return self._base(config).reported_model(config)

  def ema_decay(self, config):
    return self._base(config).ema_decay(config)

  def view_keys(self, config):
    return self._base(config).view_keys(config)

  def student_view(self, step):
    return self._base(step.config).student_view(step)

  def targets(self, step, student):
    return self._base(step.config).targets(step, student)

  def loss(self, step, student, targets, weights=base.SampleWeights()):
    total, metrics = self._base(step.config).loss(step, student, targets, weights)
    embeddings = jnp.mean(student.features.astype(jnp.float32), axis=(1, 2))
    labels = jnp.where(step.labeled, step.labels, -1)  # Labeled rows' targets: their labels.
    sntg = losses.sntg_loss(embeddings, targets.logits, step.config.sntg.margin, labels,
                            step.config.sntg.distance)
    metrics['losses/sntg'] = sntg
    return total + step.w1 * step.config.sntg.weight * sntg, metrics
