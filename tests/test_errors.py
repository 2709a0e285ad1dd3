"""Mistakes a user can fix, answered in one line by main.run; Ctrl-C; full disks; bad data.

In-process and fast. The command-line versions (a real double launch, Ctrl-C, a full tmpfs, 8x8
images through CNN-13) are in test_reliability.py.
"""

import errno
import os
import signal
import subprocess
import sys
import types

from absl import app
import numpy as np
import pytest
from PIL import Image

from alc_jax import (checkpointing, config_lib, cpu_setup, inference, main, models, train,
                     workdir_lock)
from alc_jax.data import datasets
from alc_jax.data import DataError, DataFileNotFoundError
from configs import common, fashion_mnist_cpu
from tests.conftest import ROOT, make_tiny_images, tiny_config


def _exit_message(monkeypatch, error):
  def fail(config, workdir):
    del config, workdir
    raise error
  monkeypatch.setattr(train, 'train_and_evaluate', fail)
  with pytest.raises(SystemExit) as e:
    main.run(None, '/nowhere')
  return str(e.value.code)


@pytest.mark.parametrize('error,prefix', [
    (DataError('x.npz: y_test has label 7'), 'Data error: x.npz: y_test has label 7'),
    (DataFileNotFoundError('no such file'), 'Data error: no such file'),
    (workdir_lock.WorkdirInUse('/w is in use'), 'Workdir in use: /w is in use'),
    (checkpointing.CheckpointMismatch('the checkpoint /w/3 holds another train state'),
     'Checkpoint error: the checkpoint /w/3 holds another train state'),
])
def test_fixable_errors_exit_with_one_line(monkeypatch, error, prefix):
  message = _exit_message(monkeypatch, error)
  assert message == prefix and '\n' not in message


def test_a_stray_argument_is_a_usage_error_before_anything_runs(monkeypatch):
  """`python -m alc_jax.main configs/smoke.py` (no --config=), or a stray argument to a tool."""
  ran = []
  monkeypatch.setattr(cpu_setup, 'configure', lambda: ran.append('cpu set-up'))
  with pytest.raises(app.UsageError, match=r"arguments: \['configs/smoke.py'\]"):
    main.main(['alc_jax.main', 'configs/smoke.py'])
  with pytest.raises(app.UsageError, match=r"arguments: \['photos/'\]"):
    inference.run_tool(['alc_jax.predict', 'photos/'], lambda: ran.append('tool'))
  assert not ran


def _main(monkeypatch, *args):
  """alc_jax.main's `main` after absl parsed `args`, with the training replaced: what it did, in
  order (the CPU set-up, jax.distributed, the log level, the run)."""
  calls = []
  monkeypatch.setattr(cpu_setup, 'configure', lambda: calls.append('cpu set-up'))
  monkeypatch.setattr(main.jax.distributed, 'initialize', lambda: calls.append('distributed'))
  monkeypatch.setattr(main.logging, 'set_verbosity', lambda level: calls.append(level))
  monkeypatch.setattr(main.tfds_data, 'tf_cpu_only', lambda: None)
  monkeypatch.setattr(main, 'run', lambda config, workdir: calls.append(('run', workdir)) or 0)
  try:
    main.FLAGS(['alc_jax.main', f'--config={ROOT}/configs/smoke.py', '--workdir=/w', *args])
    with pytest.raises(SystemExit) as e:
      main.main(['alc_jax.main'])
  finally:
    main.FLAGS.unparse_flags()
  assert e.value.code == 0
  return calls


# ml_collections' config flag loads the config file by importlib's deprecated load_module (as
# every `python -m alc_jax.main` does, where Python does not show DeprecationWarnings).
@pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')
def test_main_starts_jax_distributed_when_asked_after_the_cpu_set_up(monkeypatch):
  warning = main.logging.WARNING  # Orbax's INFO lines off unless the user asks (-v 0).
  assert _main(monkeypatch) == ['cpu set-up', warning, ('run', '/w')]
  assert _main(monkeypatch, '--multihost') == ['cpu set-up', warning, 'distributed',
                                               ('run', '/w')]
  assert _main(monkeypatch, '--verbosity=0') == ['cpu set-up', ('run', '/w')]


