"""launch/: the sweep's job list and resumption, the cluster scripts' dry runs, the aggregator."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, 'launch')


def _module(name):
  path = os.path.join(LAUNCH, f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'launch_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _sweep(*args, cwd=ROOT):
  return subprocess.run([sys.executable, os.path.join(LAUNCH, 'sweep.py'), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=60)


def _write_results(workdir, **fields):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'results.json'), 'w', encoding='utf-8') as f:
    json.dump(fields, f)


# --- sweep.py -----------------------------------------------------------------------------------

def test_sweep_dry_run_lists_workdirs_and_skips_finished(tmp_path):
  root = tmp_path / 'runs'
  _write_results(str(root / 'fashion_mnist_250' / 'mean_teacher' / 'seed1'), method='mean_teacher')
  out = _sweep('--configs', 'configs/fashion_mnist_250.py', '--rows', 'supervised,mean_teacher',
               '--seeds', '0,1', '--root', str(root), '--dry-run',
               '--override', 'config.model.width=0.25')
  assert out.returncode == 0, out.stderr
  assert '4 jobs: 3 to run, 1 finished already' in out.stdout
  assert f'skip {root}/fashion_mnist_250/mean_teacher/seed1' in out.stdout
  for row, seed in (('supervised', 0), ('supervised', 1), ('mean_teacher', 0)):
    workdir = root / 'fashion_mnist_250' / row / f'seed{seed}'
    assert f'run  {workdir}\n' in out.stdout
    assert f'--workdir={workdir} --config.seed={seed} --config.model.width=0.25' in out.stdout
  assert 'configs/fashion_mnist_250.py:supervised' in out.stdout
  assert not (root / 'fashion_mnist_250' / 'supervised').exists()  # A dry run writes nothing.


def test_sweep_default_rows_ratios_vectorised_seeds_and_grid(tmp_path):
  out = _sweep('--configs', 'configs/cifar10_imbalanced.py', '--rows', 'mean_teacher_alc_soft',
               '--ratios', '5,15', '--seeds', '0,1,2,7', '--num-runs-per-job', '2',
               '--grid', 'config.alc.weight=1,10', '--root', str(tmp_path), '--dry-run')
  assert out.returncode == 0, out.stderr
  assert '12 jobs' in out.stdout  # 2 ratios x 2 weights x seed chunks [0, 1], [2], [7].
  assert 'cifar10_imbalanced/mean_teacher_alc_soft_ratio15--alc.weight=10/seed0-1' in out.stdout
  assert 'cifar10_imbalanced.py:mean_teacher_alc_soft,15' in out.stdout
  assert '--config.seed=0 --config.num_runs=2 --config.alc.weight=10' in out.stdout
  assert '/seed2\n' in out.stdout and '/seed7\n' in out.stdout
  out = _sweep('--configs', 'configs/ablation_svhn.py', '--seeds', '0', '--root', str(tmp_path),
               '--dry-run')
  assert '5 jobs' in out.stdout and 'ablation_svhn/e/seed0' in out.stdout  # The config's ROWS.


def test_sweep_refuses_an_override_a_row_s_method_would_ignore(tmp_path):
  """Before any job runs (alc_jax.main would refuse the row's job): --override or --grid of a
  setting that one of the rows' methods does not read."""
  for flag in (['--override', 'config.ema_decay=0.9'], ['--grid', 'config.alc.weight=1,10']):
    out = _sweep('--configs', 'configs/fashion_mnist_250.py', '--rows',
                 'mean_teacher_alc,supervised', '--seeds', '0', '--root', str(tmp_path), *flag)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith(
        f'{ROOT}/configs/fashion_mnist_250.py:supervised'), out.stderr
    assert 'would be ignored: Supervised does not read it' in out.stderr
    assert not os.listdir(tmp_path)
  # Checked with the sweep's own overrides applied: here they turn on what reads the field.
  out = _sweep('--configs', 'configs/fashion_mnist_250.py', '--rows', 'mean_teacher,vat',
               '--seeds', '0', '--root', str(tmp_path), '--dry-run',
               '--override', 'config.alc.enabled=True', '--override', 'config.alc.weight=10',
               '--override', 'config.vat.power_iteration=finite_difference',
               '--override', 'config.vat.xi=1e-5')
  assert out.returncode != 0
  assert out.stderr.strip().endswith(  # Mean Teacher does not read VAT's settings.
      'fashion_mnist_250.py:mean_teacher: --config.vat.power_iteration, --config.vat.xi would be '
      'ignored: MeanTeacher + ALC does not read them (its own settings: consistency_weight, '
      "consistency_rampup_epochs, ema_decay, augment.noise_std, ALC's of its reading (alc.*)). "
      'Leave them out.'), out.stderr
  out = _sweep('--configs', 'configs/fashion_mnist_250.py', '--rows', 'vat', '--seeds', '0',
               '--root', str(tmp_path), '--dry-run',
               '--override', 'config.alc.enabled=t',  # absl's boolean, as alc_jax.main reads it.
               '--override', 'config.alc.weight=10', '--grid',
               'config.vat.power_iteration=finite_difference', '--override', 'config.vat.xi=1e-5')
  assert out.returncode == 0, out.stderr


def test_sweep_rejects_unknown_rows(tmp_path):
  out = _sweep('--configs', 'configs/svhn_250.py', '--rows', 'nope', '--root', str(tmp_path),
               '--dry-run')
  assert out.returncode != 0 and 'valid rows' in out.stdout + out.stderr


def _fake_trainer(path, body):
  """A stand-in for the interpreter that runs `python -m alc_jax.main`: a bash script that sets
  $w to the job's --workdir and runs `body`."""
  path.write_text('#!/bin/bash\n'
                  'for a in "$@"; do case "$a" in --workdir=*) w="${a#--workdir=}";; esac; done\n'
                  + body)
  path.chmod(0o755)
  return str(path)


def test_sweep_runs_jobs_in_parallel_and_reports_failures(tmp_path):
  # Writes results.json, or fails for the Pi-model row.
  fake = _fake_trainer(tmp_path / 'fake_python', 'echo "training in $w"\n'
                       'case "$*" in *pi_model*) echo boom >&2; exit 3;; esac\n'
                       'echo "{}" > "$w/results.json"\n')
  root = tmp_path / 'runs'
  _write_results(str(root / 'svhn_250' / 'supervised' / 'seed0'))
  args = ('--configs', 'configs/svhn_250.py', '--rows', 'supervised,mean_teacher,pi_model',
          '--seeds', '0', '--root', str(root), '--parallel', '2', '--python', fake)
  out = _sweep(*args)
  assert out.returncode == 1
  assert 'summary: 1 done, 1 skipped, 1 failed' in out.stdout
  assert '[2/3]' in out.stdout and '[3/3]' in out.stdout and 'elapsed' in out.stdout
  log = (root / 'svhn_250' / 'pi_model' / 'seed0' / 'log.txt').read_text()
  assert 'boom' in log and '-m alc_jax.main' in log
  assert (root / 'svhn_250' / 'mean_teacher' / 'seed0' / 'results.json').exists()
  out = _sweep(*args, '--dry-run')
  assert f"resume {root / 'svhn_250' / 'pi_model' / 'seed0'}" in out.stdout
  out = _sweep(*args)  # Resumes: only the failed job runs again.
  assert '3 jobs: 1 to run, 2 finished already' in out.stdout
  # Other overrides for the same workdirs: the jobs this sweep finished run again (the trainer
  # would refuse a different config); the one finished before the record existed is kept.
  out = _sweep(*args, '--override', 'config.num_epochs=16', '--dry-run')
  assert '3 jobs: 2 to run, 1 finished already' in out.stdout
  assert f"skip {root / 'svhn_250' / 'supervised' / 'seed0'}" in out.stdout


def test_sweep_runs_at_most_parallel_jobs_and_a_job_without_results_failed(tmp_path):
  events = tmp_path / 'events.txt'  # Each job's start and end time (ns), appended line by line.
  fake = _fake_trainer(tmp_path / 'fake_python', (
      # 0.8 s a job: the two a sweep starts together overlap even on a loaded machine.
      f'echo "start $(date +%s%N)" >> {events}\nsleep 0.8\necho "end $(date +%s%N)" >> {events}\n'
      'pwd > "$w/cwd.txt"\n'
      # The Mean Teacher jobs exit 0 but leave no results.json: the sweep must count them failed.
      'case "$*" in *mean_teacher*) exit 0;; esac\necho "{}" > "$w/results.json"\n'))
  root = tmp_path / 'runs'
  args = ('--configs', f'{ROOT}/configs/svhn_250.py', '--rows', 'supervised,mean_teacher,pi_model',
          '--seeds', '0,1', '--root', str(root), '--parallel', '2', '--python', fake)
  out = _sweep(*args, cwd=tmp_path)  # Started elsewhere, the jobs still run in the repository
  assert out.returncode == 1 and 'summary: 4 done, 0 skipped, 2 failed' in out.stdout, out.stdout
  cwd = root / 'svhn_250' / 'pi_model' / 'seed0' / 'cwd.txt'  # (configs import configs.default).
  assert cwd.read_text().strip() == ROOT
  for seed in (0, 1):  # Exit status 0, but no results.json.
    assert f"FAILED (exit 0, see {root / 'svhn_250' / 'mean_teacher' / f'seed{seed}'}" in out.stdout
  running, most = 0, 0
  for _, kind in sorted((int(t), kind) for kind, t in
                        (line.split() for line in events.read_text().splitlines())):
    running += 1 if kind == 'start' else -1
    most = max(most, running)
  assert most == 2, events.read_text()  # Two at a time: never three, and not one by one.
  _sweep(*args)  # The failed jobs run again; their log keeps the first attempt's lines.
  log = (root / 'svhn_250' / 'mean_teacher' / 'seed0' / 'log.txt').read_text()
  assert log.count('$ ') == 2 and log.count('-m alc_jax.main') == 2, log


def test_sweep_interrupted_stops_its_jobs(tmp_path):
  pids = tmp_path / 'pids'
  pids.mkdir()
  fake = _fake_trainer(tmp_path / 'fake_python',
                       f'echo $$ > {pids}/$(basename $(dirname "$w")); exec sleep 60\n')
  # Ctrl-C's handler set first: a process started with SIGINT ignored (a background job of a
  # non-interactive shell, as CI may run the suite) passes that on, and Python keeps it.
  run_sweep = ('import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler)'
               '; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")')
  sweep = subprocess.Popen(
      [sys.executable, '-c', run_sweep, os.path.join(LAUNCH, 'sweep.py'), '--configs',
       'configs/svhn_250.py', '--rows', 'supervised,mean_teacher', '--seeds', '0', '--root',
       str(tmp_path / 'runs'), '--parallel', '2', '--python', fake], cwd=ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + 30
    while len(os.listdir(pids)) < 2 and time.monotonic() < deadline:
      time.sleep(0.05)
    jobs = [int((pids / name).read_text()) for name in sorted(os.listdir(pids))]
    assert len(jobs) == 2
    sweep.send_signal(signal.SIGINT)  # Ctrl-C reaches the sweep only, as kill -INT does.
    stdout, stderr = sweep.communicate(timeout=30)
    assert sweep.returncode == 130 and 'Traceback' not in stderr, stderr
    assert stdout.count('(resumes from its checkpoint next time)') == 2, stdout
    assert 'Stopped by Ctrl-C: rerun the same command to resume' in stdout, stdout
    for pid in jobs:  # Stopped (terminated and waited for, so not even a zombie is left).
      with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
  finally:
    sweep.kill()
    for name in os.listdir(pids):
      try:
        os.kill(int((pids / name).read_text()), signal.SIGKILL)
      except (ProcessLookupError, ValueError):
        pass


@pytest.mark.parametrize('flag,value,error', [
    ('--seeds', '0,x', '--seeds must be a comma list of integers'),
    ('--parallel', '0', 'must be >= 1'), ('--num-runs-per-job', '0', 'must be >= 1'),
    ('--override', 'alc.weight', 'expected config.KEY=VALUE'),
    ('--seeds', '0,1,0', 'lists a seed twice'),
    ('--override', 'config.seed=5', 'sets config.seed and config.num_runs from --seeds'),
    ('--grid', 'num_runs=2,3', 'sets config.seed and config.num_runs from --seeds')])
def test_sweep_refuses_bad_flags(tmp_path, flag, value, error):
  out = _sweep('--configs', 'configs/svhn_250.py', '--root', str(tmp_path), '--dry-run', flag,
               value)
  assert out.returncode == 2 and 'usage:' in out.stderr and error in out.stderr, out.stderr


# --- tpu_pod.sh, slurm.sh -----------------------------------------------------------------------

def _bash(script, *args, env=None):
  return subprocess.run(['bash', os.path.join(LAUNCH, script), *args], capture_output=True,
                        text=True, timeout=30, env=dict(os.environ, **(env or {})))


def test_tpu_pod_dry_run():
  out = _bash('tpu_pod.sh', '--dry-run', '--tpu', 'pod1', '--zone', 'us-central2-b', '--config',
              'configs/imagenet_1pct.py:mean_teacher_alc', '--workdir', 'gs://b/run', '--',
              '--config.seed=3')
  assert out.returncode == 0, out.stderr
  assert 'gcloud compute tpus tpu-vm ssh pod1 --zone us-central2-b --worker=all' in out.stdout
  command = out.stdout.replace('\\', '')
  assert 'python -m alc_jax.main --multihost --config=configs/imagenet_1pct.py:mean_teacher_alc' \
      in command
  assert '--workdir=gs://b/run --config.seed=3' in command
  out = _bash('tpu_pod.sh', '--config', 'c.py', '--workdir', 'w',
              env={'DRY_RUN': '1', 'TPU_NAME': 't', 'ZONE': 'z'})
  assert out.returncode == 0 and 'ssh t --zone z' in out.stdout


def test_slurm_dry_run():
  out = _bash('slurm.sh', '--dry-run', '--nodes', '3', '--config', 'configs/svhn_250.py',
              '--workdir', '/shared/run', '--', '--config.num_runs=2')
  assert out.returncode == 0, out.stderr
  assert 'sbatch --job-name=alc_jax --nodes=3' in out.stdout
  assert ('srun --nodes=3 --ntasks-per-node=1 python -m alc_jax.main --multihost '
          '--config=configs/svhn_250.py --workdir=/shared/run --config.num_runs=2') in out.stdout


@pytest.mark.parametrize('script,args', [('tpu_pod.sh', ()), ('tpu_pod.sh', ('--nope',)),
                                         ('slurm.sh', ('--config', 'c.py')),
                                         ('slurm.sh', ('--bad',))])
def test_scripts_print_usage_on_bad_args(script, args):
  out = _bash(script, *args)
  assert out.returncode == 2 and 'Example:' in out.stderr and '--workdir' in out.stderr


# --- aggregate.py -------------------------------------------------------------------------------

def fake_run(workdir, method='mean_teacher', alc=False, imbalance='none', student=(0.5,),
             teacher=None, dataset='fashion_mnist', num_labels=250, ratio=1.0, weight=1.0,
             top5=None, similarity=False, validation=None, per_class=None, prior=None,
             seeds=None, split_seeds=None):
  """A finished run as the trainer leaves it: results.json, metrics.jsonl, maybe similarity.npz.
  per_class and prior: [run][class] accuracies (both models) and labeled class shares; seeds:
  each run's seed, which is also its label split's seed."""
  teacher = student if teacher is None else teacher
  final = {'student_accuracy': list(student), 'teacher_accuracy': list(teacher)}
  if validation is not None:
    final['validation_student_accuracy'] = final['validation_teacher_accuracy'] = list(validation)
  if top5 is not None:
    final['student_top5_accuracy'] = list(top5)
    final['teacher_top5_accuracy'] = list(top5)
  config = {'method': method, 'sntg': {'base': 'pi_model'},
            'alc': {'enabled': alc, 'weight': weight, 'pooling': 'max_avg',
                    'similarity': 'attention', 'channel_attention': True}}
  extra = {}
  if per_class is not None:
    extra = {'final_per_class': {'student_class_accuracy': per_class,
                                 'teacher_class_accuracy': per_class},
             'labeled_class_prior': prior}
  if seeds is not None:
    extra.update(seeds=list(seeds), split_seeds=list(seeds if split_seeds is None else split_seeds))
  _write_results(workdir, method=method, alc=alc, alc_imbalance=imbalance, dataset=dataset,
                 num_labels=num_labels, imbalance_ratio=ratio, model='cnn13', num_runs=len(student),
                 steps=400, epochs=40.0, steps_per_epoch=10, final=final, best=final,
                 config=config, **extra)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w', encoding='utf-8') as f:
    for step in (100, 200, 300, 400):
      row = {'step': step, 'losses/total': 1.0 / step, 'monitors/similarity_diagonal': 0.1,
             'monitors/similarity_entropy': 3.0, 'monitors/similarity_same_class': 0.3}
      f.write(json.dumps(row) + '\n')
      f.write(json.dumps({'step': step, 'eval/student_accuracy': step / 500 * np.mean(student),
                          'eval/teacher_accuracy': step / 500 * np.mean(teacher)}) + '\n')
  if similarity:
    rng = np.random.default_rng(0)
    np.savez(os.path.join(workdir, 'similarity.npz'), similarity=rng.random((100, 100)),
             labels=rng.integers(0, 10, 100))


def _table_row(markdown, row):
  return next(line for line in markdown.splitlines() if line.startswith(f'| {row} |'))


def test_aggregate_tables_and_plots(tmp_path):
  root, out = tmp_path / 'runs', tmp_path / 'docs'
  fm = root / 'fashion_mnist_250'
  # Mean Teacher: 'auto' reports the teacher; 2 single-seed jobs -> 79.00 +- 1.00 (ddof 0).
  fake_run(str(fm / 'mean_teacher' / 'seed0'), student=(0.1,), teacher=(0.78,))
  fake_run(str(fm / 'mean_teacher' / 'seed1'), student=(0.1,), teacher=(0.80,))
  # One job with num_runs = 2 counts as 2 seeds.
  fake_run(str(fm / 'mean_teacher_alc' / 'seeds0-1'), alc=True, teacher=(0.80, 0.84),
           similarity=True)
  fake_run(str(fm / 'pi_model' / 'seed0'), method='pi_model', student=(0.815,), teacher=(0.2,))
  # A w2 sweep (Fig. 6): rows with a --grid suffix get no paper number.
  for w in (0.1, 1.0, 10.0):
    fake_run(str(root / 'svhn_500' / f'mean_teacher_alc--alc.weight={w:g}' / 'seed0'), alc=True,
             dataset='svhn_cropped', num_labels=500, weight=w, teacher=(0.9 + w / 1000,))
  fake_run(str(root / 'cifar10_imbalanced' / 'mean_teacher_alc_soft_ratio15' / 'seed0'),
           alc=True, imbalance='soft', dataset='cifar10', num_labels=3000, ratio=15.0,
           teacher=(0.85,))
  fake_run(str(root / 'imagenet_1pct' / 'mean_teacher_alc' / 'seed0'), alc=True,
           dataset='imagenet_1pct', num_labels=12811, student=(0.17,), top5=(0.35,))
  fake_run(str(root / 'loose'), method='vat', dataset='cifar10', num_labels=4000)  # Off-layout.

  aggregate = _module('aggregate')
  assert aggregate.main(['--root', str(root), '--out', str(out)]) == 0
  markdown = (out / 'results.md').read_text()

  row = _table_row(markdown, 'mean_teacher')
  assert '| MeanTeacher | teacher | 79.00 ± 1.00 | 2 | 40 | 78.61 ± 0.14 | +0.39 |' in row
  row = _table_row(markdown, 'mean_teacher_alc')
  assert '| MeanTeacher + ALC | teacher | 82.00 ± 2.00 | 2 |' in row and '80.14 ± 0.30' in row
  assert '| Π model | student | 81.50 ± 0.00 | 1 |' in _table_row(markdown, 'pi_model')
  assert '## cifar10_imbalanced (1:15) (paper: Table 6)' in markdown
  row = _table_row(markdown, 'mean_teacher_alc_soft')
  assert 'MeanTeacher + ALC (soft)' in row and '| 86.69 | -1.69 |' in row
  row = next(line for line in markdown.splitlines() if 'mean_teacher_alc--alc.weight=10' in line)
  assert '| — | — |' in row
  assert '35.00 ± 0.00 | 34.77 |' in markdown  # ImageNet top-5 beside the paper's.
  assert '## cifar10_4000' in markdown and '| VAT |' in markdown  # Filed by data set + labels.
  assert 'Host: not recorded (before 2026-12-03), every job.' in markdown  # fake_run has no cpu.
  # The attention diagnostics of the ALC rows: the last logged values (fake_run logs 0.3, 3, 0.1).
  section = markdown[markdown.index('## fashion_mnist_250'):]
  section = section[:section.index('\n## ')]
  diagnostics = section[section.index('Attention diagnostics'):]
  assert _table_row(diagnostics, 'mean_teacher_alc').startswith(
      '| mean_teacher_alc | 0.3 | — | 3 | 0.1 | — |')
  assert '| mean_teacher |' not in diagnostics and '| pi_model |' not in diagnostics
  # Rows in the paper's order.
  assert markdown.index('| mean_teacher |') < markdown.index('| mean_teacher_alc |') < \
      markdown.index('| pi_model |')

  for name in ('curves_fashion_mnist_250.png', 'attention_fashion_mnist_250.png',
               'similarity_fashion_mnist_250.png', 'w2_svhn_500_mean_teacher_alc.png',
               'curves_cifar10_imbalanced_1_15.png'):
    assert (out / name).stat().st_size > 1000, name
    assert f'({name})' in markdown


def test_aggregate_empty_root_and_broken_results(tmp_path, capsys):
  (tmp_path / 'x' / 'y' / 'seed0').mkdir(parents=True)
  (tmp_path / 'x' / 'y' / 'seed0' / 'results.json').write_text('{"trunc')
  # Checkpoint folders are not searched (orbax's files, never a run's results).
  (tmp_path / 'x' / 'y' / 'seed0' / 'checkpoints' / '20').mkdir(parents=True)
  (tmp_path / 'x' / 'y' / 'seed0' / 'checkpoints' / '20' / 'results.json').write_text('{')
  markdown = _module('aggregate').aggregate(str(tmp_path), str(tmp_path / 'out'))
  assert 'No results.json found.' in markdown
  skipped = capsys.readouterr().err
  assert 'seed0/results.json' in skipped and 'checkpoints' not in skipped


def test_aggregate_keeps_a_study_s_parts_apart_and_pairs_no_seed_held_twice(tmp_path, capsys):
  """labels40/ and labels100/ of one study were one row of n = 6 whose pairs overwrote each
  other; seed0-2 beside seed0 counted seed 0 twice."""
  root, aggregate = tmp_path / 'Q', _module('aggregate')
  for part, accuracy in (('labels40', 0.6), ('labels100', 0.8)):
    fake_run(str(root / part / 'fashion_mnist_cpu' / 'supervised' / 'seed0-2'),
             method='supervised', student=(accuracy,) * 3, seeds=[0, 1, 2])
  runs = aggregate.load_runs(str(root))
  assert sorted(r.experiment for r in runs) == ['labels100/fashion_mnist_cpu',
                                               'labels40/fashion_mnist_cpu']
  assert sorted(len(rows['supervised']) for rows in aggregate.group(runs).values()) == [1, 1]
  fake_run(str(root / 'labels40' / 'fashion_mnist_cpu' / 'mean_teacher' / 'seed0-2'),
           student=(0.7,) * 3, seeds=[0, 1, 2])
  fake_run(str(root / 'labels40' / 'fashion_mnist_cpu' / 'supervised' / 'seed0'),
           method='supervised', student=(0.5,), seeds=[0])
  assert aggregate.main(['--root', str(root), '--out', str(tmp_path / 'out')]) == 0
  assert re.search(r'not paired: .* both hold seed 0 on label split 0 of row .supervised.',
                   capsys.readouterr().err)
  markdown = (tmp_path / 'out' / 'results.md').read_text()
  assert 'minus supervised' not in markdown.split('labels40/fashion_mnist_cpu')[1]


def test_aggregate_names_the_models_a_run_has_when_metric_asks_another(tmp_path):
  workdir = tmp_path / 'fashion_mnist_250' / 'supervised' / 'seed0'
  _write_results(str(workdir), method='supervised', models=['student'],
                 final={'student_accuracy': [0.7]})
  with pytest.raises(ValueError, match=r'has no teacher model \(it evaluated student\): use '
                                       r'--metric auto'):
    _module('aggregate')._load_run(str(tmp_path), str(workdir), 'teacher', 'final')


def test_mean_curve_averages_the_steps_every_run_logged_by_epoch(tmp_path):
  aggregate = _module('aggregate')
  runs = []
  for name, logged in (('a', [(10, 1.0), (20, 2.0), (30, 3.0)]), ('b', [(10, 3.0), (30, 5.0)])):
    (tmp_path / name).mkdir()
    with open(tmp_path / name / 'metrics.jsonl', 'w', encoding='utf-8') as f:
      for step, value in logged:
        f.write(json.dumps({'step': step, 'eval/student_accuracy': value}) + '\n')
        f.write(json.dumps({'step': step, 'losses/total': 0.5}) + '\n')
    runs.append(aggregate.Run('e', 's', name, name, str(tmp_path / name),
                              {'steps_per_epoch': 10}, None, None, 'student'))
  epochs, mean = aggregate.mean_curve(runs, 'eval/student_accuracy')
  np.testing.assert_array_equal(epochs, [1.0, 3.0])  # Step 20: only run a logged it.
  np.testing.assert_array_equal(mean, [2.0, 4.0])


def test_aggregate_per_class_accuracy_ranks_each_runs_classes_by_its_labels(tmp_path):
  """Imbalanced splits draw which classes are large per run: each run's classes are ranked by
  its own labeled shares (r of Eq. 14) before averaging; balanced splits get no such table."""
  root = tmp_path / 'runs'
  prior = [[0.4, 0.1, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4]]
  accuracy = [[0.9, 0.5, 0.8, 0.7], [0.6, 0.7, 0.8, 1.0]]
  fake_run(str(root / 'fashion_mnist_imbalanced' / 'mean_teacher_ratio10' / 'seed0-1'),
           num_labels=1000, ratio=10.0, teacher=(0.7, 0.8), per_class=accuracy, prior=prior)
  fake_run(str(root / 'fashion_mnist_250' / 'mean_teacher' / 'seed0'), teacher=(0.7,),
           per_class=[[0.9, 0.5, 0.8, 0.7]], prior=[[0.25] * 4])
  aggregate = _module('aggregate')
  markdown = aggregate.aggregate(str(root), str(tmp_path / 'out'))
  # NumPy reference: run 0 ranks to (90, 80, 70, 50), run 1 to (100, 80, 70, 60).
  ranked = np.array([[90, 80, 70, 50], [100, 80, 70, 60]], float)
  want = [ranked[:, 0], ranked[:, -1], ranked[:, :2].mean(1), ranked[:, 2:].mean(1),
          ranked.mean(1)]
  row = _table_row(markdown[markdown.index('Per-class accuracy'):], 'mean_teacher')
  assert row == '| mean_teacher | 2 | ' + ' | '.join(
      f'{np.mean(c):.2f} ± {np.std(c):.2f}' for c in want) + ' |'
  assert markdown.count('Per-class accuracy') == 1  # Not for the balanced split.
  assert (tmp_path / 'out' / 'per_class_fashion_mnist_imbalanced_1_10.png').stat().st_size > 1000


def test_aggregate_reads_the_model_each_run_names():
  """'auto' reads results.json's reported_model; --metric ema reads FixMatch's EMA, which runs
  before 2026-12-05 recorded as 'teacher'."""
  aggregate = _module('aggregate')
  new_fixmatch = {'method': 'fixmatch', 'models': ['student', 'ema'], 'reported_model': 'ema'}
  old_fixmatch = {'method': 'fixmatch', 'models': ['student', 'teacher'],
                  'reported_model': 'teacher'}
  assert aggregate.read_model(new_fixmatch, 'auto') == 'ema'
  assert aggregate.read_model(new_fixmatch, 'ema') == 'ema'
  assert aggregate.read_model(old_fixmatch, 'ema') == 'teacher'
  assert aggregate.read_model(old_fixmatch, 'student') == 'student'
  # Before results.json named its models: Mean Teacher's teacher, where it was evaluated.
  assert aggregate.read_model({'method': 'mean_teacher', 'final': {'teacher_accuracy': [0.5]}},
                              'auto') == 'teacher'


def test_aggregate_pairs_rows_by_seed_against_the_reference_rows(tmp_path):
  """Differences are taken per (seed, split seed) that both rows ran, never across splits."""
  exp = tmp_path / 'runs' / 'fashion_mnist_imbalanced'
  rng = np.random.default_rng(0)
  prior = rng.dirichlet(np.ones(4), size=3)
  mt_class, soft_class = rng.random((3, 4)), rng.random((3, 4))
  fake_run(str(exp / 'mean_teacher_ratio10' / 'seed0-2'), ratio=10.0, teacher=(0.70, 0.72, 0.74),
           per_class=mt_class.tolist(), prior=prior.tolist(), seeds=(0, 1, 2))
  # Seeds 1-2 only, in a different order: pairs (1, 1) and (2, 2), not run index 0 with 0.
  fake_run(str(exp / 'mean_teacher_alc_soft_ratio10' / 'seed2-1'), ratio=10.0, alc=True,
           teacher=(0.80, 0.75), per_class=soft_class[[2, 1]].tolist(),
           prior=prior[[2, 1]].tolist(), seeds=(2, 1))
  # Seed 0 on another label split (another phase's root): no Mean Teacher run to pair with.
  fake_run(str(tmp_path / 'runs' / 'other_split' / 'fashion_mnist_imbalanced' /
               'mean_teacher_alc_soft_ratio10' / 'seed0'), ratio=10.0, alc=True, teacher=(0.1,),
           per_class=soft_class[[0]].tolist(), prior=prior[[0]].tolist(), seeds=(0,),
           split_seeds=(7,))
  fake_run(str(exp / 'supervised_ratio10' / 'seed0'), method='supervised', ratio=10.0,
           student=(0.9,))  # No seeds in its results.json: cannot be paired.
  markdown = _module('aggregate').aggregate(str(tmp_path / 'runs'), str(tmp_path / 'out'))
  section = markdown[markdown.index('each row minus mean_teacher'):]
  # NumPy reference: rank each run's classes by its prior (most labels first), halves of 2.
  order = np.argsort(-prior, axis=1)
  ranked = lambda acc, i: 100 * acc[i][order[i]]
  want_all = [75.0 - 72.0, 80.0 - 74.0]  # seeds 1, 2
  want_halves = [[ranked(soft_class, i)[part].mean() - ranked(mt_class, i)[part].mean()
                  for i in (1, 2)] for part in (slice(0, 2), slice(2, 4))]
  def cell(d):  # Mean, 95 % t interval (t_0.975,1 = 12.706), each pair.
    half = 12.706 * np.std(d, ddof=1) / np.sqrt(len(d))
    return (f'{np.mean(d):+.2f} [{np.mean(d) - half:+.2f}, {np.mean(d) + half:+.2f}] ('
            + ', '.join(f'{x:+.2f}' for x in d) + ')')
  assert _table_row(section, 'mean_teacher_alc_soft') == (
      '| mean_teacher_alc_soft | 2 | ' + ' | '.join(
          cell(d) for d in [want_all] + want_halves) + ' |')
  assert '| supervised |' not in section.split('\n\n')[1]
  assert 'minus supervised' not in markdown and 'minus pi_model' not in markdown


def test_aggregate_names_the_hosts_the_jobs_ran_on(tmp_path):
  exp = tmp_path / 'runs' / 'fashion_mnist_250'
  zen4 = {'platform': 'cpu', 'cpu': 'AMD EPYC (family 25 model 17)', 'cpu_isa': 'avx512f'}
  zen3 = {'platform': 'cpu', 'cpu': 'AMD EPYC (family 25 model 1)', 'cpu_isa': 'avx2'}
  fields = {'supervised': zen4,  # Top-level fields only (no hosts list).
            'mean_teacher': {**zen3, 'hosts': [{'from_step': 0, **zen3}]},
            'vat': {**zen3, 'hosts': [{'from_step': 0, **zen4}, {'from_step': 600, **zen3}]},
            'fixmatch': {**zen3, 'platform': 'gpu', 'device_kind': 'NVIDIA H100'},
            'pi_model': {}}  # Before hosts were recorded.
  for row, extra in fields.items():
    workdir = exp / row / 'seed0'
    fake_run(str(workdir), method=row, student=(0.7,))
    results = json.loads((workdir / 'results.json').read_text())
    (workdir / 'results.json').write_text(json.dumps({**results, **extra}))
  markdown = _module('aggregate').aggregate(str(tmp_path / 'runs'), str(tmp_path / 'out'))
  assert ('Hosts (jobs on different hosts are not bitwise comparable): '
          'AMD EPYC (family 25 model 1), avx2: mean_teacher; '
          'AMD EPYC (family 25 model 17), avx512f: supervised; '
          'AMD EPYC (family 25 model 17), avx512f then AMD EPYC (family 25 model 1), avx2: vat; '
          'gpu NVIDIA H100: fixmatch; '
          'not recorded (before 2026-12-03): pi_model.') in markdown


def test_paired_cells_give_the_95_percent_t_interval_of_the_mean_difference():
  """Hand-computed: differences (1, 2, 3) have mean 2, sd 1, so 2 ± 4.303 / √3 = 2 ± 2.484;
  (1, 3) have sd √2, so 2 ± 12.706 · √2 / √2 = 2 ± 12.706; one pair has no interval."""
  aggregate = _module('aggregate')
  assert aggregate._paired_cell([1.0, 2.0, 3.0]) == '+2.00 [-0.48, +4.48] (+1.00, +2.00, +3.00)'
  assert aggregate._paired_cell([1.0, 3.0]) == '+2.00 [-10.71, +14.71] (+1.00, +3.00)'
  assert aggregate._paired_cell([0.5]) == '+0.50 (+0.50)'
  # Phase F's MT + ALC - Mean Teacher on splits 0-4 (docs/results.md, section 7): n = 5,
  # t_0.975,4 = 2.776, sd (ddof 1) 0.688 -> +0.058 ± 0.855.
  mean, low, high = aggregate.paired_interval([-0.29, +0.24, +0.31, +0.93, -0.90])
  np.testing.assert_allclose([mean, low, high], [0.058, -0.797, 0.913], atol=2e-3)
  mean, low, high = aggregate.paired_interval([1.0, 2.0, 3.0], confidence=0.9)  # t_0.95,2 = 2.920
  np.testing.assert_allclose([low, high], [2 - 2.920 / np.sqrt(3), 2 + 2.920 / np.sqrt(3)],
                             atol=1e-3)


def test_monitor_plot_keeps_each_rows_colour_on_every_panel(tmp_path, monkeypatch):
  """Table 9's attention-free rows log no logit spread: the ALC row after them must keep its
  colour on that panel, not take the first row's."""
  exp = tmp_path / 'runs' / 'similarity_fashion_mnist'
  for row in ('sample', 'alc'):
    fake_run(str(exp / row / 'seed0'), alc=True)
  with open(exp / 'alc' / 'seed0' / 'metrics.jsonl', 'a', encoding='utf-8') as f:
    for step in (100, 200, 300, 400):
      f.write(json.dumps({'step': step, 'monitors/attention_logit_spread': 3.0}) + '\n')
  aggregate = _module('aggregate')
  saved = {}
  monkeypatch.setattr(aggregate, '_save', lambda plt, fig, out, name: saved.setdefault(name, [
      {line.get_label(): line.get_color() for line in ax.get_lines()} for ax in fig.axes]))
  aggregate.aggregate(str(tmp_path / 'runs'), str(tmp_path / 'out'))
  diagonal, *_, spread = saved['attention_similarity_fashion_mnist.png'][:len(aggregate.MONITORS)]
  assert set(diagonal) == {'sample', 'alc'} and set(spread) == {'alc'}
  assert spread['alc'] == diagonal['alc'] != diagonal['sample']


def test_w2_groups_keep_other_grid_values_apart(tmp_path):
  fm = tmp_path / 'fashion_mnist_250'
  fake_run(str(fm / 'mean_teacher_alc' / 'seed0'), alc=True, weight=1.0, teacher=(0.60,))
  for w in (0.1, 1e-05):
    fake_run(str(fm / f'mean_teacher_alc--alc.weight={w:g}' / 'seed0'), alc=True, weight=w,
             teacher=(0.70,))
  # Same w2 = 1 as the first run, but p = probabilities: a different curve, not a third seed.
  fake_run(str(fm / 'mean_teacher_alc--alc.outputs=probs' / 'seed0'), alc=True, weight=1.0,
           teacher=(0.20,))
  fake_run(str(fm / 'mean_teacher' / 'seed0'), teacher=(0.5,))  # No ALC: no w2.
  aggregate = _module('aggregate')
  groups = aggregate.w2_groups(aggregate.load_runs(str(tmp_path)))
  assert list(groups) == [('fashion_mnist_250', 'mean_teacher_alc')]
  by_weight = groups[('fashion_mnist_250', 'mean_teacher_alc')]
  assert sorted(by_weight) == [1e-05, 0.1, 1.0]
  np.testing.assert_allclose(np.concatenate(by_weight[1.0]), [60.0])


def test_aggregate_reports_the_validation_split_when_asked(tmp_path, capsys):
  fm = tmp_path / 'runs' / 'fashion_mnist_250'
  fake_run(str(fm / 'mean_teacher' / 'seed0-1'), teacher=(0.9, 0.9), validation=(0.70, 0.74))
  fake_run(str(fm / 'mean_teacher_alc@cosine' / 'seed0-1'), alc=True, teacher=(0.9, 0.9),
           validation=(0.80, 0.80))
  aggregate = _module('aggregate')
  markdown = aggregate.aggregate(str(tmp_path / 'runs'), str(tmp_path / 'out'), split='validation')
  assert markdown.count('Validation accuracy at the final evaluation') == 1
  assert '| MeanTeacher | teacher | 72.00 ± 2.00 | 2 |' in _table_row(markdown, 'mean_teacher')
  assert '80.00 ± 0.00' in _table_row(markdown, 'mean_teacher_alc@cosine')
  fake_run(str(fm / 'pi_model' / 'seed0'), method='pi_model')  # Trained without a validation split.
  runs = aggregate.load_runs(str(tmp_path / 'runs'), split='validation')
  assert sorted(r.name for r in runs) == ['mean_teacher', 'mean_teacher_alc@cosine']
  assert 'validation_size > 0' in capsys.readouterr().err  # Skipped, and told why.


def test_budget_curve_joins_rows_across_roots_and_plots(tmp_path, capsys):
  short, long_ = tmp_path / 'short' / 'fashion_mnist_250', tmp_path / 'long' / 'fashion_mnist_250'
  fake_run(str(short / 'supervised' / 'seed0-1'), method='supervised', validation=(0.70, 0.72))
  fake_run(str(short / 'mean_teacher--supervised_normalization=labeled' / 'seed0-1'),
           validation=(0.60, 0.62))
  fake_run(str(long_ / 'supervised' / 'seed0-1'), method='supervised', validation=(0.74, 0.74))
  fake_run(str(long_ / 'mean_teacher' / 'seed0-1'), validation=(0.80, 0.76))
  path = long_ / 'mean_teacher' / 'seed0-1' / 'results.json'  # 4x the budget.
  results = json.loads(path.read_text())
  results['epochs'] = 160.0
  results['final']['validation_student_accuracy'] = [0.70, 0.68]  # The teacher's stays 80, 76.
  path.write_text(json.dumps(results))
  out = tmp_path / 'curve.png'
  plot = _module('plot_budget_curve')
  plot.main([
      '--roots', f'{tmp_path / "short"},{tmp_path / "long"}', '--split', 'validation',
      '--rows', 'supervised,mean_teacher--supervised_normalization=labeled|mean_teacher,'
                'mean_teacher:student', '--out', str(out)])
  table = capsys.readouterr().out
  assert '| Row (validation accuracy, %) | 40.0 epochs | 160.0 epochs |' in table
  # Supervised's 'long' run also trained 40 epochs: pooled with the short one, 4 seeds.
  assert '| Supervised | 72.50 ± 1.66 (n=4) | not run |' in table
  assert '| MeanTeacher | 61.00 ± 1.00 (n=2) | 78.00 ± 2.00 (n=2) |' in table  # Its teacher.
  assert '| MeanTeacher (student) | not run | 69.00 ± 1.00 (n=2) |' in table
  assert out.stat().st_size > 1000
  with pytest.raises(SystemExit):
    plot.main(['--roots', str(tmp_path / 'long'), '--rows', 'mean_teacher:best', '--out', str(out)])
  assert "the model after ':' is 'student', 'teacher' or 'ema', not 'best'" in (
      capsys.readouterr().err)


# --- alc_study.sh -------------------------------------------------------------------------------

@pytest.mark.parametrize('phase,expect', [
    ('A', ['A/fashion_mnist_250/mean_teacher--supervised_normalization=batch/seed0-2',
           '--config.dataset.validation_size=5000', '--config.dataset.split_seed=100']),
    ('B', ['fashion_mnist_250.py:mean_teacher_alc@decoupled', '--config.num_train_steps=1200']),
    ('C', ['C/fashion_mnist_250/mean_teacher_alc@cosine--alc.weight=100/seed0-2']),
    ('D', ['fashion_mnist_cpu.py:mean_teacher_alc@decoupled --workdir=', '--config.num_runs=3',
           'D/fashion_mnist_cpu/mean_teacher_alc@cosine/seed0-2']),
    ('E', ['E/fashion_mnist_250/supervised/seed0-2', '--config.num_train_steps=4800 ',
           '--config.consistency_rampup_epochs=2 ', 'mean_teacher_alc@decoupled']),
    ('F', ['F/fashion_mnist_cpu/mean_teacher_alc@cosine/seed0-2', '--config.num_train_steps=4800 ',
           'fashion_mnist_cpu.py:supervised --workdir=']),
    ('G', ['G/fashion_mnist_250/mean_teacher_alc@decoupled--alc.weight=3/seed0-2',
           '--config.num_train_steps=4800 ', '--config.dataset.split_seed=100'])])
def test_alc_study_phases_select_on_validation_and_test_the_main_job(tmp_path, phase, expect):
  """Selection phases (A-C, E) hold out the shared validation split; D is the main job's config.
  E is the learning curve's next budget (4x the steps, the ramp-up scaled with them); F tests the
  main job's config at E's budget."""
  env = dict(os.environ, DRY_RUN='1', PYTHON=sys.executable, ROOT=str(tmp_path))
  out = subprocess.run(['bash', os.path.join(LAUNCH, 'alc_study.sh'), phase], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  for text in expect:
    assert text in out.stdout, (text, out.stdout[-3000:])
  assert ('validation_size' in out.stdout) == (phase not in ('D', 'F'))


def test_regime_study_test_phase_trains_the_main_job_on_fresh_splits(tmp_path):
  """Phase T: the chosen protocol's config on splits 0-4, then 5-9 of every row (>= 10 splits for
  the ALC comparisons), the test set (no validation hold-out)."""
  env = dict(os.environ, DRY_RUN='1', PYTHON=sys.executable, ROOT=str(tmp_path))
  out = subprocess.run(['bash', os.path.join(LAUNCH, 'regime_study.sh'), 'T'], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  jobs = re.findall(r'T/fashion_mnist_100_cpu/(\S+)/seed(\d)-(\d)\n', out.stdout)
  rows = ('supervised', 'fixmatch', 'mean_teacher', 'mean_teacher_alc', 'fixmatch_alc')
  assert sorted(jobs) == sorted(
      (row, a, b) for row in rows for a, b in (('0', '4'), ('5', '9'))), out.stdout
  assert 'validation_size' not in out.stdout and '--config.num_runs=5' in out.stdout


def test_regime_study_width_phase_and_grid_values(tmp_path):
  """Phase QW: phase Q's cell (100 labels, 1200 steps, validation) with CNN-13 at 1/8 width (the
  width override comes after the protocol's 1/16, so it is the one that applies); GRID values."""
  env = dict(os.environ, DRY_RUN='1', PYTHON=sys.executable, ROOT=str(tmp_path))
  out = subprocess.run(['bash', os.path.join(LAUNCH, 'regime_study.sh'), 'QW'], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  commands = [line for line in out.stdout.splitlines() if 'alc_jax.main' in line]
  rows = re.findall(r'QW/labels100/fashion_mnist_250/(\S+)/seed0-2 ', out.stdout)
  assert sorted(rows) == ['fixmatch', 'mean_teacher', 'supervised'], out.stdout
  for command in commands:
    assert '--config.num_train_steps=1200 ' in command, command
    assert command.rstrip().endswith('--config.model.width=0.125'), command
    assert '--config.dataset.validation_size=5000 --config.dataset.split_seed=100' in command
  # GRID runs a row at each value, in its own workdir (FixMatch's EMA decays of phase Q).
  env.update(GRID='config.fixmatch.ema_decay=0.99,0.97', ROWS='fixmatch', LABELS='100')
  out = subprocess.run(['bash', os.path.join(LAUNCH, 'regime_study.sh'), 'Q'], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  for decay in ('0.99', '0.97'):
    assert (f'Q/labels100/fashion_mnist_250/fixmatch--fixmatch.ema_decay={decay}/seed0-2 '
            f'--config.seed=0') in out.stdout, out.stdout
    assert f'--config.fixmatch.ema_decay={decay}' in out.stdout


# --- paper_tables_study.sh -----------------------------------------------------------------------

def _paper_tables_dry_run(tmp_path, phase, **env):
  """The jobs `paper_tables_study.sh PHASE` would run (DRY_RUN=1), checked to exit 0."""
  env = dict(os.environ, DRY_RUN='1', PYTHON=sys.executable, ROOT=str(tmp_path), **env)
  out = subprocess.run(['bash', os.path.join(LAUNCH, 'paper_tables_study.sh'), phase], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return out


@pytest.mark.parametrize('phase,expect', [
    ('T7', ['T7/fashion_mnist_imbalanced/mean_teacher_alc_soft_ratio10/seed0-2',
            'fashion_mnist_imbalanced.py:supervised,10']),
    ('T7B', ['pi_model_alc_hard_ratio10/seed0-2']),
    ('T7C', ['mean_teacher_ratio5/seed0-2', 'supervised_ratio15/seed0-2']),
    ('T2', ['T2/fashion_mnist_500/sntg/seed0-2', 'fashion_mnist_250.py:vat_entmin']),
    ('T2B', ['T2B/fashion_mnist_500/mean_teacher_alc/seed0-2', 'fashion_mnist_500.py:supervised']),
    ('T8', ['T8/ablation_fashion_mnist/c/seed0-2']),
    ('T9', ['T9/similarity_fashion_mnist/gmp_avg/seed0-2'])])
def test_paper_tables_phases_use_the_final_protocol(tmp_path, phase, expect):
  """Every phase runs phase F's protocol: 4800 steps at 1/16 width, 3 seeds per job, the test
  set (no validation hold-out, the split seed left to each run)."""
  out = _paper_tables_dry_run(tmp_path, phase)
  for text in expect + ['--config.num_train_steps=4800 ', '--config.model.width=0.0625 ',
                        '--config.consistency_rampup_epochs=2 ', '--config.num_runs=3 ']:
    assert text in out.stdout, (text, out.stdout[-3000:])
  assert 'validation_size' not in out.stdout and 'split_seed' not in out.stdout


def test_paper_tables_t7b_runs_the_other_ratios_with_two_seeds(tmp_path):
  """RATIOS and SEEDS reach T7B: the 1:5 and 1:15 cells the issue allows at 2 seeds."""
  out = _paper_tables_dry_run(tmp_path, 'T7B', RATIOS='15,5', SEEDS='0,1', ROWS='pi_model')
  assert '2 jobs: 2 to run' in out.stdout, out.stdout[-3000:]
  for text in ['pi_model_ratio15/seed0-1', 'pi_model_ratio5/seed0-1', '--config.num_runs=2 ',
               'fashion_mnist_imbalanced.py:pi_model,15']:
    assert text in out.stdout, (text, out.stdout[-3000:])
  assert out.stdout.index('ratio15') < out.stdout.index('ratio5/'), 'RATIOS order is kept'
  assert 'ratio10' not in out.stdout


# --- alc_stability_probe.py ---------------------------------------------------------------------

@pytest.mark.parametrize('reported', ['student', 'teacher'])
def test_stability_probe_reads_the_accuracy_of_the_model_the_method_reports(tmp_path, reported):
  """Π + ALC has no teacher: its row read the teacher's accuracy, and showed none."""
  (tmp_path / 'probe_status.json').write_text(
      json.dumps({'diverged': False, 'wall_s': 1.0, 'message': ''}))
  (tmp_path / 'metrics.jsonl').write_text(json.dumps(
      {'step': 10, 'monitors/attention_logit_spread': 0.5}) + '\n')
  summary = {'student_accuracy_mean': 61.5, 'teacher_accuracy_mean': 70.25}
  (tmp_path / 'results.json').write_text(json.dumps(
      {'reported_model': reported, 'summary': summary}))
  case = _module('alc_stability_probe').summarize_case('pi_model_alc', 0.25, str(tmp_path))
  assert case['accuracy'] == summary[f'{reported}_accuracy_mean']
  assert case['last_step'] == 10 and case['max_spread'] == 0.5


def test_stability_probe_reports_spread_and_catches_a_diverging_row(tiny_npz, tmp_path):
  """Two tiny cases: a stable one, and one made to diverge (lr 1e6): exit 1 names the latter."""
  probe = os.path.join(LAUNCH, 'alc_stability_probe.py')
  common = ['--widths', '0.0625', '--steps', '20', '--root', str(tmp_path),
            '--override', 'config.model.name=tiny_cnn', '--override', 'config.tensorboard=False',
            '--override', 'config.dataset.name=npz',
            '--override', f'config.dataset.path={tiny_npz}',
            '--override', 'config.dataset.num_labels=40', '--override', 'config.batch_size=16',
            '--override', 'config.labeled_batch_size=4', '--override', 'config.eval_batch_size=48']
  run = lambda *extra: subprocess.run([sys.executable, probe, *common, *extra], cwd=ROOT,
                                      capture_output=True, text=True, timeout=600)
  ok = run('--rows', 'mean_teacher_alc')
  assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
  table = (tmp_path / 'probe.md').read_text()
  assert '| mean_teacher_alc | 0.0625 | no | 20 |' in table
  assert (tmp_path / 'probe_spread.png').stat().st_size > 1000
  bad = run('--rows', 'pi_model_alc', '--override', 'config.learning_rate=1e6')
  assert bad.returncode == 1, bad.stdout[-2000:] + bad.stderr[-2000:]
  assert 'FAILED: pi_model_alc at width 0.0625:' in bad.stdout
  assert 'non-finite value at step' in bad.stdout
  assert '| pi_model_alc | 0.0625 | **hit** |' in (tmp_path / 'probe.md').read_text()
  again = run('--rows', 'mean_teacher_alc')  # Finished cases are not trained again.
  assert again.returncode == 0 and '[probe] mean_teacher_alc' not in again.stdout
