"""Training and evaluation: pure jit-compiled steps over a device mesh, and the loop around them.

Every step maps over `config.num_runs` independent runs (leading axis R of the state and the
batch; R = 1 for an ordinary run): by vmap on GPU/TPU, by a loop over the runs inside the one
jitted program on the CPU (`config.run_batching`, alc_jax/runs.py). It is data-parallel over all
devices of all hosts: the batch axis is sharded over the mesh axis 'data', the state is
replicated. BatchNorm statistics and the ALC similarity are therefore computed over the global
batch, as on one device. On the CPU, the entry points' `cpu_setup.configure()` made one device
per core (alc_jax/cpu_setup.py).
"""

import dataclasses
import functools
import os
import signal
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from alc_jax import attention, checkpointing, config_lib, ema, methods, models, reporting
from alc_jax import host, inference, runs as runs_lib, workdir_io, workdir_lock
from alc_jax.data import DataError, pipeline


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any  # Student: backbone and ALC head.
  batch_stats: Any  # Student BatchNorm statistics.
  # SGD momentum and, for a method with a teacher, the EMA teacher: its parameters and its own
  # BatchNorm statistics (ema.Teacher; read it with ema.find_teacher(state.opt_state)).
  opt_state: Any
  prior: jax.Array  # r of Eq. 14: class share of this run's labeled set.
  rng: jax.Array  # Raw key data of this run (uint32, checkpointable); step key: fold_in(rng, step).


def create_optimizer(config, total_steps, steps_per_epoch, method):
  """SGD with Nesterov momentum, cosine-annealed lr, L2 weight decay, then the EMA teacher of a
  method that has one (Eq. 2)."""
  # At least one step for any warm-up asked for: on a small data set a fraction of an epoch
  # could truncate to none, and the setting would be ignored.
  warmup = (max(1, round(config.lr_warmup_epochs * steps_per_epoch))
            if config.lr_warmup_epochs > 0 else 0)
  if warmup > 0:
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warmup, total_steps)
  else:
    schedule = optax.cosine_decay_schedule(config.learning_rate, max(total_steps, 1))
  parts = [optax.add_decayed_weights(config.weight_decay),  # Coupled L2, as torch SGD's.
           optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov)]
  if method.has_teacher(config):
    parts.append(ema.ema_teacher(method.ema_decay(config)))
  return optax.chain(*parts), schedule


def init_state(rng, model, tx, image_shape, prior):
  """One run's initial state (vmap it for several runs)."""
  init_key, run_key = jax.random.split(rng)
  x = jnp.zeros((2, *image_shape), jnp.float32)
  variables = model.init({'params': init_key, 'dropout': init_key}, x, train=False)
  params, batch_stats = variables['params'], variables.get('batch_stats', {})
  return TrainState(step=jnp.zeros([], jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=ema.init_teacher(tx.init(params), batch_stats),
                    prior=jnp.asarray(prior, jnp.float32), rng=jax.random.key_data(run_key))


def train_step(state, batch, rng, normalization, *, method, model, tx, config, rampup_steps,
               schedule, steps_per_epoch=0):
  """One SGD step of one run: (state, batch, rng, normalization) -> (state, metrics). Pure.

  The method's loss, the optimizer update, and the teacher's update when the method has one (its
  parameters by Eq. 2 and its statistics from its pass, together). The true labels of unlabeled
  rows (`diagnostic_label`) never reach the loss: only the monitors of S read them.
  """
  batch = dict(batch)
  true_labels = batch.pop('diagnostic_label', None)
  grad_fn = jax.value_and_grad(methods.loss_fn, has_aux=True)
  (_, aux), grads = grad_fn(state.params, state, batch, rng, method=method, model=model,
                            config=config, normalization=normalization,
                            rampup_steps=rampup_steps, steps_per_epoch=steps_per_epoch)
  teacher = ({} if aux['teacher_batch_stats'] is None
             else {'teacher_batch_stats': aux['teacher_batch_stats']})
  updates, opt_state = tx.update(grads, state.opt_state, state.params, **teacher)
  metrics = aux['metrics']
  if aux['similarity'] is not None:
    metrics.update(similarity_monitors(aux['similarity'], batch['label'], batch['labeled'],
                                       true_labels, aux['intermediates']))
  metrics['learning_rate'] = schedule(state.step)
  metrics['monitors/grad_norm'] = optax.tree.norm(grads)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=aux['batch_stats'], opt_state=opt_state)
  return new_state, metrics