def test_the_inference_tools_run_on_the_cpu_set_up(monkeypatch):
  calls = []
  monkeypatch.setattr(cpu_setup, 'configure', lambda: calls.append('cpu set-up'))
  monkeypatch.setattr(inference, 'jax', types.SimpleNamespace(config=types.SimpleNamespace(
      update=lambda *args: calls.append(args))))
  monkeypatch.setattr(inference.logging, 'set_verbosity', lambda level: None)
  inference.run_tool(['alc_jax.predict'], lambda *a, **k: calls.append(('tool', a, k)), 'w', run=1)
  assert calls == [('jax_platforms', 'cpu'), 'cpu set-up', ('tool', ('w',), {'run': 1})]


def test_ctrl_c_stops_an_inference_tool_with_one_line_and_130(monkeypatch, capsys):
  monkeypatch.setattr(inference, 'cli_setup', lambda: None)

  def interrupted():
    raise KeyboardInterrupt
  with pytest.raises(SystemExit) as e:
    inference.run_tool(['alc_jax.export'], interrupted)
  assert e.value.code == 130
  assert capsys.readouterr().err == ('Stopped by Ctrl-C: rerun the same command (any file '
                                     'already written is whole).\n')


def test_a_full_disk_exits_at_once_after_its_line(monkeypatch, capsys):
  def fail(config, workdir):
    raise checkpointing.DiskFullError(errno.ENOSPC, 'the disk of /w is full')
  def exit_now(status):  # os._exit: no clean-up for orbax's failed writers to log from.
    raise SystemExit(f'os._exit({status})')
  monkeypatch.setattr(train, 'train_and_evaluate', fail)
  monkeypatch.setattr(main.os, '_exit', exit_now)
  with pytest.raises(SystemExit, match=r'os._exit\(1\)'):
    main.run(None, '/nowhere')
  assert capsys.readouterr().err == '\nDisk full: the disk of /w is full\n'  # A line of its own.


def test_bugs_keep_their_traceback(monkeypatch):
  def fail(config, workdir):
    raise ZeroDivisionError('a bug')
  monkeypatch.setattr(train, 'train_and_evaluate', fail)
  with pytest.raises(ZeroDivisionError):
    main.run(None, '/nowhere')


@pytest.mark.parametrize('result,status', [({'preempted_at_step': 3, 'signal': 'SIGINT'}, 130),
                                           ({'preempted_at_step': 3, 'signal': 'SIGTERM'}, 0),
                                           ({'final': {}}, 0)])
def test_exit_status_after_ctrl_c_is_130(monkeypatch, result, status):
  monkeypatch.setattr(train, 'train_and_evaluate', lambda config, workdir: result)
  assert main.run(None, '/nowhere') == status


def test_a_second_ctrl_c_stops_at_once_with_130(monkeypatch, capsys):
  def interrupted(config, workdir):
    raise KeyboardInterrupt
  monkeypatch.setattr(train, 'train_and_evaluate', interrupted)
  assert main.run(None, '/nowhere') == 130
  assert 'Stopped at once by a second Ctrl-C' in capsys.readouterr().err


def test_ctrl_c_asks_for_a_checkpoint_then_the_second_interrupts(capsys):
  before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
  with train._Interruption() as interruption:
    assert not interruption.should_stop(1)
    signal.raise_signal(signal.SIGINT)
    assert interruption.should_stop(1) and interruption.signal == signal.SIGINT
    assert 'Ctrl-C: saving a checkpoint at the next step' in capsys.readouterr().out
    with pytest.raises(KeyboardInterrupt):
      signal.raise_signal(signal.SIGINT)
  assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
  with train._Interruption() as interruption:  # SIGTERM: one is enough, and no message.
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGTERM)
    assert interruption.signal == signal.SIGTERM


def test_a_job_of_several_processes_stops_where_jax_s_preemption_sync_point_says(monkeypatch):
  """In a multi-host job a scheduler signals every host, each at its own step: the processes
  stop at the one step JAX's preemption notifier agrees on (a local signal handler would stop
  them at different steps, and one would wait forever in the next collective). So no handler
  of ours is installed there. (A 2-process job preempted by SIGTERM, checked by hand on
  2026-12-05: both processes saved step 24 and exited 0.)"""
  monkeypatch.setattr(train.jax, 'process_count', lambda: 2)
  monkeypatch.setattr(train.multihost_utils, 'reached_preemption_sync_point',
                      lambda step: step == 7)
  before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
  with train._Interruption() as interruption:
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    interruption.signal = signal.SIGTERM  # Even had one been seen here.
    assert [step for step in range(1, 10) if interruption.should_stop(step)] == [7]


