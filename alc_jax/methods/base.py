"""What every method shares: the step's inputs (`Step`), the student's pass, and the `Method` base.

A method is an object with a name, what it needs (an EMA teacher, labeled rows only, the config
settings it reads) and its objective: `targets` runs the passes beyond the student's (the
teacher of Eq. 3, the second pass of Eq. 1) and `loss` adds up its terms. `loss_fn` (the body of
`train.train_step`'s gradient) is the same for all of them. ALC wraps any method (alc.py).

Nothing here can see the true labels of unlabeled images: the batch a loss gets has `label` = -1
on unlabeled rows, and the diagnostics that read the true labels run outside (train.py).
"""

import dataclasses
from typing import Any, Dict, NamedTuple, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from alc_jax import ema, losses
from alc_jax.data import augment


class Student(NamedTuple):
  """The student's pass on the first view (train mode)."""
  inputs: jax.Array  # The augmented view it saw (VAT perturbs it).
  logits: jax.Array  # (B, K), differentiable.
  features: jax.Array  # (B, H, W, C) backbone features (SNTG's embeddings, ALC's head input).
  similarity: Optional[jax.Array]  # (groups, B/groups, B/groups): ALC's S, when asked for.
  batch_stats: Any  # The student's updated BatchNorm statistics.
  intermediates: Any  # What the ALC head sowed (the attention-logit spread), or {}.


class Targets(NamedTuple):
  """What a method's passes beyond the student's produce."""
  logits: Optional[jax.Array] = None  # z of Eq. 1 / the teacher's output of Eq. 3 (detached).
  # The statistics the EMA model keeps after this step (Mean Teacher: its own pass's).
  teacher_batch_stats: Any = None
  # FixMatch: the student's logits on the strong view, differentiable (its loss trains on them).
  strong_logits: Optional[jax.Array] = None


class SampleWeights(NamedTuple):
  """Per-example weights of the supervised and consistency terms (ALC's Eq. 14 / 15); None = 1."""
  supervised: Optional[jax.Array] = None
  consistency: Optional[jax.Array] = None


@dataclasses.dataclass(frozen=True)
class Step:
  """One run's step as a method's loss sees it. Built by `loss_fn`; no true labels of unlabeled
  rows (`labels` is -1 there)."""
  params: Any  # Student parameters (differentiated).
  state: Any  # The run's train.TrainState (batch statistics, optimizer state with the teacher).
  images: jax.Array  # The batch's uint8 images (B, H, W, C), as the data set holds them.
  normalization: Any  # data.Normalization: uint8 images to network inputs.
  x: jax.Array  # Normalised images (B, H, W, C), before augmentation.
  labels: jax.Array  # int32 (B,), -1 where unlabeled.
  labeled: jax.Array  # bool (B,).
  keys: Dict[str, jax.Array]  # This step's random keys (see `step_keys`).
  model: nn.Module
  config: Any
  ramp: jax.Array  # The sigmoid ramp-up of w1 and w2, in [0, 1].
  # The augmented views the method draws (`Method.view_keys`), by key name, drawn together.
  views: Dict[str, jax.Array] = dataclasses.field(default_factory=dict)
  steps_per_epoch: int = 0  # Of the run's schedule (0: not given; `epoch` then refuses).

  @property
  def epoch(self):
    """The step's position in epochs (float), for weights scheduled in epochs."""
    if not self.steps_per_epoch:
      raise ValueError('this weight is scheduled in epochs: pass steps_per_epoch to loss_fn.')
    return self.state.step / self.steps_per_epoch

  @property
  def w1(self):
    """w1(t) of Eq. 6: the consistency weight after ramp-up."""
    return self.config.consistency_weight * self.ramp

  def view(self, key_name):
    """One augmented view of the batch (translation, flip, noise), drawn with the key
    `key_name`; views differ by key. loss_fn draws the method's `view_keys` up front."""
    if key_name not in self.views:
      raise KeyError(f"the augmented view {key_name!r} was not drawn: add it to the method's "
                     f'view_keys (drawn: {sorted(self.views)})')
    return self.views[key_name]

  def forward(self, params, batch_stats, inputs, dropout_key, with_similarity=False):
    """The classifier in train mode: ((logits, features, similarity), variable updates)."""
    # 'intermediates' collects the head's sown diagnostics (the attention-logit spread).
    return self.model.apply({'params': params, 'batch_stats': batch_stats}, inputs, train=True,
                            with_similarity=with_similarity, rngs={'dropout': dropout_key},
                            mutable=['batch_stats', 'intermediates'] if with_similarity
                            else ['batch_stats'])

  def teacher(self) -> ema.Teacher:
    """The EMA teacher (Eq. 2) held in the optimizer state."""
    return ema.get_teacher(self.state.opt_state)


