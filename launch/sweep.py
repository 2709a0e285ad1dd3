"""Runs a grid of experiments (configs x rows x seeds), one trainer process per job, resumably.

  python launch/sweep.py --configs configs/fashion_mnist_250.py \
      --rows supervised,mean_teacher,mean_teacher_alc --seeds 0,1,2 --root runs/ \
      [--parallel 2] [--dry-run] [--num-runs-per-job 3] [--ratios 5,10] \
      [--override config.model.width=0.25 ...] [--grid config.alc.weight=0.1,1,10 ...]

Every job gets its own workdir, root/<config stem>/<row>/seed<k> (seed<a>-<b> when one job trains
seeds a..b side by side with --num-runs-per-job; <row>_ratio<r> for the imbalanced configs;
<row>--<key>=<value> for each --grid value). A job whose workdir holds results.json is skipped, so
rerunning the same command resumes a sweep; an interrupted job resumes from its own checkpoint.
Each job's output goes to <workdir>/log.txt. launch/aggregate.py turns the root into tables.
Without --rows, a config's ROWS (the paper's table) are run; without --ratios, its RATIOS.
"""

import argparse
import collections
import importlib.util
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)  # Config files import `configs.default`.

# pylint: disable-next=wrong-import-position
from alc_jax import workdir_io  # noqa: E402

Job = collections.namedtuple('Job', 'workdir command seeds')


def _csv(text):
  return [item for item in text.split(',') if item]


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--configs', nargs='+', required=True, help='Config files (space or comma list).')
  p.add_argument('--rows', default='', help="Comma list of rows; default: each config's ROWS.")
  p.add_argument('--ratios', default='',
                 help="Imbalance ratios of configs taking 'ROW,RATIO'; default: their RATIOS.")
  p.add_argument('--seeds', default='0,1,2,3,4', help='Comma list (the paper averages 5 runs).')
  p.add_argument('--root', default='runs', help='Parent of all workdirs.')
  p.add_argument('--parallel', type=int, default=1, help='Jobs running at once.')
  p.add_argument('--num-runs-per-job', type=int, default=1,
                 help='Seeds trained side by side in one job (config.num_runs); consecutive seeds.')
  p.add_argument('--override', action='append', default=[], metavar='config.KEY=VALUE',
                 help='Passed to every job as --config.KEY=VALUE (repeatable).')
  p.add_argument('--grid', action='append', default=[], metavar='config.KEY=V1,V2',
                 help='One job set per value; the value joins the row directory (repeatable).')
  p.add_argument('--python', default=sys.executable, help='Interpreter that runs alc_jax.main.')
  p.add_argument('--dry-run', action='store_true', help='Print the jobs; run nothing.')
  args = p.parse_args(argv)
  args.configs = [c for item in args.configs for c in _csv(item)]
  if args.parallel < 1 or args.num_runs_per_job < 1:
    p.error('--parallel and --num-runs-per-job must be >= 1')
  try:
    args.seeds = [int(s) for s in _csv(args.seeds)]
  except ValueError:
    p.error(f'--seeds must be a comma list of integers, got {args.seeds!r}')
  if len(set(args.seeds)) != len(args.seeds):
    p.error(f'--seeds lists a seed twice ({args.seeds}): two jobs would share one workdir')
  for flag in args.override + args.grid:
    if '=' not in flag:
      p.error(f'expected config.KEY=VALUE, got {flag!r}')
    if _flag(flag.split('=', 1)[0]) in ('seed', 'num_runs'):  # They name the workdirs.
      p.error(f'{flag}: the sweep sets config.seed and config.num_runs from --seeds and '
              '--num-runs-per-job, and names the workdirs after them; use those.')
  return args


def _flag(key):
  """'config.alc.weight' or 'alc.weight' -> 'alc.weight'."""
  return key[len('config.'):] if key.startswith('config.') else key


