"""Training and evaluation: pure jit-compiled steps over a device mesh, and the loop around them.

Every step maps over `config.num_runs` independent runs (leading axis R of the state and the
batch; R = 1 for an ordinary run): by vmap on GPU/TPU, by a loop over the runs inside the one
jitted program on the CPU (`config.run_batching`, see `map_runs`). It is data-parallel over all
devices of all hosts: the batch axis is sharded over the mesh axis 'data', the state is
replicated. BatchNorm statistics and the ALC similarity are therefore computed over the global
batch, as on one device. On the CPU, `import alc_jax` made one device per core
(alc_jax/cpu_setup.py).
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

from alc_jax import checkpointing, config_lib, ema, models, objectives, reporting, workdir_io
from alc_jax import workdir_lock
from alc_jax.data import DataError, pipeline
from alc_jax.reporting import PER_CLASS


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any  # Student: backbone and ALC head.
  batch_stats: Any  # Student BatchNorm statistics.
  teacher_batch_stats: Any  # The teacher's own running statistics (see ema.py).
  opt_state: Any  # SGD momentum and the EMA teacher parameters (ema.ema_teacher).
  prior: jax.Array  # r of Eq. 14: class share of this run's labeled set.
  rng: jax.Array  # Raw key data of this run (uint32, checkpointable); step key = fold_in(rng, step).


def create_optimizer(config, total_steps, steps_per_epoch):
  """SGD with Nesterov momentum, cosine-annealed lr, L2 weight decay, then the EMA teacher."""
  warmup = int(config.lr_warmup_epochs * steps_per_epoch)
  if warmup > 0:
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warmup, total_steps)
  else:
    schedule = optax.cosine_decay_schedule(config.learning_rate, max(total_steps, 1))
  tx = optax.chain(
      optax.add_decayed_weights(config.weight_decay),  # Coupled L2, as torch SGD weight_decay.
      optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov),
      ema.ema_teacher(config.ema_decay))
  return tx, schedule


def init_state(rng, model, tx, image_shape, prior):
  """One run's initial state (vmap it for several runs)."""
  init_key, run_key = jax.random.split(rng)
  x = jnp.zeros((2, *image_shape), jnp.float32)
  variables = model.init({'params': init_key, 'dropout': init_key}, x, train=False)
  params, batch_stats = variables['params'], variables.get('batch_stats', {})
  return TrainState(step=jnp.zeros([], jnp.int32), params=params, batch_stats=batch_stats,
                    teacher_batch_stats=batch_stats, opt_state=tx.init(params),
                    prior=jnp.asarray(prior, jnp.float32), rng=jax.random.key_data(run_key))


def train_step(state, batch, rng, *, model, tx, config, normalization, rampup_steps, schedule):
  """One SGD step of one run: (state, batch, rng) -> (state, metrics). Pure; vmap/jit it."""
  grad_fn = jax.value_and_grad(objectives.compute_loss, has_aux=True)
  (_, (metrics, batch_stats, teacher_stats)), grads = grad_fn(
      state.params, state, batch, rng, model=model, config=config, normalization=normalization,
      rampup_steps=rampup_steps)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  metrics['learning_rate'] = schedule(state.step)
  metrics['monitors/grad_norm'] = optax.tree.norm(grads)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, teacher_batch_stats=teacher_stats,
                            opt_state=opt_state)
  return new_state, metrics


def eval_step(state, batch, *, model, normalization):
  """Correct-prediction counts of student and teacher (eval mode, running BN statistics), in
  all and per class (for the minority classes of Table 7)."""
  x = normalization(batch['image'])
  mask, labels = batch['mask'], batch['label']
  out = {'count': jnp.sum(mask)}
  for name, params, stats in (('student', state.params, state.batch_stats),
                              ('teacher', ema.teacher_params(state.opt_state),
                               state.teacher_batch_stats)):
    logits = model.apply({'params': params, 'batch_stats': stats}, x, train=False)[0]
    correct = (jnp.argmax(logits, -1) == labels) & mask
    out[f'{name}_correct'] = jnp.sum(correct)
    of_class = (labels[:, None] == jnp.arange(logits.shape[-1])) & mask[:, None]  # (B, K)
    out['class_count'] = jnp.sum(of_class, axis=0)
    out[f'{name}{PER_CLASS}_correct'] = jnp.sum(of_class & correct[:, None], axis=0)
    if logits.shape[-1] > 10:  # Top-5 for ImageNet (Table 4).
      top5 = jnp.any(jax.lax.top_k(logits, 5)[1] == labels[:, None], axis=-1)
      out[f'{name}_top5_correct'] = jnp.sum(top5 & mask)
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