# The order of the split is part of the results: a new key goes at the end.
KEY_NAMES = ('augment', 'augment2', 'dropout', 'dropout2', 'vat')


def step_keys(rng):
  return dict(zip(KEY_NAMES, jax.random.split(rng, len(KEY_NAMES))))


class Method:
  """A semi-supervised method. Subclasses set the attributes and override `targets` / `loss`."""
  name = ''  # config.method.
  label = ''  # Its name in tables and logs.
  uses_teacher = False  # An EMA teacher (Eq. 2) in the optimizer state, used by the loss.
  labeled_only = False  # Its batches hold labeled rows only (config.labeled_batch_size unused).
  needs_similarity = False  # The student's pass also computes ALC's S (alc.WithALC).
  # Its unsupervised term compares the student with a target prediction z on every image (Eq. 1
  # and 3's z; FixMatch's weak view): the term Eq. 14 weights by z's class and Eq. 15 by z's
  # probabilities. Without one, ALC's imbalance weights reach the supervised term only.
  has_targets = False
  # The name its EMA model (when `has_teacher`) is evaluated, reported and loaded under:
  # 'teacher' where the loss learns from it (Eq. 2-3), 'ema' where only evaluation uses it.
  ema_model = 'teacher'

  # The method-specific config fields it reads (config_lib refuses an override of another
  # method's field: it would be ignored). Beyond what every method reads (batch, augmentation,
  # supervised_normalization, ...); `settings` adds those that depend on the config.
  SETTINGS: Tuple[str, ...] = ()

  def settings(self, config) -> Tuple[str, ...]:
    """The method-specific config fields runs of `config` read (`SETTINGS` by default)."""
    del config
    return self.SETTINGS

  def has_teacher(self, config) -> bool:
    """Whether runs of `config` keep an EMA teacher (SNTG: as its base does)."""
    del config
    return self.uses_teacher

  def reported_model(self, config) -> str:
    """The model whose accuracy the method's papers report: 'student' or its `ema_model`."""
    del config
    return 'student'

  def ema_decay(self, config) -> float:
    """alpha of Eq. 2, the decay of the EMA teacher (when `has_teacher`)."""
    return config.ema_decay

  def view_keys(self, config) -> Tuple[str, ...]:
    """The keys of the augmented views (`Step.view`) its passes use: the student's by default."""
    del config
    return ('augment',)

  def student_view(self, step: Step) -> jax.Array:
    """The augmented view of the batch the student's pass sees."""
    return step.view('augment')

  def targets(self, step: Step, student: Student) -> Targets:
    """The passes beyond the student's; none by default."""
    del step, student
    return Targets()

  def loss(self, step: Step, student: Student, targets: Targets,
           weights: SampleWeights = SampleWeights()) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    """(total, metrics): the total loss and the metrics it logs, each unweighted term under
    'losses/<term>'. The supervised cross-entropy by default."""
    sup = supervised_cross_entropy(step, student, weights)
    return sup, {'losses/supervised': sup}


# The input noise of the views loss_fn draws (Mean Teacher's eta): read by the methods it draws
# views for, not by FixMatch, whose weak and strong views have none.
VIEW_SETTINGS = ('augment.noise_std',)


def fields_read(method, config):
  """The method-specific config fields runs of `config` read: the method's `settings`, and the
  views' noise where `loss_fn` draws views for it."""
  return method.settings(config) + (VIEW_SETTINGS if method.view_keys(config) else ())


