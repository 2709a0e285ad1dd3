"""The Mean Teacher's EMA teacher (Eq. 2) as an optax transformation: the teacher lives in optax state.

Chained last, after the optimiser, it sees the final parameter updates, so the teacher averages the
*updated* student, in the order of the Mean Teacher reference (optimizer.step(), then
update_ema_variables). Like that reference, the decay ramps up: alpha_t = min(1 - 1/(t + 1), decay)
with t = 1 at the first update, so early teachers are not dominated by the random initialisation.

BatchNorm statistics are not parameters and are not averaged here: as in the reference (which
averages `model.parameters()` only), the teacher keeps its own running statistics, updated by its
own forward passes in training mode (see `train.TrainState.teacher_batch_stats`).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class EmaTeacherState(NamedTuple):
  count: jax.Array  # Number of updates so far.
  teacher: Any  # theta' of Eq. 2, same tree as the student parameters.


def ema_teacher(decay: float) -> optax.GradientTransformation:
  """theta' <- alpha theta' + (1 - alpha) theta after every student update (Eq. 2)."""

  def init_fn(params):
    return EmaTeacherState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.array, params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('ema_teacher needs the parameters: call update(updates, state, params).')
    count = state.count + 1
    alpha = jnp.minimum(1.0 - 1.0 / (count.astype(jnp.float32) + 1.0), decay)
    new_student = optax.apply_updates(params, updates)
    teacher = jax.tree.map(lambda t, s: alpha * t + (1.0 - alpha) * s, state.teacher, new_student)
    return updates, EmaTeacherState(count, teacher)

  return optax.GradientTransformation(init_fn, update_fn)


def teacher_params(opt_state):
  """The teacher parameters held by the `ema_teacher` inside an optax state tree."""
  found = optax.tree_utils.tree_get(opt_state, 'teacher')
  if found is None:
    raise ValueError('no ema_teacher state in this optimizer state; chain ema_teacher() last.')
  return found