def _check_finite(metrics, step, config):
  """The NaN guard: raises naming the step and the terms, before anything is checkpointed."""
  bad = [k for k, v in metrics.items() if not np.all(np.isfinite(np.asarray(v)))]
  if bad:
    hint = 'Lower config.learning_rate or the loss weights, or check the input data.'
    alc = config.alc
    if (alc.enabled and alc.graph == 'attention' and alc.logits != 'cosine'
        and not alc.stop_gradient_similarity):
      hint += (' With unbounded attention logits and gradient flowing into S, minimising Eq. 13 '
               'drives the logits without bound (docs/results.md, section 5); the shipped reading '
               '(config.alc.graph=decoupled, a row@decoupled) or bounded logits '
               '(config.alc.logits=cosine) avoid that.')
    raise FloatingPointError(
        f'non-finite value at step {step} in {", ".join(sorted(bad))}; the last good checkpoint '
        f'is kept. {hint}')


def _mean_metrics(rows):
  return {k: float(np.mean([np.mean(np.asarray(r[k])) for r in rows])) for k in rows[0]}


@dataclasses.dataclass
class Experiment:
  """Everything a run needs, built from a config: data, model, compiled steps, initial state."""
  config: ml_collections.ConfigDict
  data: pipeline.Pipeline  # Batches, evaluation sets, sizes, priors, normalisation.
  seeds: list
  steps_per_epoch: int
  total_steps: int
  model: Any
  initial_state: TrainState
  train_step: Any  # jit(map_runs(train_step)): (state, global batch) -> (state, metrics)
  eval_step: Any  # jit(map_runs(eval_step)): (state, global eval batch) -> counts per run
  devices: list  # Of the mesh (mesh_devices).
  run_loop: bool  # The runs are mapped by a loop, not vmap (use_run_loop).

  def train_batches(self, start_step=0):
    """The pipeline's global batches (R, B, ...) from `start_step` on (`Pipeline.train_batches`)."""
    return self.data.train_batches(start_step)

  def evaluate(self, state, name='test'):
    """Accuracies (per run) of student and teacher on the evaluation set `name`; the keys with
    PER_CLASS hold one accuracy per class (R, K)."""
    totals = None
    for batch in self.data.eval_batches(name):
      out = jax.tree.map(np.asarray, self.eval_step(state, batch))
      totals = out if totals is None else jax.tree.map(np.add, totals, out)
    count, class_count = totals.pop('count'), totals.pop('class_count')
    # Per class: 0 for a class the set does not hold.
    return {k.replace('_correct', '_accuracy'):
                v / (np.maximum(class_count, 1) if PER_CLASS in k else count)
            for k, v in totals.items()}

  def evaluate_all(self, state):
    """`evaluate` on every evaluation set of the pipeline; keys of sets other than the test set
    get its name as a prefix (e.g. validation_student_accuracy)."""
    result = {}
    for name in self.data.eval_names:
      prefix = '' if name == 'test' else f'{name}_'
      result.update({prefix + k: v for k, v in self.evaluate(state, name).items()})
    return result


def mesh_devices(batch_size):
  """The devices of the mesh: all of them, except on a single-process CPU, where the device count
  is the core count (alc_jax/cpu_setup.py) and need not divide the batch: there the most devices
  that divide it (batch 100 on 8 cores: 5)."""
  devices = jax.devices()
  if jax.process_count() == 1 and devices[0].platform == 'cpu':
    return devices[:max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)]
  return devices


def use_run_loop(config):
  """Whether the runs of a step are mapped by a loop (True) or by vmap (config.run_batching).

  'auto' loops on the CPU: vmap over runs with per-run weights turns every convolution into a
  grouped convolution, which XLA:CPU runs badly (num_runs=4 made each image 3.5x slower,
  docs/performance.md), while the loop gave 1.25-1.43x the images/s of a single run for 2-4 runs
  (lax.map/scan over the runs were far worse). On GPU/TPU vmap is the win (4 runs: 2.8x the time
  of one on an H100).
  """
  if config.run_batching == 'auto':
    return config.num_runs > 1 and jax.default_backend() == 'cpu'
  return config.run_batching == 'loop'