def supervised_cross_entropy(step, student, weights):
  """The cross-entropy of the labeled rows (weighted by 1 - r_c under Eq. 14 / 15)."""
  return losses.cross_entropy(student.logits, step.labels, weights.supervised, step.labeled,
                              step.config.supervised_normalization)


class ConsistencyMethod(Method):
  """CE + w1 * ||f(x) - z||^2 on softmax outputs (Eq. 1 / Eq. 3), z from `targets`, a pass on
  the second view ('augment2': the same images under other noise)."""
  has_targets = True
  SETTINGS = ('consistency_weight', 'consistency_rampup_epochs')  # w1(t) of Eq. 1 / 3.

  def view_keys(self, config):
    del config
    return ('augment', 'augment2')

  def loss(self, step, student, targets, weights=SampleWeights()):
    sup = supervised_cross_entropy(step, student, weights)
    consistency = losses.softmax_mse(student.logits, targets.logits, weights.consistency)
    return sup + step.w1 * consistency, {'losses/supervised': sup,
                                         'losses/consistency': consistency,
                                         'weights/consistency': step.w1}


def loss_fn(params, state, batch, rng, *, method: Method, model, config, normalization,
            rampup_steps, steps_per_epoch=0):
  """The loss of one run on one global batch, for `jax.value_and_grad(..., has_aux=True)`.

  Args:
    params: student parameters (differentiated).
    state: the run's `train.TrainState`.
    batch: `image` uint8 (B, H, W, C), `label` int32 (B,) (-1 where unlabeled), `labeled` bool.
    rng: this step's key.
    method: the `Method` (with ALC: `alc.WithALC`).
    model: the `models.Classifier`.
    normalization: the data's `Normalization` (uint8 images to network inputs).
    rampup_steps: length of the sigmoid ramp-up of w1 and w2, in steps.
    steps_per_epoch: of the run, for weights scheduled in epochs (`Step.epoch`); 0 = not given.

  Returns:
    (total, aux): aux = dict(metrics, batch_stats (the student's new statistics),
    teacher_batch_stats (None without a teacher), similarity (ALC's S, detached, or None),
    intermediates).
  """
  if 'diagnostic_label' in batch:
    raise ValueError('the loss must not see diagnostic_label (true labels of unlabeled rows).')
  keys, x = step_keys(rng), normalization(batch['image'])
  view_keys = method.view_keys(config)
  views = []
  if view_keys:  # (FixMatch draws its own views: the noise setting is not read; fields_read.)
    aug = config.augment
    # One draw for all views: the same values as one augment() each, faster (augment_views).
    views = augment.augment_views([keys[k] for k in view_keys], x, aug.translate, aug.flip,
                                  aug.noise_std)
  step = Step(params=params, state=state, images=batch['image'], normalization=normalization,
              x=x, labels=batch['label'], labeled=batch['labeled'], keys=keys, model=model,
              config=config, ramp=losses.sigmoid_rampup(state.step, rampup_steps),
              views=dict(zip(view_keys, views)), steps_per_epoch=steps_per_epoch)
  with_similarity = method.needs_similarity
  inputs = method.student_view(step)
  (logits, features, similarity), updates = step.forward(
      params, state.batch_stats, inputs, step.keys['dropout'], with_similarity=with_similarity)
  student = Student(inputs, logits, features, similarity, updates['batch_stats'],
                    updates.get('intermediates', {}))
  targets = method.targets(step, student)
  total, metrics = method.loss(step, student, targets)
  metrics['losses/total'] = total
  correct = (jnp.argmax(logits, -1) == step.labels) & step.labeled
  metrics['train/accuracy'] = jnp.sum(correct) / jnp.maximum(jnp.sum(step.labeled), 1)
  return total, {'metrics': metrics, 'batch_stats': student.batch_stats,
                 'teacher_batch_stats': targets.teacher_batch_stats,
                 'similarity': None if similarity is None else jax.lax.stop_gradient(similarity),
                 'intermediates': student.intermediates}
