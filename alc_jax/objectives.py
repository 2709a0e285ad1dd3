"""One training objective per method, assembled from the pure losses (Eq. 1, 3, 6, 13-15).

`compute_loss` is the body of the train step's loss: it augments the batch on device, runs the
student (and the teacher or second pass), and adds up the terms the config asks for:

  total = CE (weighted by 1 - r_c for imbalance, Eq. 14/15)
        + w1(t) * consistency       (Pi-model Eq. 1, Mean Teacher Eq. 3, weighted for Eq. 14/15)
        + w1(t) * pseudo-label / SNTG terms, or the VAT (+EntMin) terms
        + w2(t) * l_alc             (Eq. 13, when config.alc.enabled)
        + graph_weight * l_graph    (decoupled graph only: trains the attention head)
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from alc_jax import attention, ema, losses
from alc_jax.data import augment
from alc_jax.data.normalization import Normalization

METHODS = ('supervised', 'pseudo_label', 'pi_model', 'mean_teacher', 'sntg', 'vat', 'vat_entmin')


def base_method(config) -> str:
  """The consistency method underneath: SNTG runs on its base, the others are their own."""
  return config.sntg.base if config.method == 'sntg' else config.method


def _vat_loss(forward, x, logits, rng, xi, epsilon):
  """LDS of Miyato et al.: KL(p(x) || p(x + r_adv)), r_adv from one power iteration."""

  def normalize(d):
    return d / (jnp.sqrt(jnp.sum(d * d, axis=(1, 2, 3), keepdims=True)) + 1e-12)

  def kl_at(r):
    return losses.kl_divergence(logits, forward(x + r))

  d = normalize(jax.random.normal(rng, x.shape, x.dtype))
  grad = jax.grad(kl_at)(xi * d)
  return kl_at(epsilon * normalize(jax.lax.stop_gradient(grad)))


def compute_loss(params, state, batch, rng, *, model: nn.Module, config,
                 normalization: Normalization, rampup_steps: float):
  """The loss of one run on one global batch.

  Args:
    params: student parameters (differentiated).
    state: the run's `train.TrainState` (batch statistics, teacher, class prior, step).
    batch: dict with `image` uint8 (B, H, W, C), `label` int32 (B,) (-1 where unlabeled) and
      `labeled` bool (B,).
    rng: this step's key.
    model: the `models.Classifier`.
    config: the experiment config.
    normalization: the data's `Normalization` (uint8 images to network inputs).
    rampup_steps: length of the sigmoid ramp-up of w1 and w2, in steps.

  Returns:
    (total loss, (metrics dict, new student batch_stats, new teacher batch_stats)); without a
    teacher pass (every method but Mean Teacher) the teacher's statistics follow the student's.
  """
  method, base = config.method, base_method(config)
  x = normalization(batch['image'])
  labels, labeled = batch['label'], batch['labeled']
  k_aug, k_aug2, k_drop, k_drop2, k_vat = jax.random.split(rng, 5)

  def augmented(key):  # Two independent draws per example for the two branches.
    return augment.augment(key, x, config.augment.translate, config.augment.flip,
                           config.augment.noise_std)

  def forward(p, batch_stats, inputs, dropout_key, with_similarity=False):
    # 'intermediates' collects the head's sown diagnostics (the attention-logit spread).
    return model.apply({'params': p, 'batch_stats': batch_stats}, inputs, train=True,
                       with_similarity=with_similarity, rngs={'dropout': dropout_key},
                       mutable=['batch_stats', 'intermediates'] if with_similarity
                       else ['batch_stats'])

  use_alc = config.alc.enabled
  x_student = augmented(k_aug)
  (logits, features, similarity), updates = forward(params, state.batch_stats, x_student, k_drop,
                                                     with_similarity=use_alc)
  new_batch_stats = updates['batch_stats']
  # Without a teacher pass, the teacher's BatchNorm statistics follow the student's (its
  # evaluation then uses statistics of the data it sees, not those of step 0).
  new_teacher_stats = new_batch_stats
  ramp = losses.sigmoid_rampup(state.step, rampup_steps)
  w1 = config.consistency_weight * ramp

  teacher_logits = None
  if base == 'pi_model':  # Eq. 1: a second stochastic pass of the student is the target z.
    (teacher_logits, _, _), _ = forward(params, state.batch_stats, augmented(k_aug2), k_drop2)
  elif base == 'mean_teacher':  # Eq. 3: the EMA teacher (Eq. 2) under its own noise eta'.
    (teacher_logits, _, _), t_updates = forward(
        ema.teacher_params(state.opt_state), state.teacher_batch_stats, augmented(k_aug2),
        k_drop2)
    new_teacher_stats = t_updates['batch_stats']
  if teacher_logits is not None:
    teacher_logits = jax.lax.stop_gradient(teacher_logits)

  # Label-imbalance weights (Eq. 14 hard, Eq. 15 soft); r = class share of the labeled set.
  imbalance = config.alc.imbalance if use_alc else 'none'
  sup_weights = cons_weights = None
  if imbalance != 'none':
    sup_weights = losses.imbalance_weight(jnp.clip(labels, 0), state.prior)
    if teacher_logits is not None:
      hard = losses.imbalance_weight(jnp.argmax(teacher_logits, -1), state.prior)
      cons_weights = hard if imbalance == 'hard' else jnp.where(
          labeled, hard, losses.soft_imbalance_weight(teacher_logits, state.prior))

  terms = {'supervised': losses.cross_entropy(logits, labels, sup_weights, labeled,
                                              config.supervised_normalization)}
  total = terms['supervised']
  if teacher_logits is not None:
    terms['consistency'] = losses.softmax_mse(logits, teacher_logits, cons_weights)
    total += w1 * terms['consistency']
  if method == 'pseudo_label':
    terms['pseudo_label'] = losses.pseudo_label_loss(
        logits, config.pseudo_label_threshold, mask=~labeled)
    total += w1 * terms['pseudo_label']
  elif method == 'sntg':
    embeddings = jnp.mean(features.astype(jnp.float32), axis=(1, 2))
    terms['sntg'] = losses.sntg_loss(embeddings, teacher_logits, config.sntg.margin)
    total += w1 * config.sntg.weight * terms['sntg']
  elif method in ('vat', 'vat_entmin'):
    vat_forward = lambda inputs: forward(params, state.batch_stats, inputs, k_drop)[0][0]
    terms['vat'] = _vat_loss(vat_forward, x_student, jax.lax.stop_gradient(logits), k_vat,
                             config.vat.xi, config.vat.epsilon)
    total += config.vat.weight * ramp * terms['vat']
    if method == 'vat_entmin':
      terms['entropy'] = losses.entropy(logits)
      total += config.vat.entmin_weight * terms['entropy']

  metrics = {}
  if use_alc:
    alc_terms, alc_metrics = _alc_terms(config.alc, similarity, logits, teacher_logits, batch,
                                        updates.get('intermediates', {}))
    w2 = config.alc.weight * ramp
    total += w2 * alc_terms['alc'] + config.alc.graph_weight * alc_terms.get('alc_graph', 0.0)
    terms.update(alc_terms)
    metrics.update(alc_metrics)
    metrics['weights/alc'] = w2

  terms['total'] = total
  metrics.update({f'losses/{k}': v for k, v in terms.items()})
  metrics['weights/consistency'] = w1
  correct = (jnp.argmax(logits, -1) == labels) & labeled
  metrics['train/accuracy'] = jnp.sum(correct) / jnp.maximum(jnp.sum(labeled), 1)
  return total, (metrics, new_batch_stats, new_teacher_stats)


def _alc_terms(alc, similarity, logits, teacher_logits, batch, intermediates):
  """l_alc of Eq. 13 (and, for the decoupled graph, the head's own loss) plus the monitors.

  Each group of the batch (one per device for alc.scope='per_device') has its own S; the terms
  are averaged over groups. The switches are documented in configs/default.py.
  """
  labels, labeled = batch['label'], batch['labeled']
  groups = similarity.shape[0]
  grouped = lambda a: a.reshape(groups, -1, *a.shape[1:])
  to_outputs = (lambda z: z) if alc.outputs == 'logits' else jax.nn.softmax
  outputs = to_outputs(logits)
  terms = {}
  if alc.graph == 'attention':  # The paper: Eq. 13 trains both the network and the head.
    s = jax.lax.stop_gradient(similarity) if alc.stop_gradient_similarity else similarity
    consistency = functools.partial(losses.label_consistency, normalization=alc.normalization,
                                    entropy_weight=alc.entropy_weight)
    terms['alc'] = jnp.mean(jax.vmap(consistency)(s, grouped(outputs)))
  else:  # 'decoupled': Eq. 13 with fixed S and neighbour targets; the head learns a class graph.
    reference = logits if teacher_logits is None else teacher_logits
    targets = to_outputs(jax.lax.stop_gradient(reference))
    if alc.outputs == 'probs':  # A labeled neighbour's target is its label.
      onehot = jax.nn.one_hot(jnp.clip(labels, 0), logits.shape[-1])
      targets = jnp.where(labeled[:, None], onehot, targets)
    consistency = functools.partial(losses.decoupled_label_consistency,
                                    normalization=alc.normalization)
    terms['alc'] = jnp.mean(jax.vmap(consistency)(similarity, grouped(outputs), grouped(targets)))
    graph = functools.partial(losses.class_graph, threshold=alc.graph_threshold,
                              include_self=alc.include_self)
    target_graph = jax.vmap(graph)(grouped(labels), grouped(labeled), grouped(reference))
    terms['alc_graph'] = jnp.mean(jax.vmap(losses.graph_loss)(similarity, target_graph))
  true_labels = batch.get('diagnostic_label')  # Diagnostics only: never in a loss.
  diagnostics = jax.vmap(attention.similarity_diagnostics)(
      similarity, grouped(labels), grouped(labeled),
      None if true_labels is None else grouped(true_labels))
  metrics = {f'monitors/{k}': jnp.mean(v) for k, v in diagnostics.items()}
  spread = jax.tree.leaves(intermediates)
  if spread:
    metrics['monitors/attention_logit_spread'] = jnp.mean(spread[0])
  return terms, metrics