def map_runs(fn, num_runs, loop, in_axes=0):
  """jax.vmap(fn, in_axes) over the leading run axis, or the same by a Python loop over the runs
  (unrolled in the jitted program, outputs stacked): equal results up to float rounding."""
  if not loop:
    return jax.vmap(fn, in_axes=in_axes)

  def looped(*args):
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    outs = [fn(*(a if ax is None else jax.tree.map(lambda x, r=r: x[r], a)
                 for a, ax in zip(args, axes))) for r in range(num_runs)]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
  return looped


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

  model = models.create_classifier(config, data.num_classes, num_devices)
  _check_image_size(model.backbone, data.image_shape, config)
  tx, schedule = create_optimizer(config, total_steps, steps_per_epoch)
  keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])
  init = jax.jit(jax.vmap(lambda k, prior: init_state(jax.random.wrap_key_data(k), model, tx,
                                                      data.image_shape, prior)),
                 out_shardings=replicated)
  state = init(keys, jnp.asarray(data.priors))

  step_fn = functools.partial(train_step, model=model, tx=tx, config=config,
                              normalization=data.normalization, schedule=schedule,
                              rampup_steps=config.consistency_rampup_epochs * steps_per_epoch)
  loop = use_run_loop(config)

  def run_step(state, batch):
    step_keys = jax.vmap(lambda k, s: jax.random.key_data(
        jax.random.fold_in(jax.random.wrap_key_data(k), s)))(state.rng, state.step)
    return map_runs(lambda st, b, k: step_fn(st, b, jax.random.wrap_key_data(k)), runs, loop)(
        state, batch, step_keys)

  compiled_train_step = jax.jit(run_step, in_shardings=(replicated, batch_sharding),
                                out_shardings=(replicated, replicated), donate_argnums=0)
  compiled_eval_step = jax.jit(
      map_runs(functools.partial(eval_step, model=model, normalization=data.normalization),
               runs, loop, in_axes=(0, None)),
      in_shardings=(replicated, eval_sharding), out_shardings=replicated)
  return Experiment(
      config=config, data=data, seeds=seeds, steps_per_epoch=steps_per_epoch,
      total_steps=total_steps, model=model, initial_state=state,
      train_step=compiled_train_step, eval_step=compiled_eval_step, devices=devices,
      run_loop=loop)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns the results.

  The run holds the workdir while it runs (alc_jax/workdir_lock.py). SIGTERM or Ctrl-C save a
  checkpoint at the next step and return {'preempted_at_step', 'signal'}. Errors that main.py
  prints as one line: config_lib.ConfigError, data.DataError, workdir_lock.WorkdirInUse and
  checkpointing.DiskFullError (a full disk, whatever write hit it).
  """
  config = ml_collections.ConfigDict(config)
  devices = mesh_devices(config.batch_size)
  config_lib.validate(config, len(devices))  # The only validation: before the workdir is touched.
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
  config_lib.check_workdir(config, workdir)
  if jax.process_index() == 0:
    workdir_io.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  exp = create_experiment(config, devices)
  total_steps, runs = exp.total_steps, config.num_runs

  manager = checkpointing.Manager(os.path.join(workdir, 'checkpoints'), config.keep_checkpoints)
  state, start_step = manager.restore_latest(exp.initial_state)
  writer = reporting.create_writer(workdir, resume_step=start_step)
  if start_step == 0:
    writer.write_hparams({k: v for k, v in config_lib.flatten(config.to_dict()).items()
                          if isinstance(v, (int, float, str, bool))})
  batches = exp.train_batches(start_step)
  progress = reporting.Progress(total_steps, start_step, config.batch_size * runs,
                                config.progress_every_seconds)
  # Evaluations so far, kept in the workdir so that 'best' in results.json spans resumptions;
  # those after the restored checkpoint are dropped (their steps are trained again).
  evaluations_path = os.path.join(workdir, 'evaluations.json')
  history = [row for row in workdir_io.read_json(evaluations_path, [])
             if row['step'] <= start_step]
  train_rows, pending = [], None
  t_start, step = time.time(), start_step
  print(f'{config.method}{" + ALC" if config.alc.enabled else ""} on {config.dataset.name} '
        f'({config.dataset.num_labels} labels, {runs} run(s)): {total_steps} steps '
        f'({exp.steps_per_epoch}/epoch) from step {start_step} on {len(exp.devices)} '
        f'{exp.devices[0].device_kind} device(s){" (runs by a loop)" if exp.run_loop else ""}.',
        flush=True)

  try:
    while step < total_steps:
      state, metrics = exp.train_step(state, next(batches))
      if pending is not None:  # Check the previous step's metrics while this one runs.
        _check_finite(pending, step, config)
        train_rows.append(pending)
      pending = metrics
      step += 1
      if step == start_step + 1:  # Rates (steps/s, ETA) exclude the compilation of the first step.
        jax.block_until_ready(metrics)
        progress.restart(step)
      is_last = step == total_steps
      stop = interruption.should_stop(step)
      if step % config.log_every_steps == 0 or is_last or stop:
        pending = jax.tree.map(np.asarray, pending)
        _check_finite(pending, step, config)
        train_rows.append(pending)
        scalars = _mean_metrics(train_rows)
        scalars['train/steps_per_second'] = progress.steps_per_second(step)
        writer.write_scalars(step, scalars)
        train_rows, pending = [], None
        progress.maybe_print(step, scalars['losses/total'], force=is_last)
      if step % config.eval_every_steps == 0 or is_last:
        logging.info('Evaluation of step %d begins.', step)
        result = exp.evaluate_all(state)
        history.append(reporting.evaluation_row(step, result))
        if jax.process_index() == 0:
          workdir_io.write_json(evaluations_path, history)
        writer.write_scalars(step, {f'eval/{k}': float(np.mean(v)) for k, v in result.items()
                                    if PER_CLASS not in k})
        logging.info('Evaluation of step %d done.', step)
        progress.last_accuracy = (f'student {100 * np.mean(result["student_accuracy"]):.2f}% '
                                  f'teacher {100 * np.mean(result["teacher_accuracy"]):.2f}%')
      if step % config.checkpoint_every_steps == 0 or is_last or stop:
        if pending is not None:  # Never checkpoint a state whose step produced NaN.
          _check_finite(jax.tree.map(np.asarray, pending), step, config)
        logging.info('Checkpoint of step %d begins.', step)  # Written in the background.
        manager.save(step, state)
        writer.flush()
      if stop:
        manager.wait()
        writer.flush()
        name = signal.Signals(interruption.signal).name if interruption.signal else 'preemption'
        print(f'Preempted ({name}): saved the checkpoint of step {step}; rerun the same command '
              'to resume.', flush=True)
        return {'preempted_at_step': step, 'signal': name}
  finally:  # Whatever ends the loop (NaN guard, Ctrl-C), finish the checkpoint in flight.
    manager.wait()
  writer.flush()
  wall = time.time() - t_start

  if step == start_step:  # Resumed a finished run: evaluate the restored state (on every process).
    history = [row for row in history if row['step'] < step]
    history.append(reporting.evaluation_row(step, exp.evaluate_all(state)))
  results = reporting.results_record(
      config, history, seeds=exp.seeds, split_seeds=exp.data.split_seeds,
      priors=exp.data.priors, steps=step,
      steps_per_epoch=exp.steps_per_epoch, labeled_batch_size=exp.data.labeled_batch_size,
      mesh_devices=len(exp.devices), wall_time_s=wall, resumed_from_step=start_step,
      # Training throughput after compilation (evaluation and checkpoint time included).
      images_per_second=progress.steps_per_second(step) * config.batch_size * runs)
  if jax.process_index() == 0:
    workdir_io.write_json(os.path.join(workdir, 'results.json'), results)
    if config.alc.enabled:
      _save_similarity(state, exp, workdir, next(iter(exp.data.local_eval_batches('test'))))
  print('Final test accuracy (%): ' + ', '.join(
      f'{k} {v:.2f}' for k, v in results['summary'].items() if k.endswith('accuracy_mean')),
        flush=True)
  return results


def _save_similarity(state, exp, workdir, batch, size=100):
  """S of run 0 on the first `size` test images (eval mode), for the plots of launch/aggregate.py.
  `batch`: this process's rows of the first test batch (numpy)."""
  first = jax.tree.map(lambda a: np.asarray(a)[0], state)
  rows = np.flatnonzero(batch['mask'])[:size]  # Skip the padding of the last eval batch.
  x = exp.data.normalization(batch['image'][rows])
  variables = {'params': first.params, 'batch_stats': first.batch_stats}
  _, _, similarity = exp.model.clone(groups=1).apply(variables, x, train=False,
                                                     with_similarity=True)
  workdir_io.write_npz(os.path.join(workdir, 'similarity.npz'),
                       similarity=np.asarray(similarity)[0], labels=batch['label'][rows])
