"""Helper of tests/test_reliability.py: STEPS train steps of the tiny config in one of N JAX processes.

Usage: python tests/_reliability_multiprocess.py NPZ OUT.npz PROCESS_ID NUM_PROCESSES PORT STEPS
         [FIELD=VALUE ...]  (tiny_config overrides: Python literals, or strings)

With NUM_PROCESSES > 1 the processes join a jax.distributed job on 127.0.0.1:PORT (CPU, gloo
collectives, one device each); with 1 it runs alone on however many devices XLA_FLAGS gives it.
Process 0 writes the final state (params, batch statistics, EMA teacher) and the per-step losses.

Then the processes run the whole trainer (`train.train_and_evaluate`, TRAIN_STEPS steps) in one
shared workdir, train_<NUM_PROCESSES>/ beside OUT, and once more after its last checkpoint is
corrupted and results.json removed (the rerun skips that checkpoint and resumes from the one
before); each process writes the two runs' results to OUT.results<PROCESS_ID>.json.
"""

import ast
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The trainer's run: a checkpoint, evaluation and log row every 2 steps; the resume from step 2.
TRAIN_STEPS = 4
TRAIN_OVERRIDES = {'num_train_steps': TRAIN_STEPS, 'log_every_steps': 2, 'eval_every_steps': 2,
                   'checkpoint_every_steps': 2}


def main(npz, out, process_id, num_processes, port, steps, *extra):
  # TensorFlow only serves clu's TensorBoard writer, unused here: blocking it saves ~4 s a process.
  sys.modules.setdefault('tensorflow', None)
  import jax  # pylint: disable=g-import-not-at-top
  if num_processes > 1:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=f'127.0.0.1:{port}',
                               num_processes=num_processes, process_id=process_id,
                               initialization_timeout=60)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  from alc_jax import ema, train, workdir_lock  # pylint: disable=g-import-not-at-top
  from tests.conftest import corrupt_checkpoint, tiny_config  # pylint: disable=g-import-not-at-top

  assert jax.process_count() == num_processes and jax.process_index() == process_id
  print(f'process {process_id}/{num_processes}: {jax.device_count()} global devices, '
        f'{jax.local_device_count()} local', flush=True)
  overrides = {}  # E.g. num_train_steps=120 alc.enabled=False.
  for arg in extra:
    key, value = arg.split('=', 1)
    try:
      overrides[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      overrides[key] = value  # A string.
  exp = train.create_experiment(tiny_config(npz, batch_size=16, labeled_batch_size=4,
                                            **overrides))
  state, losses = exp.initial_state, []
  # The hosts of one job hold the workdir as one holder: process 0 writes lock.json for all.
  workdir = os.path.join(os.path.dirname(out), f'workdir_{num_processes}')
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock.WorkdirLock(workdir):
    with open(os.path.join(workdir, 'lock.json'), encoding='utf-8') as f:
      holder = json.load(f)
    print(f'process {process_id}: lock held by process id {holder["pid"]} for '
          f'{holder["processes"]} process(es)', flush=True)
    for _, batch in zip(range(steps), exp.train_batches()):
      state, metrics = exp.train_step(state, batch)
      losses.append(metrics['losses/total'])

  def local(x):  # The state and metrics are replicated: every process holds a full copy.
    assert x.is_fully_replicated, x.sharding
    return np.asarray(x.addressable_data(0))

  tree = {'params': state.params, 'batch_stats': state.batch_stats,
          'teacher': ema.get_teacher(state.opt_state)}
  flat = {jax.tree_util.keystr(path): local(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
  flat['losses'] = np.stack([local(x) for x in losses])
  flat['step'] = local(state.step)
  if process_id == 0:
    np.savez(out, **flat)

  # The whole trainer, in every process on one workdir: process 0 writes the workdir's files, the
  # others only their metrics.<process>.jsonl; evaluation and checkpoints are collective.
  train_dir = os.path.join(os.path.dirname(out), f'train_{num_processes}')
  config = tiny_config(npz, batch_size=16, labeled_batch_size=4,
                       **{**overrides, **TRAIN_OVERRIDES})
  first = train.train_and_evaluate(config, train_dir)
  multihost_utils.sync_global_devices('first run done')
  if process_id == 0:  # The rerun skips the corrupt last checkpoint, resumes from the one before.
    corrupt_checkpoint(os.path.join(train_dir, 'checkpoints', str(TRAIN_STEPS)))
    os.remove(os.path.join(train_dir, 'results.json'))
  multihost_utils.sync_global_devices('last checkpoint corrupted')
  resumed = train.train_and_evaluate(config, train_dir)
  with open(f'{out}.results{process_id}.json', 'w', encoding='utf-8') as f:
    json.dump({'first': first, 'resumed': resumed}, f)
  if num_processes > 1:
    jax.distributed.shutdown()
  print(f'process {process_id} done', flush=True)


if __name__ == '__main__':
  a = sys.argv[1:]
  main(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), *a[6:])