def similarity_monitors(similarity, labels, labeled, true_labels, intermediates):
  """What S looks like (attention.similarity_diagnostics per group, averaged), and the spread of
  the attention logits the head sowed. Reads true labels: never part of a loss."""
  groups = similarity.shape[0]
  grouped = lambda a: None if a is None else a.reshape(groups, -1, *a.shape[1:])
  diagnostics = jax.vmap(attention.similarity_diagnostics)(
      similarity, grouped(labels), grouped(labeled), grouped(true_labels))
  metrics = {f'monitors/{k}': jnp.mean(v) for k, v in diagnostics.items()}
  spread = jax.tree.leaves(intermediates)
  if spread:
    metrics['monitors/attention_logit_spread'] = jnp.mean(spread[0])
  return metrics


def models_to_evaluate(state, ema_model='teacher'):
  """(name, params, batch_stats) of the student and, where the method keeps one, its EMA model,
  named `ema_model` (the method's: 'teacher', or 'ema' where only evaluation uses it)."""
  models = [('student', state.params, state.batch_stats)]
  teacher = ema.find_teacher(state.opt_state)
  if teacher is not None:
    models.append((ema_model, teacher.params, teacher.batch_stats))
  return models


def eval_step(state, batch, normalization, *, model, top5, ema_model='teacher'):
  """Correct-prediction counts of each model (eval mode, running BN statistics), in all and per
  class (for the minority classes of Table 7), and top-5 when `top5` (Table 4); the EMA model
  is named `ema_model` (models_to_evaluate)."""
  x = normalization(batch['image'])
  mask, labels = batch['mask'], batch['label']
  out = {'count': jnp.sum(mask), 'correct': {}, 'class_correct': {}, 'top5_correct': {}}
  for name, params, stats in models_to_evaluate(state, ema_model):
    logits = model.apply({'params': params, 'batch_stats': stats}, x, train=False)[0]
    correct = (jnp.argmax(logits, -1) == labels) & mask
    out['correct'][name] = jnp.sum(correct)
    of_class = (labels[:, None] == jnp.arange(logits.shape[-1])) & mask[:, None]  # (B, K)
    out['class_count'] = jnp.sum(of_class, axis=0)
    out['class_correct'][name] = jnp.sum(of_class & correct[:, None], axis=0)
    if top5:
      hit = jnp.any(jax.lax.top_k(logits, 5)[1] == labels[:, None], axis=-1)
      out['top5_correct'][name] = jnp.sum(hit & mask)
  return out


class _Interruption:
  """SIGTERM (preemption) and Ctrl-C (SIGINT) set a flag; the loop saves a checkpoint and stops
  at the next step. A second Ctrl-C stops at once (KeyboardInterrupt). A context manager: the
  previous handlers come back on exit (a notebook keeps its own Ctrl-C). On several hosts JAX's
  coordination service makes all agree on the step of a SIGTERM; Ctrl-C keeps its default there.
  """

  def __init__(self):
    self.signal = None  # signal.SIGTERM or signal.SIGINT once requested.
    self._previous = {}

  def __enter__(self):
    signums = (signal.SIGTERM, signal.SIGINT) if jax.process_count() == 1 else ()
    for signum in signums:
      try:
        self._previous[signum] = signal.signal(signum, self._handler)
      except ValueError:  # Not the main thread (e.g. a notebook worker): no handler.
        pass
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False

  def _handler(self, signum, frame):
    del frame
    if signum == signal.SIGINT:
      if self.signal == signal.SIGINT:
        raise KeyboardInterrupt  # The second Ctrl-C.
      print('\nCtrl-C: saving a checkpoint at the next step (press Ctrl-C again to stop at '
            'once).', flush=True)
    self.signal = signum

  def should_stop(self, step):
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.signal is not None