def load_config_module(path):
  spec = importlib.util.spec_from_file_location(f'sweep_{os.path.basename(path)[:-3]}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def row_args(path, rows, ratios):
  """[(config argument, run name, its config)] of one config file; checks that each loads."""
  from configs import common  # pylint: disable=g-import-not-at-top
  module = load_config_module(path)
  rows = rows or list(getattr(module, 'ROWS', ()))
  if not rows:
    raise SystemExit(f'{path} has no ROWS: pass --rows')
  module_ratios = getattr(module, 'RATIOS', None)
  out = []
  for row in rows:
    if module_ratios is None:
      out.append((row, row))
    else:
      out += [(f'{row},{r}', common.run_name(row, r)) for r in (ratios or module_ratios)]
  configs = []
  for arg, name in out:
    try:
      configs.append((arg, name, module.get_config(arg)))
    except ValueError as e:
      raise SystemExit(f'{path}:{arg}: {e}') from None
  return configs


def check_job(where, config, flags):
  """Refuses the sweep, before anything runs, where alc_jax.main would refuse a job because
  its --config.KEY=VALUE `flags` set a field that the run (with them applied) would ignore."""
  from absl.flags import BooleanParser  # pylint: disable=g-import-not-at-top
  from alc_jax import config_lib  # pylint: disable=g-import-not-at-top
  config = config.copy_and_resolve_references()
  fields = []
  for flag in flags:
    key, text = flag[len('--config.'):].split('=', 1)
    fields.append(key)
    try:
      node = config
      *parents, leaf = key.split('.')
      for part in parents:
        node = node[part]
      old = node[leaf]
      node[leaf] = (BooleanParser().parse(text) if isinstance(old, bool) else  # As absl.
                    type(old)(text) if isinstance(old, (int, float)) else text.strip('\'"'))
    except (KeyError, AttributeError, TypeError, ValueError):
      return  # A field or value alc_jax.main answers itself, in the job's log.
  error = config_lib.ignored_override_error(config, fields)
  if error:
    raise SystemExit(f'{where}: {error}')


def grid_points(grid):
  """[(dir suffix, [flags])] for the cartesian product of --grid values ([('', [])] if none)."""
  points = [('', [])]
  for item in grid:
    key, values = item.split('=', 1)
    key = _flag(key)
    points = [(f'{suffix}--{key}={v}', flags + [f'--config.{key}={v}'])
              for suffix, flags in points for v in _csv(values)]
  return points


def seed_chunks(seeds, size):
  """Consecutive runs of at most `size` seeds (a job trains seed, seed+1, ... side by side)."""
  chunks = []
  for seed in seeds:
    if chunks and len(chunks[-1]) < size and chunks[-1][-1] + 1 == seed:
      chunks[-1].append(seed)
    else:
      chunks.append([seed])
  return chunks


def make_jobs(args):
  rows = _csv(args.rows)
  ratios = _csv(args.ratios)
  overrides = [f'--config.{_flag(k)}={v}' for k, v in (o.split('=', 1) for o in args.override)]
  jobs = []
  for path in args.configs:
    path = os.path.abspath(path)
    stem = os.path.basename(path)[:-len('.py')]
    for arg, name, config in row_args(path, rows, ratios):
      for suffix, grid_flags in grid_points(args.grid):
        check_job(f'{path}:{arg}{suffix}', config, overrides + grid_flags)
        for chunk in seed_chunks(args.seeds, args.num_runs_per_job):
          tag = f'seed{chunk[0]}' if len(chunk) == 1 else f'seed{chunk[0]}-{chunk[-1]}'
          workdir = os.path.join(os.path.abspath(args.root), stem, name + suffix, tag)
          command = [args.python, '-m', 'alc_jax.main', f'--config={path}:{arg}',
                     f'--workdir={workdir}', f'--config.seed={chunk[0]}']
          if args.num_runs_per_job > 1:
            command.append(f'--config.num_runs={len(chunk)}')
          jobs.append(Job(workdir, command + overrides + grid_flags, chunk))
  return jobs


# What a job that finished ran (its command after the interpreter), written by the sweep beside
# results.json: a rerun of the sweep with other --override/--grid values for the same workdir
# must not take the old result for the new command's.
JOB_RECORD = 'sweep_job.json'


def _finished(job):
  return os.path.exists(os.path.join(job.workdir, 'results.json'))


def is_done(job):
  """Finished, by this job's command (a workdir finished by another command is not: run, where
  alc_jax.main refuses a different config in one line). Workdirs finished before the record
  existed count as done."""
  if not _finished(job):
    return False
  record = workdir_io.read_json(os.path.join(job.workdir, JOB_RECORD))
  return record is None or record.get('command') == job.command[1:]


def _record(job):  # Written whole or not at all: a sweep killed here must not leave half a file.
  workdir_io.write_json(os.path.join(job.workdir, JOB_RECORD), {'command': job.command[1:]})


def _fmt(seconds):
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s'


def run_jobs(todo, parallel, total, skipped):
  """Runs jobs `parallel` at a time; returns (done, failed) lists of jobs."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get('TF_CPP_MIN_LOG_LEVEL', '2'))
  start, queue, running, done, failed = time.time(), list(todo), {}, [], []
  index = skipped
  try:
    while queue or running:
      while queue and len(running) < parallel:
        job = queue.pop(0)
        index += 1
        os.makedirs(job.workdir, exist_ok=True)
        log = open(os.path.join(job.workdir, 'log.txt'), 'a', encoding='utf-8')
        log.write(f'$ {shlex.join(job.command)}\n')
        log.flush()
        proc = subprocess.Popen(job.command, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        running[proc] = (job, log, time.time(), index)
        print(f'[{index}/{total}] start {job.workdir} (elapsed {_fmt(time.time() - start)})',
              flush=True)
      time.sleep(0.2)
      for proc in [p for p in running if p.poll() is not None]:
        job, log, t0, k = running.pop(proc)
        log.close()
        ok = proc.returncode == 0 and _finished(job)
        if ok:
          _record(job)
        (done if ok else failed).append(job)
        status = 'done' if ok else f'FAILED (exit {proc.returncode}, see {job.workdir}/log.txt)'
        print(f'[{k}/{total}] {status} {job.workdir} in {_fmt(time.time() - t0)} '
              f'(elapsed {_fmt(time.time() - start)})', flush=True)
  except KeyboardInterrupt:
    for proc, (job, log, _, _) in running.items():  # Only the processes this sweep started.
      proc.terminate()
      proc.wait()
      log.close()
      print(f'interrupted: {job.workdir} (resumes from its checkpoint next time)', flush=True)
    raise
  return done, failed


def main(argv=None):
  args = parse_args(argv)
  jobs = make_jobs(args)
  skip = [job for job in jobs if is_done(job)]
  todo = [job for job in jobs if not is_done(job)]
  print(f'{len(jobs)} jobs: {len(todo)} to run, {len(skip)} finished already (skipped)')
  for job in skip:
    print(f'  skip {job.workdir}')
  if args.dry_run:
    for job in todo:  # 'resume': started before, continues from its checkpoint.
      verb = 'resume' if os.path.isdir(job.workdir) else 'run '
      print(f'  {verb} {job.workdir}\n       {shlex.join(job.command)}')
    return 0
  try:
    done, failed = run_jobs(todo, args.parallel, len(jobs), len(skip))
  except KeyboardInterrupt:  # Ctrl-C: the running jobs were stopped; no traceback.
    print('Stopped by Ctrl-C: rerun the same command to resume (finished jobs are skipped).',
          flush=True)
    return 130
  print(f'summary: {len(done)} done, {len(skip)} skipped, {len(failed)} failed')
  for job in failed:
    print(f'  failed {job.workdir} (log: {job.workdir}/log.txt)')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
