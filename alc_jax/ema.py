"""The Mean Teacher's EMA teacher (Eq. 2) as an optax transformation: the teacher lives in optax state.

The teacher is one thing with one owner: `Teacher(params, batch_stats)` inside `EmaTeacherState`,
reached by `get_teacher` / `find_teacher` (by type, never by position in the optimizer chain),
and absent from the optimizer of a method that has none.

Chained last, after the optimiser, it sees the final parameter updates, so the teacher averages the
*updated* student, in the order of the Mean Teacher reference (optimizer.step(), then
update_ema_variables). Like that reference, the decay ramps up: alpha_t = min(1 - 1/(t + 1), decay)
with t = 1 at the first update, so early teachers are not dominated by the random initialisation.

BatchNorm statistics are not parameters and are not averaged: as in the reference (which averages
`model.parameters()` only), the teacher keeps its own running statistics, updated by its own
forward passes in training mode. The train step hands them over with the update
(`tx.update(grads, opt_state, params, teacher_batch_stats=...)`), so parameters and statistics
are updated together, in one place.
"""

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax


class Teacher(NamedTuple):
  params: Any  # theta' of Eq. 2, same tree as the student parameters.
  batch_stats: Any  # The teacher's own BatchNorm running statistics.


class EmaTeacherState(NamedTuple):
  count: jax.Array  # Number of updates so far.
  teacher: Teacher


def ema_teacher(decay: float) -> optax.GradientTransformationExtraArgs:
  """theta' <- alpha theta' + (1 - alpha) theta after every student update (Eq. 2); the teacher's
  batch statistics are replaced by `teacher_batch_stats` (its pass of this step) when given.

  `init(params)` leaves the statistics empty (None): fill them with `init_teacher`.
  """

  def init_fn(params):
    return EmaTeacherState(jnp.zeros([], jnp.int32),
                           Teacher(jax.tree.map(jnp.array, params), None))

  def update_fn(updates, state, params=None, *, teacher_batch_stats=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError('ema_teacher needs the parameters: call update(updates, state, params).')
    count = state.count + 1
    alpha = jnp.minimum(1.0 - 1.0 / (count.astype(jnp.float32) + 1.0), decay)
    new_student = optax.apply_updates(params, updates)
    params = jax.tree.map(lambda t, s: alpha * t + (1.0 - alpha) * s, state.teacher.params,
                          new_student)
    batch_stats = (state.teacher.batch_stats if teacher_batch_stats is None
                   else teacher_batch_stats)
    return updates, EmaTeacherState(count, Teacher(params, batch_stats))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _is_ema_state(node):
  return isinstance(node, EmaTeacherState)


def _ema_state(opt_state) -> Optional[EmaTeacherState]:
  found = [n for n in jax.tree.leaves(opt_state, is_leaf=_is_ema_state) if _is_ema_state(n)]
  if len(found) > 1:
    raise ValueError(f'{len(found)} ema_teacher states in this optimizer state; chain one.')
  return found[0] if found else None


def find_teacher(opt_state) -> Optional[Teacher]:
  """The teacher in an optax state tree, or None when the optimizer has no `ema_teacher`."""
  state = _ema_state(opt_state)
  return None if state is None else state.teacher


def get_teacher(opt_state) -> Teacher:
  """The teacher in an optax state tree; an error when there is none."""
  teacher = find_teacher(opt_state)
  if teacher is None:
    raise ValueError('no ema_teacher state in this optimizer state: this method has no teacher '
                     '(methods.Method.has_teacher).')
  return teacher


def replace_teacher(opt_state, teacher: Teacher):
  """The optax state with its teacher replaced (same tree otherwise)."""
  if _ema_state(opt_state) is None:
    raise ValueError('no ema_teacher state in this optimizer state to replace.')
  return jax.tree.map(lambda n: n._replace(teacher=teacher) if _is_ema_state(n) else n,
                      opt_state, is_leaf=_is_ema_state)


def init_teacher(opt_state, batch_stats):
  """Gives a freshly initialised teacher its BatchNorm statistics (the student's at step 0)."""
  teacher = find_teacher(opt_state)
  if teacher is None:
    return opt_state
  return replace_teacher(opt_state, teacher._replace(batch_stats=batch_stats))