def _check_finite(bad, step, config):
  """The NaN guard: raises naming the step and `bad`, the metrics that went non-finite
  (`nonfinite_names`), before anything is checkpointed."""
  if bad:
    hint = 'Lower config.learning_rate or the loss weights, or check the input data.'
    alc = config.alc
    if (alc.enabled and alc.similarity == 'attention' and alc.head_training == 'eq13'
        and alc.attention_logits != 'cosine' and not alc.stop_gradient_similarity):
      hint += (' With unbounded attention logits and gradient flowing into S, minimising Eq. 13 '
               'drives the logits without bound (docs/results.md, section 5); the shipped reading '
               '(config.alc.head_training=decoupled, a row@decoupled) or bounded logits '
               '(config.alc.attention_logits=cosine) avoid that.')
    raise FloatingPointError(
        f'non-finite value at step {step} in {", ".join(sorted(bad))}; the last good checkpoint '
        f'is kept (the metrics are checked at log and checkpoint steps). {hint}')


def zero_totals(metric_shapes):
  """Empty running totals for metrics of these shapes (see accumulate_metrics)."""
  return {'sum': {k: jnp.zeros([], jnp.float32) for k in metric_shapes},
          'nonfinite': {k: jnp.zeros([], bool) for k in metric_shapes},
          'count': jnp.zeros([], jnp.int32)}


def accumulate_metrics(totals, metrics):
  """Adds one step's metrics (each averaged over the runs) to the running `totals` on the device,
  with a flag per metric that turns on for good once it is non-finite."""
  means = {k: jnp.mean(v.astype(jnp.float32)) for k, v in metrics.items()}
  bad = {k: ~jnp.all(jnp.isfinite(v)) for k, v in metrics.items()}
  return {'sum': jax.tree.map(jnp.add, totals['sum'], means),
          'nonfinite': jax.tree.map(jnp.logical_or, totals['nonfinite'], bad),
          'count': totals['count'] + 1}


def nonfinite_names(flags):
  """The names whose flag (host values of totals['nonfinite']) is on, sorted."""
  return sorted(k for k, v in flags.items() if v)


def read_metrics(totals):
  """(means of the accumulated metrics, names of those that went non-finite), fetched to the host:
  the only place the loop waits for the device between log steps."""
  totals = jax.device_get(totals)
  count = max(int(totals['count']), 1)
  means = {k: float(v) / count for k, v in totals['sum'].items()}
  return means, nonfinite_names(totals['nonfinite'])


def _one_step_in_flight(state):
  """Waits until the step that produced `state` has run, before the next is dispatched.

  One step in flight at a time: the host's work (the next batch, already on its way to the
  devices; bookkeeping) overlaps the running step, and the devices wait only for the dispatch of
  the next one. Unbounded asynchronous dispatch deadlocks on several CPU devices: with dozens of
  steps queued, XLA:CPU left one device's half of an all-gather waiting and aborted the process
  (its 40-s rendezvous timeout; bench/loop_overhead.py with 100 steps between fetches).
  """
  jax.block_until_ready(state.step)


