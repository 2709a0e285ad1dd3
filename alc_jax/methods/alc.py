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


def settings(config):
  """The fields of config.alc that this reading of ALC reads (the head of Eq. 7-12, Eq. 13-15:
  the others are switches of other readings), and the ramp-up of w2 (Eq. 6)."""
  alc = config.alc
  read = ['weight', 'imbalance', 'similarity', 'include_self', 'outputs', 'pairwise_scale',
          'head_training', 'scope']
  if alc.similarity == 'attention':  # The head of Eq. 7-12; the others have none.
    read += ['pooling', 'channel_attention', 'mlp_dim', 'attention_logits']
    read += ['se_reduction'] if alc.channel_attention else []
    read += ['gmp_lambda'] if alc.pooling == 'gmp_avg' else []
    if alc.attention_logits == 'cosine':
      read += ['temperature', 'learned_temperature']
      read += ['temperature_floor'] if alc.learned_temperature else []
  elif alc.similarity == 'gaussian':
    read += ['gaussian_temperature']
  if alc.head_training == 'eq13':  # S trained (or detached) by Eq. 13 itself.
    read += ['stop_gradient_similarity', 'entropy_weight']
  elif alc.similarity == 'attention':  # The decoupled head's graph loss (none without a head).
    read += ['graph_threshold', 'graph_weight']
  return tuple(f'alc.{key}' for key in read) + ('consistency_rampup_epochs',)


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
  graph = functools.partial(losses.class_graph, threshold=alc.graph_threshold,
                            include_self=alc.include_self)
  target_graph = jax.vmap(graph)(grouped(labels), grouped(labeled), grouped(reference))
  return alc_loss, jnp.mean(jax.vmap(losses.graph_loss)(similarity, target_graph))