def test_disk_full_is_found_through_wrapping_errors():
  try:
    try:
      raise OSError(errno.ENOSPC, 'No space left on device')
    except OSError as inner:
      raise RuntimeError('orbax: async save failed') from inner
  except RuntimeError as outer:
    assert checkpointing.is_disk_full(outer)
  try:  # Raised while handling it (no `from`): found through __context__.
    try:
      raise OSError(errno.EDQUOT, 'quota')
    except OSError:
      raise RuntimeError('cleanup failed too')  # pylint: disable=raise-missing-from
  except RuntimeError as during:
    assert checkpointing.is_disk_full(during)
  assert checkpointing.is_disk_full(ValueError('write failed: No space left on device'))
  assert checkpointing.is_disk_full(RuntimeError('[Errno 122] Disk quota exceeded'))
  assert checkpointing.is_disk_full(OSError(errno.EDQUOT, 'quota'))
  assert not checkpointing.is_disk_full(OSError(errno.EACCES, 'permission denied'))
  assert not checkpointing.is_disk_full(KeyError('x'))


def test_a_checkpoint_without_room_is_refused_before_writing(tmp_path, monkeypatch):
  manager = checkpointing.Manager(str(tmp_path / 'ckpt'), 2)
  state = {'w': np.zeros((1024, 1024), np.float32)}  # 4 MiB.
  monkeypatch.setattr(checkpointing, 'free_bytes', lambda path: 3 * 2**20)
  with pytest.raises(checkpointing.DiskFullError) as e:
    manager.save(5, state)
  assert e.value.errno == errno.ENOSPC
  message = e.value.strerror
  assert f'the disk of {tmp_path / "ckpt"} is full (3.0 MiB free)' in message
  assert 'checkpoint of step 5, which needs about 5.0 MiB' in message and 'rerun' in message
  manager.wait()
  assert not [p for p in (tmp_path / 'ckpt').iterdir() if p.name.startswith('5')]


# --- Bad data ---------------------------------------------------------------------------------


def test_images_all_one_value_are_refused(tmp_path):
  path = tmp_path / 'blank.npz'
  x = np.zeros((20, 8, 8, 1), np.uint8)  # E.g. floats in [0, 1] cast to uint8.
  np.savez(path, x_train=x, y_train=np.arange(20) % 2, x_test=x[:4], y_test=np.arange(4) % 2)
  with pytest.raises(DataError, match='has the value 0 in every pixel') as e:
    datasets.load_dataset({'name': 'npz', 'path': str(path)})
  assert str(path) in str(e.value) and '* 255' in str(e.value)


def test_a_class_folder_without_images_is_refused(tmp_path):
  for split in ('train', 'test'):
    for name in ('cat', 'dog'):
      (tmp_path / split / name).mkdir(parents=True)
      if not (split == 'train' and name == 'dog'):
        Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / split / name / '0.png')
  with pytest.raises(DataError, match='dog holds no .png/.jpg/.jpeg image'):
    datasets.load_dataset({'name': 'folder', 'path': str(tmp_path)})


@pytest.mark.parametrize('name,size,smallest', [('cnn13', 8, 12), ('cnn13', 11, 12),
                                                ('wrn28_2', 1, 1), ('resnet18', 1, 1),
                                                ('tiny_cnn', 1, 2)])
def test_the_smallest_input_each_backbone_takes(name, size, smallest):
  backbone = models.create_model({'name': name, 'width': 0.0625}, 4)
  assert models.smallest_input_size(backbone, 1) == smallest
  assert (models.feature_shape(backbone, (size, size, 1)) is None) == (size < smallest)
  assert models.feature_shape(backbone, (smallest, smallest, 1)) is not None