@dataclasses.dataclass
class Experiment:
  """Everything a run needs, built from a config: data, model, method, compiled steps.

  The compiled steps donate the state they are given; `initial_state` is a new state each time it
  is read, so the Experiment stays usable however many runs a notebook starts from it.
  """
  config: ml_collections.ConfigDict
  data: pipeline.Pipeline  # Batches, evaluation sets, sizes, priors, normalisation.
  seeds: list
  steps_per_epoch: int
  total_steps: int
  model: Any
  method: methods.Method
  devices: list  # Of the mesh (mesh_devices).
  run_loop: bool  # The runs are mapped by a loop, not vmap (runs.use_run_loop).
  replicated: Any  # The sharding of the state (every device holds all of it).
  # jit(vmap(init_state)): the state of every run at step 0; called by `initial_state`.
  init_fn: Any
  # jit(runs.map_runs(train_step)): (state, global batch, normalization) -> (state, metrics).
  compiled_train_step: Any
  # The same, accumulating the metrics on the device: (state, totals, batch, normalization) ->
  # (state, totals); what the training loop runs (see accumulate_metrics).
  compiled_accumulating_step: Any
  # jit(runs.map_runs(eval_step)): (state, global eval batch, normalization) -> counts per run.
  compiled_eval_step: Any

  @property
  def models(self):
    """The models evaluated: the student and, where the method keeps one, its EMA model
    ('teacher', or 'ema' for FixMatch: `Method.ema_model`)."""
    if self.method.has_teacher(self.config):
      return ('student', self.method.ema_model)
    return ('student',)

  @property
  def initial_state(self) -> TrainState:
    return self.init_fn()

  def train_step(self, state, batch):
    """(state, batch) -> (state, metrics), metrics on the device. Donates `state`."""
    _one_step_in_flight(state)
    return self.compiled_train_step(state, batch, self.data.normalization)

  def accumulating_step(self, state, totals, batch):
    """(state, totals, batch) -> (state, totals). Donates `state` and `totals`."""
    _one_step_in_flight(state)
    return self.compiled_accumulating_step(state, totals, batch, self.data.normalization)

  def zero_totals(self, state, batch):
    """Running totals for `accumulating_step`, zero (traces the step once for the metric names)."""
    shapes = self.compiled_train_step.eval_shape(state, batch, self.data.normalization)[1]
    return jax.device_put(zero_totals(shapes), self.replicated)

  def eval_step(self, state, batch):
    return self.compiled_eval_step(state, batch, self.data.normalization)

  def train_batches(self, start_step=0):
    """The pipeline's global batches (R, B, ...) from `start_step` on (`Pipeline.train_batches`)."""
    return self.data.train_batches(start_step)

  def evaluate(self, state, name='test'):
    """Accuracies (per run) of each model (the student; its EMA model where it keeps one) on the
    evaluation set `name`, under reporting.accuracy_key(model, name, kind): the accuracy (R,),
    that of each class (R, K) and, with config.eval_top5, the top-5 accuracy (R,); e.g.
    teacher_accuracy on the test set, validation_student_class_accuracy."""
    totals = None
    for batch in self.data.eval_batches(name):
      out = jax.device_get(self.eval_step(state, batch))
      totals = out if totals is None else jax.tree.map(np.add, totals, out)
    count, class_count = totals['count'], np.maximum(totals['class_count'], 1)
    result = {}
    for model_name, correct in totals['correct'].items():
      result[reporting.accuracy_key(model_name, name)] = correct / count
      # Per class: 0 for a class the set does not hold.
      per_class = totals['class_correct'][model_name] / class_count
      result[reporting.accuracy_key(model_name, name, 'per_class')] = per_class
      if model_name in totals['top5_correct']:
        result[reporting.accuracy_key(model_name, name, 'top5')] = (
            totals['top5_correct'][model_name] / count)
    return result

  def evaluate_all(self, state):
    """`evaluate` on every evaluation set of the pipeline (keys of sets other than the test set
    name it, e.g. validation_student_accuracy: reporting.accuracy_key)."""
    result = {}
    for name in self.data.eval_names:
      result.update(self.evaluate(state, name))
    return result


def mesh_devices(batch_size):
  """The devices of the mesh: all of them, except on a single-process CPU, where the device count
  is the core count (alc_jax/cpu_setup.py) and need not divide the batch: there the most devices
  that divide it (batch 100 on 8 cores: 5)."""
  devices = jax.devices()
  if jax.process_count() == 1 and devices[0].platform == 'cpu':
    return devices[:max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)]
  return devices


