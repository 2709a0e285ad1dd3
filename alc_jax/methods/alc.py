"""ALC on top of any method: Eq. 13's pairwise term (w2 of Eq. 6), and the label-imbalance weights
of Eq. 14 (hard) and Eq. 15 (soft) on the method's supervised and consistency terms.

  total = method's total (with the weights of Eq. 14/15)
        + w2(t) * l_alc                 (Eq. 13)
        + graph_weight * l_graph        (decoupled graph only: trains the attention head)

The switches are documented in configs/default.py (config.alc).
"""

import functools

import jax
import jax.numpy as jnp

from alc_jax import losses
from alc_jax.methods import base

IMBALANCE_WEIGHTINGS = ('none', 'hard', 'soft')  # config.alc.imbalance: Eq. 6, Eq. 14, Eq. 15.
OUTPUTS = ('logits', 'probs')  # config.alc.outputs: which p_i Eq. 13 compares.


def all_settings(config):
  """Every field of config.alc that some reading of ALC reads (all but `enabled`)."""
  return tuple(f'alc.{key}' for key in config.alc if key != 'enabled')


# The fields of config.alc that only some readings of ALC read, with the values of the switches
# that read them. The attention head (Eq. 7-12) exists for alc.similarity='attention' only; the
# graph loss trains it under the decoupled reading; Eq. 13 itself trains S under 'eq13'.
_ATTENTION = (('similarity', 'attention'),)
_COSINE = _ATTENTION + (('attention_logits', 'cosine'),)
_EQ13 = (('head_training', 'eq13'),)
_GRAPH = (('head_training', 'decoupled'),) + _ATTENTION
_READ_WHEN = {
    'pooling': _ATTENTION, 'channel_attention': _ATTENTION, 'mlp_dim': _ATTENTION,
    'attention_logits': _ATTENTION,
    'se_reduction': _ATTENTION + (('channel_attention', True),),
    'gmp_lambda': _ATTENTION + (('pooling', 'gmp_avg'),),
    'temperature': _COSINE, 'learned_temperature': _COSINE,
    'temperature_floor': _COSINE + (('learned_temperature', True),),
    'gaussian_temperature': (('similarity', 'gaussian'),),
    'stop_gradient_similarity': _EQ13, 'entropy_weight': _EQ13,
    'graph_threshold': _GRAPH, 'graph_weight': _GRAPH,
}


def settings(config):
  """The fields of config.alc that this reading of ALC reads (the others are switches of other
  readings: `read_only_with`), and the ramp-up of w2 (Eq. 6)."""
  return tuple(f'alc.{key}' for key in config.alc if key != 'enabled' and all(
      config.alc[switch] == value for switch, value in _READ_WHEN.get(key, ()))) + (
          'consistency_rampup_epochs',)


def read_only_with(field):
  """The condition, in words, under which `field` ('alc.KEY') is read; None if always."""
  switches = _READ_WHEN.get(field[len('alc.'):]) if field.startswith('alc.') else None
  return ' and '.join(f'alc.{switch}={value!r}' for switch, value in switches) if switches else None


class WithALC(base.Method):
  """`method` + ALC. Its passes and teacher are the method's own; its settings are the
  method's and ALC's."""
  needs_similarity = True

  def __init__(self, method: base.Method):
    self.method = method
    self.name, self.label = method.name, f'{method.label} + ALC'
    self.uses_teacher, self.labeled_only = method.uses_teacher, method.labeled_only
    self.has_targets, self.ema_model = method.has_targets, method.ema_model

  def settings(self, config):
    return tuple(dict.fromkeys(self.method.settings(config) + settings(config)))

  def has_teacher(self, config):
    return self.method.has_teacher(config)

  def reported_model(self, config):
    return self.method.reported_model(config)

  def ema_decay(self, config):
    return self.method.ema_decay(config)

  def view_keys(self, config):
    return self.method.view_keys(config)

  def student_view(self, step):
    return self.method.student_view(step)

  def targets(self, step, student):
    return self.method.targets(step, student)

  def loss(self, step, student, targets, weights=base.SampleWeights()):
    del weights  # ALC sets them (Eq. 14 / 15).
    total, metrics = self.method.loss(step, student, targets,
                                      imbalance_weights(step, targets.logits))
    alc, graph = alc_terms(step.config.alc, student, targets.logits, step.labels, step.labeled)
    w2 = step.config.alc.weight * step.ramp
    if graph is None:
      total += w2 * alc
    else:
      total += w2 * alc + step.config.alc.graph_weight * graph
      metrics['losses/alc_graph'] = graph
    metrics['losses/alc'] = alc
    metrics['weights/alc'] = w2
    return total, metrics


def imbalance_weights(step, target_logits):
  """Eq. 14 (hard) / Eq. 15 (soft): 1 - r_c, r = the class shares of the labeled set, for the
  supervised term (true classes) and the consistency term (the target's classes; soft: the
  target's probabilities on unlabeled rows)."""
  imbalance, prior = step.config.alc.imbalance, step.state.prior
  if imbalance == 'none':
    return base.SampleWeights()
  supervised = losses.imbalance_weight(jnp.clip(step.labels, 0), prior)
  if target_logits is None:
    return base.SampleWeights(supervised=supervised)
  hard = losses.imbalance_weight(jnp.argmax(target_logits, -1), prior)
  consistency = hard if imbalance == 'hard' else jnp.where(
      step.labeled, hard, losses.soft_imbalance_weight(target_logits, prior))
  return base.SampleWeights(supervised=supervised, consistency=consistency)


def alc_terms(alc, student, target_logits, labels, labeled):
  """(l_alc of Eq. 13, the head's graph loss or None) averaged over the groups of the batch (one
  per device for alc.scope='per_device'), each with its own S."""
  similarity, logits = student.similarity, student.logits
  groups = similarity.shape[0]
  grouped = lambda a: a.reshape(groups, -1, *a.shape[1:])
  to_outputs = (lambda z: z) if alc.outputs == 'logits' else jax.nn.softmax
  outputs = to_outputs(logits)
  if alc.head_training == 'eq13':  # The paper: Eq. 13 trains both the network and the head.
    s = jax.lax.stop_gradient(similarity) if alc.stop_gradient_similarity else similarity
    consistency = functools.partial(losses.label_consistency, pairwise_scale=alc.pairwise_scale,
                                    entropy_weight=alc.entropy_weight)
    return jnp.mean(jax.vmap(consistency)(s, grouped(outputs))), None
  # 'decoupled': Eq. 13 with fixed S and neighbour targets; the head learns a class graph.
  reference = logits if target_logits is None else target_logits
  targets = to_outputs(jax.lax.stop_gradient(reference))
  if alc.outputs == 'probs':  # A labeled neighbour's target is its label.
    onehot = jax.nn.one_hot(jnp.clip(labels, 0), logits.shape[-1])
    targets = jnp.where(labeled[:, None], onehot, targets)
  consistency = functools.partial(losses.decoupled_label_consistency,
                                  pairwise_scale=alc.pairwise_scale)
  alc_loss = jnp.mean(jax.vmap(consistency)(similarity, grouped(outputs), grouped(targets)))
  if alc.similarity != 'attention':  # No head to train: S has no parameters.
    return alc_loss, None
  graph = functools.partial(losses.class_graph, threshold=alc.graph_threshold,
                            include_self=alc.include_self)
  target_graph = jax.vmap(graph)(grouped(labels), grouped(labeled), grouped(reference))
  return alc_loss, jnp.mean(jax.vmap(losses.graph_loss)(similarity, target_graph))