def test_images_too_small_for_the_backbone_fail_before_compiling(tmp_path):
  x, y = make_tiny_images(64, 4, 8, np.random.default_rng(0))
  path = tmp_path / 'digits.npz'
  np.savez(path, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
  with pytest.raises(DataError) as e:
    train.create_experiment(tiny_config(str(path), **{'model.name': 'cnn13'}))
  message = str(e.value)
  assert '8x8 pixels, too small for' in message and "'cnn13'" in message
  assert 'at least 12x12' in message and 'wrn28_2' in message


def test_top5_on_five_classes_or_fewer_is_refused_before_compiling(tiny_npz):
  """Top-5 of <= 5 classes is 100 % by construction (fewer than 5: top_k fails while tracing)."""
  with pytest.raises(config_lib.ConfigError, match=r'eval_top5.*on 4 classes.*eval_top5=False'):
    train.create_experiment(tiny_config(tiny_npz, eval_top5=True))


@pytest.mark.parametrize('refused,fix', [
    ({'eval_top5': True}, {'eval_top5': False}),  # The config, refused once the data is read.
    ({'model.name': 'cnn13'}, {'model.name': 'tiny_cnn'}),  # Images too small for the backbone.
])
def test_a_set_up_refused_in_a_new_workdir_leaves_no_config_for_the_fix_to_clash_with(
    tmp_path, refused, fix):
  """The fix its message suggests, rerun in the same workdir, is not "a different config"."""
  x, y = make_tiny_images(64, 4, 8, np.random.default_rng(0))
  path = tmp_path / 'digits.npz'
  np.savez(path, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
  workdir = tmp_path / 'run'
  with pytest.raises((config_lib.ConfigError, DataError)):
    train.train_and_evaluate(tiny_config(str(path), **refused), str(workdir))
  assert not (workdir / 'config.json').exists(), 'the refused config was recorded'
  config_lib.check_workdir(tiny_config(str(path), **fix), str(workdir))


@pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')
@pytest.mark.parametrize('args,message', [
    (['--config.alc.logits=cosine'],
     'Config error: config.alc.logits is now config.alc.attention_logits: set '
     '--config.alc.attention_logits=... instead.'),
    (['--config.alc.enabeld=True'],
     "Config error: --config.alc.enabeld: config.alc has no field 'enabeld' (did you mean "
     'config.alc.enabled?)'),
    (['--config.seed.x=1'],
     'Config error: --config.seed.x: config.seed is a value (int), not a block of fields.'),
])
def test_a_config_override_naming_no_field_is_one_line(args, message):
  """ml_collections answers these with a 40-line traceback (AttributeError: "'logits'")."""
  try:
    with pytest.raises(SystemExit) as e:
      main.parse_flags(['alc_jax.main', f'--config={ROOT}/configs/smoke.py', '--workdir=/w',
                        *args])
  finally:
    main.FLAGS.unparse_flags()
  assert str(e.value.code) == message


@pytest.mark.parametrize('row,overrides,message', [
    ('fixmatch', {'ema_decay': 0.9},
     '--config.ema_decay would be ignored: FixMatch does not read it (its own settings: '
     'fixmatch.threshold, fixmatch.weight, fixmatch.ema_decay, fixmatch.num_ops). Did you mean '
     '--config.fixmatch.ema_decay? Or leave it out.'),
    ('mean_teacher', {'vat.epsilon': 2.0, 'alc.weight': 3.0},
     '--config.vat.epsilon, --config.alc.weight would be ignored: MeanTeacher does not read them '
     '(its own settings: consistency_weight, consistency_rampup_epochs, ema_decay, '
     'augment.noise_std). ALC is off: --config.alc.enabled=True turns it on. Or leave them out.'),
    ('vat', {'vat.xi': 1e-5},  # The exact power iteration has no finite difference.
     '--config.vat.xi would be ignored: VAT does not read it (its own settings: vat.weight, '
     'vat.epsilon, vat.power_iteration, consistency_rampup_epochs, augment.noise_std). Leave it '
     'out.'),
    ('fixmatch', {'augment.noise_std': 0.3},  # Its weak and strong views have no noise.
     '--config.augment.noise_std would be ignored: FixMatch does not read it (its own settings: '
     'fixmatch.threshold, fixmatch.weight, fixmatch.ema_decay, fixmatch.num_ops). Leave it out.'),
    ('vat', {'vat.power_iteration': 'finite_difference', 'vat.xi': 1e-5}, None),
    ('mean_teacher_alc', {'ema_decay': 0.9, 'alc.weight': 3.0}, None),
    ('supervised', {'consistency_rampup_epochs': 1.0}, None),  # A study's shared ramp-up.
    ('fixmatch', {'alc.weight': 10.0},  # w2, not FixMatch's weight.
     '--config.alc.weight would be ignored: FixMatch does not read it (its own settings: '
     'fixmatch.threshold, fixmatch.weight, fixmatch.ema_decay, fixmatch.num_ops). ALC is off: '
     '--config.alc.enabled=True turns it on. Or leave it out.'),
    ('mean_teacher_alc', {'alc.stop_gradient_similarity': True},  # Eq. 13 does not train S.
     '--config.alc.stop_gradient_similarity would be ignored: MeanTeacher + ALC does not read '
     'it (its own settings: consistency_weight, consistency_rampup_epochs, ema_decay, '
     "augment.noise_std, ALC's of its reading (alc.*)). --config.alc.stop_gradient_similarity "
     "is read only with alc.head_training='eq13'. Or leave it out."),
    ('mean_teacher_alc', {'alc.similarity': 'atention', 'alc.pooling': 'max'}, None),  # A typo.
    ('sntg', {'sntg.base': 'pi', 'ema_decay': 0.9}, None),  # validate() names the bad base.
    ('supervised', {'num_epochs': 10.0},  # The CPU config sets num_train_steps.
     "--config.num_epochs would be ignored: config.num_train_steps=1200 sets the run's length (it "
     'takes precedence). Set --config.num_train_steps=0 too to train by epochs.'),
    ('supervised', {'num_epochs': 10.0, 'num_train_steps': 0}, None),
])
def test_an_override_the_method_would_ignore_is_refused(row, overrides, message):
  """A method-specific setting of another method (or ALC's without ALC) is refused: it would
  change nothing, while its name says it does. A shared ramp-up is let through (with a note)."""
  config = fashion_mnist_cpu.get_config(row)
  for path, value in overrides.items():
    common.set_path(config, path, value)
  error = config_lib.ignored_override_error(config, list(overrides))
  assert (error and str(error)) == message


def test_main_refuses_an_ignored_override_and_notes_an_unread_ramp_up(tmp_path):
  """On the command line (ml_collections defines the override flags from sys.argv, so this runs
  in a process of its own): the refusal is one line and writes nothing; a ramp-up that the method
  does not read is a note, and the run goes on (here to a data error)."""
  main_args = [sys.executable, '-m', 'alc_jax.main', f'--workdir={tmp_path / "run"}']
  out = subprocess.run(main_args + [f'--config={ROOT}/configs/fashion_mnist_cpu.py:fixmatch',
                                    '--config.ema_decay=0.9'],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith(
      'Config error: --config.ema_decay would be ignored: FixMatch does not read it'), out.stderr
  assert not (tmp_path / 'run').exists()
  out = subprocess.run(main_args + [f'--config={ROOT}/configs/fashion_mnist_cpu.py:supervised',
                                    '--config.consistency_rampup_epochs=1',
                                    '--config.dataset.name=npz',
                                    f'--config.dataset.path={tmp_path / "none.npz"}'],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert ('Note: --config.consistency_rampup_epochs is not read by Supervised (its weights do '
          'not use this ramp-up); the run goes on without it.') in out.stderr, out.stderr
  assert out.stderr.strip().splitlines()[-1].startswith('Data error: '), out.stderr


@pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')
@pytest.mark.parametrize('config,message', [
    ('configs/nothere.py', 'Config error: the --config file did not load: [Errno 2] No such file'),
    ('configs/fashion_mnist_250.py:nonsense',
     "Config error: --config={}: ValueError: unknown row 'nonsense'; valid rows: supervised,"),
])
def test_a_config_file_or_row_that_does_not_load_is_one_line(config, message):
  path = f'{ROOT}/{config}'
  try:
    with pytest.raises(SystemExit) as e:
      main.parse_flags(['alc_jax.main', f'--config={path}', '--workdir=/w'])
  finally:
    main.FLAGS.unparse_flags()
  assert str(e.value.code).startswith(message.format(path)) and '\n' not in str(e.value.code)


@pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')
def test_config_mistakes_in_a_flagfile_or_with_one_dash_are_one_line(tmp_path):
  """The flags as absl reads them: --flagfile's contents, -config as well as --config."""
  flagfile = tmp_path / 'flags.txt'
  flagfile.write_text(f'-config={ROOT}/configs/smoke.py\n--config.alc.logits=cosine\n')
  try:
    with pytest.raises(SystemExit) as e:
      main.parse_flags(['alc_jax.main', f'--flagfile={flagfile}', '--workdir=/w'])
  finally:
    main.FLAGS.unparse_flags()
  assert str(e.value.code).startswith('Config error: config.alc.logits is now'), e.value.code


def test_the_configs_load_whichever_folder_the_run_starts_in(tmp_path):
  """configs/*.py import configs.default: from another folder that was a ModuleNotFoundError. On
  the command line (where ml_collections fails otherwise than in-process) a renamed field."""
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  out = subprocess.run([sys.executable, '-m', 'alc_jax.main', f'--config={ROOT}/configs/smoke.py',
                        '--workdir=run', '--config.alc.logits=cosine'], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 1, out.stderr
  assert out.stderr.strip().endswith('Config error: config.alc.logits is now '
                                     'config.alc.attention_logits: set '
                                     '--config.alc.attention_logits=... instead.'), out.stderr
  assert 'Traceback' not in out.stderr and not (tmp_path / 'run').exists()
