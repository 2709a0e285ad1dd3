"""FixMatch (Sohn et al., NeurIPS 2020): pseudo-labels from a weak view train a strong view.

For every unlabeled image u, with a weak view alpha(u) (flip / translation) and a strong view
A(u) (RandAugment + Cutout, alc_jax/data/randaugment.py):

  l_u = 1/(mu B) sum_u 1[max q_u >= tau] H(argmax q_u, p(y | A(u))),   q_u = p(y | alpha(u)),

  total = H(labels, p(y | alpha(x))) on the labeled rows + lambda_u * l_u   (FixMatch, Eq. 2-4).

q_u is detached (the reference's stop_gradient). The mean is over all unlabeled rows, confident
or not, as in the reference (`reduce_mean(loss * mask)`); mu is the batch's unlabeled share
(batch 100 with 10 labeled: mu = 9). lambda_u is constant: FixMatch has no ramp-up, the threshold
is its curriculum. Evaluation uses an EMA of the weights (FixMatch reports its EMA model); the EMA
lives in the optimizer state like Mean Teacher's teacher (alc_jax/ema.py) but no loss term reads
it. Its decay ramps up as Mean Teacher's does (alc_jax/ema.py: min(1 - 1/(t + 1), decay)), where
the reference keeps 0.999 from the first step: early EMAs average the iterates so far instead of
holding mostly the random initialisation (0.999^1000 = 0.37 of it after 1000 steps); from step
999 on the two decays are the same. `fixmatch.ema_decay = 0` keeps no EMA and reports the student:
at CPU budgets of ~1000 steps an EMA of decay 0.999 averages over most of training and lags the
student by 6-12 points on validation (docs/results.md, "FixMatch, and where semi-supervision
pays"). The EMA's batch statistics are the student's (the reference's EMA also covers the moving
averages, which follow the training passes); the strong pass's statistics are not kept, so the
running statistics describe weak views, the closest to the un-augmented images evaluation sees.

With ALC (`alc.WithALC`), the target of this method is q (the weak view's predictions, detached):
Eq. 13 pulls the weak-view predictions of similar images together (labels where known), the
predictions FixMatch turns into pseudo-labels, and Eq. 14 / 15 weigh l_u by 1 - r of the
pseudo-label's class.
"""

import jax
import jax.numpy as jnp

from alc_jax import losses
from alc_jax.data import augment, randaugment
from alc_jax.methods import base


class FixMatch(base.Method):
  name = 'fixmatch'
  label = 'FixMatch'
  SETTINGS = ('fixmatch.threshold', 'fixmatch.weight', 'fixmatch.ema_decay', 'fixmatch.num_ops')
  has_targets = True  # The weak view's prediction, whose class is the pseudo-label.
  ema_model = 'ema'  # An EMA for evaluation only: the loss has no teacher.

  def has_teacher(self, config):
    # The EMA model that evaluation reports (not used by the loss); none at ema_decay = 0.
    return config.fixmatch.ema_decay > 0

  def reported_model(self, config):
    # The EMA of the weights, as FixMatch evaluates; the student when there is no EMA.
    return self.ema_model if self.has_teacher(config) else 'student'

  def ema_decay(self, config):
    return config.fixmatch.ema_decay

  def view_keys(self, config):
    del config
    return ()  # It draws its weak and strong views itself (without the input noise).

  def student_view(self, step):
    # Weak: the data recipe's flip and translation, without the Mean Teacher input noise.
    aug = step.config.augment
    return augment.augment(step.keys['augment'], step.x, aug.translate, aug.flip, noise_std=0.0)

  def targets(self, step, student):
    geometry_key, randaugment_key = jax.random.split(step.keys['augment2'])
    aug = step.config.augment
    # Strong: its own flip / translation, then RandAugment and Cutout on the [0, 255] pixels
    # (the domain of the PIL ops it reproduces), then the data's normalisation.
    pixels = augment.augment(geometry_key, step.images.astype(jnp.float32), aug.translate,
                             aug.flip, noise_std=0.0)
    strong = step.normalization(randaugment.strong_augment(
        randaugment_key, pixels, num_ops=step.config.fixmatch.num_ops))
    (strong_logits, _, _), _ = step.forward(step.params, student.batch_stats, strong,
                                            step.keys['dropout2'])
    return base.Targets(logits=jax.lax.stop_gradient(student.logits),
                        teacher_batch_stats=student.batch_stats, strong_logits=strong_logits)

  def loss(self, step, student, targets, weights=base.SampleWeights()):
    sup = base.supervised_cross_entropy(step, student, weights)
    fixmatch = step.config.fixmatch
    unlabeled = ~step.labeled
    confident = pseudo_label_mask(targets.logits, fixmatch.threshold)
    weight = confident.astype(jnp.float32)
    if weights.consistency is not None:  # Eq. 14 / 15 under ALC.
      weight = weight * weights.consistency
    pseudo = losses.cross_entropy(targets.strong_logits, jnp.argmax(targets.logits, -1), weight,
                                  unlabeled)
    mask_rate = jnp.sum(confident & unlabeled) / jnp.maximum(jnp.sum(unlabeled), 1)
    return sup + fixmatch.weight * pseudo, {'losses/supervised': sup, 'losses/fixmatch': pseudo,
                                            'monitors/fixmatch_mask_rate': mask_rate}


def pseudo_label_mask(weak_logits, threshold):
  """1[max softmax(q) >= tau]: which unlabeled rows get a pseudo-label."""
  return jnp.max(jax.nn.softmax(weak_logits.astype(jnp.float32), -1), -1) >= threshold