def _check_image_size(backbone, image_shape, config):
  """Images too small for the backbone fail here, before compiling (inside JAX they would fail
  as a ZeroDivisionError in a pooling window), saying which sizes work."""
  if models.feature_shape(backbone, image_shape) is not None:
    return
  smallest = models.smallest_input_size(backbone, image_shape[-1])
  raise DataError(
      f'{config.dataset.name} images ({config.dataset.path or config.dataset.name}) are '
      f'{image_shape[0]}x{image_shape[1]} pixels, too small for config.model.name='
      f'{config.model.name!r}, which needs at least {smallest}x{smallest}. Resize or pad the '
      'images to at least that size, or use a backbone without unpadded layers '
      "(--config.model.name=wrn28_2 takes any size).")


def create_experiment(config: ml_collections.ConfigDict, devices=None) -> Experiment:
  """Validates the config, builds the data pipeline and the model, and compiles the steps.

  `devices`: the mesh's devices, when the caller has them (default `mesh_devices`); a caller
  that passes them has validated the config for them (train_and_evaluate does).
  """
  config = ml_collections.ConfigDict(config)
  if devices is None:
    devices = mesh_devices(config.batch_size)
    config_lib.validate(config, len(devices))
  num_devices, runs = len(devices), config.num_runs
  seeds = [config.seed + r for r in range(runs)]
  # Auto axes: XLA propagates the batch sharding through the step (one program for any mesh).
  mesh = jax.make_mesh((num_devices,), ('data',), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P(None, 'data'))  # (R, B, ...): the batch axis.
  eval_sharding = NamedSharding(mesh, P('data'))
  eval_batch_size = -(-config.eval_batch_size // num_devices) * num_devices
  data = pipeline.create_pipeline(config, seeds, batch_sharding, eval_sharding, eval_batch_size)
  steps_per_epoch = max(data.num_train // config.batch_size, 1)
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else int(config.num_epochs * steps_per_epoch))

  if config.eval_top5 and data.num_classes <= 5:
    raise config_lib.ConfigError(
        f'config.eval_top5 reports top-5 accuracy, which is 100 % by construction on '
        f'{data.num_classes} classes: set --config.eval_top5=False.')
  model = models.create_classifier(config, data.num_classes, num_devices)
  _check_image_size(model.backbone, data.image_shape, config)
  method = methods.create(config)
  tx, schedule = create_optimizer(config, total_steps, steps_per_epoch, method)
  keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])
  priors = jnp.asarray(data.priors)
  init = jax.jit(jax.vmap(lambda k, prior: init_state(jax.random.wrap_key_data(k), model, tx,
                                                      data.image_shape, prior)),
                 out_shardings=replicated)
  step_fn = functools.partial(train_step, method=method, model=model, tx=tx, config=config,
                              schedule=schedule, steps_per_epoch=steps_per_epoch,
                              rampup_steps=config.consistency_rampup_epochs * steps_per_epoch)
  loop = runs_lib.use_run_loop(config)

  def run_step(state, batch, normalization):
    # The normalisation (and a ZCA matrix) is an argument, not a constant baked into the program.
    step_keys = jax.vmap(lambda k, s: jax.random.key_data(
        jax.random.fold_in(jax.random.wrap_key_data(k), s)))(state.rng, state.step)
    return runs_lib.map_runs(
        lambda st, b, k: step_fn(st, b, jax.random.wrap_key_data(k), normalization),
        runs, loop)(state, batch, step_keys)

  shardings = (replicated, batch_sharding, replicated)
  compiled_train_step = jax.jit(run_step, in_shardings=shardings,
                                out_shardings=(replicated, replicated), donate_argnums=0)

  def accumulating_step(state, totals, batch, normalization):
    # The jitted step, nested: its trace (made once by Experiment.zero_totals' eval_shape) is
    # reused from JAX's cache instead of traced again; XLA inlines the call.
    state, metrics = compiled_train_step(state, batch, normalization)
    return state, accumulate_metrics(totals, metrics)

  compiled_accumulating_step = jax.jit(
      accumulating_step, in_shardings=(replicated, replicated) + shardings[1:],
      out_shardings=(replicated, replicated), donate_argnums=(0, 1))
  compiled_eval_step = jax.jit(
      runs_lib.map_runs(functools.partial(eval_step, model=model, top5=config.eval_top5,
                                          ema_model=method.ema_model),
                        runs, loop, in_axes=(0, None, None)),
      in_shardings=(replicated, eval_sharding, replicated), out_shardings=replicated)
  data.normalization = jax.device_put(data.normalization, replicated)
  return Experiment(
      config=config, data=data, seeds=seeds, steps_per_epoch=steps_per_epoch,
      total_steps=total_steps, model=model, method=method, devices=devices, run_loop=loop,
      replicated=replicated,
      init_fn=functools.partial(init, keys, priors), compiled_train_step=compiled_train_step,
      compiled_accumulating_step=compiled_accumulating_step, compiled_eval_step=compiled_eval_step)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns the results.

  The run holds the workdir while it runs (alc_jax/workdir_lock.py). SIGTERM or Ctrl-C save a
  checkpoint at the next step and return {'preempted_at_step', 'signal'}. Errors that main.py
  prints as one line: config_lib.ConfigError, data.DataError, workdir_lock.WorkdirInUse and
  checkpointing.CheckpointError (a checkpoint of another train state, or storage that fails a
  read) and checkpointing.DiskFullError (a full disk, whatever write hit it).
  """
  config = ml_collections.ConfigDict(config)
  devices = mesh_devices(config.batch_size)
  # Before the workdir is touched; create_experiment refuses what needs the data, before any file.
  config_lib.validate(config, len(devices))
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)  # Local or a bucket (gs://...).
  with workdir_lock.WorkdirLock(workdir), _Interruption() as interruption:
    try:
      return _train_in_workdir(config, devices, workdir, interruption)
    except Exception as e:  # pylint: disable=broad-except
      if checkpointing.is_disk_full(e) and not isinstance(e, checkpointing.DiskFullError):
        raise checkpointing.disk_full_error(
            workdir, f'writing to it ({type(e).__name__}: {str(e)[:120]})') from e
      raise


def _train_in_workdir(config, devices, workdir, interruption):
  """train_and_evaluate once the workdir is held and the signal handlers are in place."""
  checkpoints = os.path.join(workdir, checkpointing.FOLDER)
  # A run with nothing to resume starts over under any config (e.g. a smaller batch after the
  # first step ran out of memory), and its logs are cut back to step 0; one to resume must be
  # the run it was: the same config, and the same data (a user's folder may have changed since).
  resuming = checkpointing.has_checkpoint(checkpoints)
  if resuming:
    config_lib.check_workdir(config, workdir)
  exp = create_experiment(config, devices)  # May refuse the data or the config: no file yet.
  if resuming:
    inference.check_same_data(workdir, exp)
  if jax.process_index() == 0:  # Written once the set-up passed, so that a rerun fixing what it
    # refused is not refused in turn as "a different config"; before the first checkpoint, so
    # that any checkpoint is usable by predict.py.
    workdir_io.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
    inference.write_metadata(workdir, exp)
  manager = checkpointing.Manager(checkpoints, config.keep_checkpoints)
  state, start_step = manager.restore_latest(exp.initial_state)
  hosts, changed = host.record(workdir, start_step, host.current(len(exp.devices)))
  log = _Log(exp, workdir, start_step)
  batches = exp.train_batches(start_step)
  print(_start_line(exp, start_step), flush=True)
  if changed:  # Not an error: the resume is right, only not bitwise the uninterrupted run.
    print(host.resume_note(hosts, changed, start_step), flush=True)
  step, totals, stop = start_step, None, False
  try:
    while step < exp.total_steps and not stop:
      batch = next(batches)
      if totals is None:  # Metrics are summed on the device and fetched at log steps only.
        totals = exp.zero_totals(state, batch)
      state, totals = exp.accumulating_step(state, totals, batch)
      step += 1
      stop = interruption.should_stop(step)
      is_last = step == exp.total_steps
      if step == start_step + 1:  # Rates (steps/s, ETA) exclude the compilation of the first step.
        jax.block_until_ready(totals)
        log.progress.restart(step)
      if step % config.log_every_steps == 0 or is_last or stop:
        totals = log.train_metrics(step, totals, force_print=is_last)
      if step % config.eval_every_steps == 0 or is_last:
        log.evaluation(step, state)
      if step % config.checkpoint_every_steps == 0 or is_last or stop:
        _checkpoint(manager, step, state, totals, log)
  finally:  # Whatever ends the loop (NaN guard, Ctrl-C), finish the checkpoint in flight.
    batches.close()  # Stops the host-side thread that gathers batches.
    manager.wait()
  log.writer.flush()
  if stop:
    name = signal.Signals(interruption.signal).name if interruption.signal else 'preemption'
    print(f'Preempted ({name}): saved the checkpoint of step {step}; rerun the same command '
          'to resume.', flush=True)
    return {'preempted_at_step': step, 'signal': name}
  return _finish(exp, state, log, step, start_step, workdir, hosts)


def _checkpoint(manager, step, state, totals, log):
  """Saves `state` as the checkpoint of `step` (written in the background) once the NaN guard
  has passed: a non-finite step is never checkpointed. Flushes the metrics written so far."""
  _check_finite(nonfinite_names(jax.device_get(totals['nonfinite'])), step, log.exp.config)
  logging.info('Checkpoint of step %d begins.', step)
  manager.save(step, state)
  log.writer.flush()


def _start_line(exp, start_step):
  config = exp.config
  return (f'{exp.method.label} on {config.dataset.name} ({exp.data.num_labeled} labels, '
          f'{config.num_runs} run(s)): {exp.total_steps} steps ({exp.steps_per_epoch}/epoch) from '
          f'step {start_step} on {len(exp.devices)} {exp.devices[0].device_kind} device(s)'
          f'{" (runs by a loop)" if exp.run_loop else ""}.')


class _Log:
  """What the loop reports: metrics (TensorBoard, metrics.jsonl), evaluations (evaluations.json,
  kept across resumptions so that 'best' in results.json spans them) and the progress line."""

  def __init__(self, exp, workdir, start_step):
    config = exp.config
    self.exp, self.config = exp, config
    self.writer = reporting.create_writer(workdir, resume_step=start_step,
                                         tensorboard=config.tensorboard)
    if start_step == 0:
      self.writer.write_hparams({k: v for k, v in config_lib.flatten(config.to_dict()).items()
                                 if isinstance(v, (int, float, str, bool))})
    self.progress = reporting.Progress(exp.total_steps, start_step,
                                       config.batch_size * config.num_runs,
                                       config.progress_every_seconds)
    self.evaluations_path = os.path.join(workdir, 'evaluations.json')
    # Evaluations after the restored checkpoint are dropped (their steps are trained again).
    self.history = [row for row in workdir_io.read_json(self.evaluations_path, [])
                    if row['step'] <= start_step]
    self.reported = exp.method.reported_model(config)
    self.started = time.time()

  def train_metrics(self, step, totals, force_print):
    """Fetches the metrics summed since the last log, guards them, writes them; returns new
    (zero) totals."""
    means, bad = read_metrics(totals)
    _check_finite(bad, step, self.config)
    means['train/steps_per_second'] = self.progress.steps_per_second(step)
    self.writer.write_scalars(step, means)
    self.progress.maybe_print(step, means['losses/total'], force=force_print)
    return jax.tree.map(jnp.zeros_like, totals)

  def evaluation(self, step, state):
    """Evaluates `state` on every evaluation set and records it (the INFO lines mark its start
    and end: tests/test_reliability.py kills runs between them)."""
    logging.info('Evaluation of step %d begins.', step)
    result = self.exp.evaluate_all(state)
    self.history.append(reporting.evaluation_row(step, result))
    if jax.process_index() == 0:
      workdir_io.write_json(self.evaluations_path, self.history)
    self.writer.write_scalars(step, {f'eval/{k}': float(np.mean(v)) for k, v in result.items()
                                     if not reporting.is_per_class(v)})
    logging.info('Evaluation of step %d done.', step)
    if result:  # The progress line shows the first set's (the test set's, else validation's).
      name = self.exp.data.eval_names[0]
      key = reporting.accuracy_key(self.reported, name)
      self.progress.last_accuracy = f'{name} acc {100 * np.mean(result[key]):.2f}%'


# Images of similarity.npz (S of the first test images, for launch/aggregate.py's plots).
SIMILARITY_IMAGES = 100


def _finish(exp, state, log, step, start_step, workdir, hosts=()):
  """results.json (and similarity.npz with ALC) of a finished run; returns the results. `hosts`:
  host.record's list of the hosts the run's steps ran on (none recorded by default)."""
  config = exp.config
  if step == start_step:  # Resumed a finished run: evaluate the restored state (on every process).
    log.history = [row for row in log.history if row['step'] < step]
    log.history.append(reporting.evaluation_row(step, exp.evaluate_all(state)))
  results = reporting.results_record(
      config, log.history, seeds=exp.seeds, split_seeds=exp.data.split_seeds,
      priors=exp.data.priors, steps=step, steps_per_epoch=exp.steps_per_epoch,
      labeled_batch_size=exp.data.labeled_batch_size, mesh_devices=len(exp.devices),
      wall_time_s=time.time() - log.started, resumed_from_step=start_step,
      models=exp.models, reported_model=log.reported, num_labels=exp.data.num_labeled, hosts=hosts,
      # Training throughput after compilation (evaluation and checkpoint time included).
      images_per_second=(log.progress.steps_per_second(step) * config.batch_size
                         * config.num_runs))
  if step == start_step:  # No step trained here: the training's figures stay those it recorded.
    earlier = workdir_io.read_json(os.path.join(workdir, 'results.json'), {})
    results.update({k: earlier[k] for k in ('images_per_second', 'wall_time_s') if k in earlier})
  first_images = None
  if config.alc.enabled and exp.data.eval_names:  # S of the first evaluation set's images.
    first_images = _first_eval_images(exp)  # A collective: every process takes part.
  if jax.process_index() == 0:
    workdir_io.write_json(os.path.join(workdir, 'results.json'), results)
    if first_images is not None:
      _save_similarity(state, exp, workdir, first_images)
  print(reporting.final_accuracy_line(results['summary'], exp.data.eval_names), flush=True)
  return results


def _first_eval_images(exp, size=SIMILARITY_IMAGES):
  """The first evaluation set's first batch, up to `size` rows of each process's part, gathered
  from every process (numpy). A collective. For the in-memory data sets, whose processes take
  consecutive rows of each batch, its first `size` images are the same whatever the number of
  processes (ImageNet's stream gives each process its own shard)."""
  local = next(iter(exp.data.local_eval_batches(exp.data.eval_names[0])))
  local = {key: np.asarray(value)[:size] for key, value in local.items()}
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(local, tiled=True))


def _save_similarity(state, exp, workdir, batch, size=SIMILARITY_IMAGES):
  """S of run 0 on the first `size` test images (eval mode), for the plots of launch/aggregate.py.
  `batch`: `_first_eval_images`."""
  first = jax.tree.map(lambda a: np.asarray(a)[0], state)
  rows = np.flatnonzero(batch['mask'])[:size]  # Skip the padding of the last eval batch.
  x = exp.data.normalization(batch['image'][rows])
  variables = {'params': first.params, 'batch_stats': first.batch_stats}
  # One compiled program: applied op by op, the model would compile each of its ~100 ops apart.
  apply = jax.jit(functools.partial(exp.model.clone(groups=1).apply, train=False,
                                    with_similarity=True))
  _, _, similarity = apply(variables, x)
  workdir_io.write_npz(os.path.join(workdir, 'similarity.npz'),
                       similarity=np.asarray(similarity)[0], labels=batch['label'][rows])
