"""Trains one experiment: `python -m alc_jax.main --config=configs/NAME.py --workdir=DIR`.

This file is intentionally kept short; the logic is in libraries importable in Colab
(`alc_jax.train.train_and_evaluate`, and the pure losses in `alc_jax.losses`). Override any config
field from the command line, e.g. `--config.seed=3 --config.alc.enabled=True`. Rerunning the same
command resumes from the latest checkpoint in the workdir. On a TPU pod or a multi-node GPU job,
pass `--multihost` on every worker (launch/ has scripts that do).
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow (TFDS, clu) start-up chatter.

from absl import app, flags, logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

# pylint: disable=wrong-import-position
from alc_jax import checkpointing, config_lib, cpu_setup, methods, train, workdir_io, workdir_lock
from alc_jax import data as data_lib
from alc_jax.data import tfds_data

# configs/*.py import `configs.default`: with the repository's root on the path (a clone or an
# editable install; a wheel has no configs/) they load whichever folder the run starts from.
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPOSITORY, 'configs')) and _REPOSITORY not in sys.path:
  sys.path.append(_REPOSITORY)

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.json.')
flags.DEFINE_bool('multihost', False, 'Call jax.distributed.initialize() (TPU pods, SLURM, ...).')
config_flags.DEFINE_config_file('config', None, 'Experiment configuration file.', lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Too many command-line arguments: {argv[1:]}')
  # First, before anything starts a JAX backend (jax.distributed, jax.local_devices below): the
  # CPU set-up (alc_jax/cpu_setup.py) only takes effect then; importing alc_jax does not apply it.
  cpu_setup.configure()
  if not FLAGS['verbosity'].present:  # Orbax logs every file it writes at INFO; -v 0 shows it.
    logging.set_verbosity(logging.WARNING)
  if FLAGS.multihost:
    jax.distributed.initialize()
  # TensorFlow feeds data (TFDS; its loaders hide the GPUs themselves), writes TensorBoard events
  # and reads buckets (epath): keep it off the GPUs. Not imported at all where none is used (~4 s).
  if FLAGS.config.tensorboard or workdir_io.is_remote(FLAGS.workdir):
    tfds_data.tf_cpu_only()
  logging.info('JAX process %d/%d, local devices %s, CPU set-up %s', jax.process_index(),
               jax.process_count(), jax.local_devices(), cpu_setup.applied)
  sys.exit(run(FLAGS.config, FLAGS.workdir))


def parse_flags(argv):
  """absl's flag parsing (app.run's default), with the config's mistakes in one line, where
  ml_collections raises a traceback: a config file that does not load, a row its get_config
  refuses, an override that names no field (a renamed one with its new name) or a setting the
  method would ignore (config_lib.ignored_override_error)."""
  try:  # As absl reads them: --flagfile contents expanded, -config or --config, the last wins.
    args = FLAGS.read_flags_from_files(argv[1:], force_gnu=False)
  except flags.Error:
    args = argv[1:]
  config_file = None
  for flag, following in zip(args, args[1:] + ['']):
    name, has_value, value = flag.lstrip('-').partition('=')
    if flag.startswith('-') and name == 'config':
      config_file = value if has_value else following
  overrides = [a.lstrip('-')[len('config.'):].split('=', 1)[0] for a in args
               if a.startswith('-') and a.lstrip('-').startswith('config.')]
  try:
    rest = FLAGS(argv)
    if FLAGS.config is not None:
      FLAGS.config.keys()  # pylint: disable=pointless-statement  # A file that did not load raises.
  except OSError as e:  # ml_collections could not load the file (raised on first use).
    sys.exit(f'Config error: the --config file did not load: '
             f'{str(e).strip().splitlines()[-1].strip()}')
  except (flags.Error, AttributeError, KeyError) as e:
    if 'Error whilst parsing config file' in str(e):  # get_config raised: its last line says why.
      sys.exit(f'Config error: --config={config_file}: {str(e).strip().splitlines()[-1].strip()}')
    error = None
    if overrides and config_file:
      # Loaded again to name the field: ml_collections keeps no config after a failed override.
      error = config_lib.unknown_field_error(FLAGS['config'].parser.parse(config_file), overrides)
    if error:
      sys.exit(f'Config error: {error}')
    if not isinstance(e, flags.Error):
      raise
    sys.exit(f'FATAL Flags parsing error: {e}\nPass --helpshort or --helpfull to see help on '
             'flags.')
  if FLAGS.config is not None:
    error = config_lib.ignored_override_error(FLAGS.config, overrides)
    if error:
      sys.exit(f'Config error: {error}')
    for path in config_lib.ignored_overrides(FLAGS.config, overrides):  # SHARED_SCHEDULE's.
      print(f'Note: --config.{path} is not read by {methods.create(FLAGS.config).label} (its '
            'weights do not use this ramp-up); the run goes on without it.', file=sys.stderr)
  return rest


def run(config, workdir):
  """train_and_evaluate, with the mistakes a user can fix answered in one line (no traceback;
  tracebacks are kept for bugs). Returns the exit status: 0, or 130 after a Ctrl-C."""
  try:
    result = train.train_and_evaluate(config, workdir)
  except config_lib.ConfigError as e:  # A config mistake: the message says what to change.
    sys.exit(f'Config error: {e}')
  except data_lib.DataError as e:  # Files, folders or arrays that cannot be used as they are.
    sys.exit(f'Data error: {e}')
  except workdir_lock.WorkdirInUse as e:  # Nothing was written.
    sys.exit(f'Workdir in use: {e}')
  except checkpointing.CheckpointError as e:  # Nothing was moved or skipped; says what to do.
    sys.exit(f'Checkpoint error: {e}')
  except checkpointing.DiskFullError as e:
    # Exit at once: orbax's background writers, cut short, would otherwise log their own failures
    # (tracebacks from asyncio and tensorstore) after this line. The workdir lock is already freed
    # and the newest complete checkpoint is on disk; nothing else can be written anyway. The line
    # starts with a newline: a writer thread may have left half a traceback line on stderr (seen in
    # CI: "    self._check_closed()Disk full: ..."), and the message must be a line of its own.
    print(f'\nDisk full: {e.strerror}', file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)  # pylint: disable=protected-access
  except KeyboardInterrupt:  # The second Ctrl-C.
    print('Stopped at once by a second Ctrl-C; the newest complete checkpoint is kept.',
          file=sys.stderr, flush=True)
    return 130
  return 130 if result.get('signal') == 'SIGINT' else 0


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=parse_flags)
