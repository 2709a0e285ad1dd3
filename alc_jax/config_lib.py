"""Config checks that run before anything compiles; each error says what to change."""

import difflib

import ml_collections

from alc_jax import attention, losses, methods, models, runs, workdir_io
from alc_jax.methods import alc as alc_method, pseudo_label, sntg, vat
from alc_jax.data import datasets, imagenet, pipeline, splits, tfds_data
# Fields that may differ between a run and its resumption (they change no result).
# run_batching (vmap or loop over runs) changes float rounding only, like the device count.
BOOKKEEPING = ('log_every_steps', 'eval_every_steps', 'checkpoint_every_steps', 'keep_checkpoints',
               'eval_batch_size', 'progress_every_seconds', 'run_batching',
               'allow_schedule_change', 'dataset.cache_dir', 'tensorboard')
# Fields that set the length of the cosine learning-rate schedule: a resumption with other values
# would join two schedules (the rate jumps at the resumed step), so check_workdir refuses them
# unless config.allow_schedule_change. Not in BOOKKEEPING, and compared apart from the others.
SCHEDULE = ('num_train_steps', 'num_epochs')
# Method settings that a study sets for all its rows at once (launch/_study_protocol.sh passes one
# ramp-up to supervised and FixMatch rows too, which have no ramped weight): an override of them
# where unused is let through with a note (alc_jax.main), not refused as other unread settings.
SHARED_SCHEDULE = ('consistency_rampup_epochs',)
# Fields renamed so that each name says one thing (issue 28); alc_jax.main answers an override of
# an old name with the new one. (alc.graph's value 'attention' is alc.head_training's 'eq13'.)
RENAMED_FIELDS = {'alc.logits': 'alc.attention_logits', 'alc.normalization': 'alc.pairwise_scale',
                  'alc.graph': 'alc.head_training'}


class ConfigError(ValueError):
  """A config that cannot run, with the fix in the message."""


def _choice(value, choices, field):
  if value not in choices:
    raise ConfigError(f'config.{field}={value!r} is not known; choose one of {list(choices)} '
                      f'(e.g. --config.{field}={choices[0]}).')


def validate(config, num_devices=1):
  """Raises ConfigError for a config that cannot run; silent otherwise."""
  _choice(config.method, methods.NAMES, 'method')
  _choice(config.sntg.base, tuple(sntg.BASES), 'sntg.base')
  _choice(config.sntg.distance, losses.SNTG_DISTANCES, 'sntg.distance')
  _choice(config.pseudo_label_schedule, pseudo_label.WEIGHT_SCHEDULES, 'pseudo_label_schedule')
  _choice(config.vat.power_iteration, vat.POWER_ITERATIONS, 'vat.power_iteration')
  _choice(config.dataset.name, pipeline.DATASET_NAMES, 'dataset.name')
  _choice(config.model.name, models.MODEL_NAMES, 'model.name')
  if (config.model.name not in models.WITH_DROPOUT
      and config.model.dropout != models.DEFAULT_DROPOUT):
    raise ConfigError(
        f'config.model.dropout={config.model.dropout} would be ignored: {config.model.name} has '
        f'no dropout (as in its reference; only {" and ".join(models.WITH_DROPOUT)} have). Leave '
        f'config.model.dropout at {models.DEFAULT_DROPOUT} for it.')
  _choice(config.alc.imbalance, alc_method.IMBALANCE_WEIGHTINGS, 'alc.imbalance')
  _choice(config.alc.similarity, attention.SIMILARITIES, 'alc.similarity')
  if config.alc.pooling in attention.RENAMED_POOLINGS:
    new = attention.RENAMED_POOLINGS[config.alc.pooling]
    raise ConfigError(f'config.alc.pooling={config.alc.pooling!r} is now {new!r} (the mean of the '
                      f"max-only and avg-only similarities): set --config.alc.pooling={new}.")
  _choice(config.alc.pooling, attention.POOLINGS, 'alc.pooling')
  _choice(config.alc.outputs, alc_method.OUTPUTS, 'alc.outputs')
  _choice(config.alc.scope, models.ALC_SCOPES, 'alc.scope')
  _choice(config.alc.attention_logits, losses.ATTENTION_LOGITS, 'alc.attention_logits')
  _choice(config.alc.pairwise_scale, losses.PAIRWISE_SCALES, 'alc.pairwise_scale')
  _choice(config.alc.head_training, attention.HEAD_TRAININGS, 'alc.head_training')
  _choice(config.supervised_normalization, losses.SUPERVISED_NORMALIZATIONS,
          'supervised_normalization')
  if config.alc.attention_logits == 'cosine' and (config.alc.temperature <= 0 or (
      config.alc.learned_temperature
      and not 0 < config.alc.temperature_floor < config.alc.temperature)):
    raise ConfigError(
        f'config.alc.temperature={config.alc.temperature} must be positive, and above '
        f'config.alc.temperature_floor={config.alc.temperature_floor} > 0 when it is learned; '
        f'e.g. --config.alc.temperature=0.1 --config.alc.temperature_floor=0.02.')
  if not 0 <= config.alc.graph_threshold <= 1:
    raise ConfigError(f'config.alc.graph_threshold={config.alc.graph_threshold} is a probability: '
                      f'choose it in [0, 1] (e.g. 0.8).')
  if config.alc.entropy_weight and config.alc.head_training != 'eq13':
    raise ConfigError('config.alc.entropy_weight acts on S through Eq. 13, which the decoupled '
                      'graph detaches: set config.alc.entropy_weight=0 or '
                      'config.alc.head_training=eq13.')
  _choice(config.compute_dtype, tuple(models.COMPUTE_DTYPES), 'compute_dtype')
  if config.dataset.name in datasets.PATH_NAMES and not config.dataset.path:
    raise ConfigError(f'dataset {config.dataset.name!r} needs --config.dataset.path=...')
  if config.num_runs < 1:
    raise ConfigError(f'config.num_runs={config.num_runs} must be >= 1.')
  _choice(config.run_batching, runs.RUN_BATCHINGS, 'run_batching')
  method = methods.get(config.method)
  if config.alc.imbalance != 'none' and not config.alc.enabled:
    raise ConfigError(
        f'config.alc.imbalance={config.alc.imbalance!r} weights the terms of ALC\'s loss (Eq. 14 / '
        f'15) and would be ignored without it: set --config.alc.enabled=True, or leave '
        f"config.alc.imbalance at 'none'.")
  if config.alc.enabled and config.alc.imbalance == 'soft' and not method.has_targets:
    raise ConfigError(
        f"config.alc.imbalance='soft' weights the unsupervised term by the probabilities of its "
        f'target prediction (Eq. 15), which {method.label} does not have: soft would be the same '
        f"run as 'hard' (only the supervised term weighted, Eq. 14). Set "
        f'--config.alc.imbalance=hard.')
  if method.labeled_only:
    if config.labeled_batch_size not in (0, config.batch_size):
      raise ConfigError(
          f'config.method={config.method!r} trains on batches of labeled examples only, so '
          f'config.labeled_batch_size={config.labeled_batch_size} would be ignored: set '
          f'--config.labeled_batch_size=0 (every row labeled; the configs\' {config.method!r} '
          f'rows do).')
  elif not 0 < config.labeled_batch_size < config.batch_size:
    raise ConfigError(
        f'config.labeled_batch_size={config.labeled_batch_size} must be > 0 and below '
        f'config.batch_size={config.batch_size}: each batch holds labeled_batch_size labeled and '
        f'batch_size - labeled_batch_size unlabeled examples.')
  if config.batch_size % num_devices:
    raise ConfigError(
        f'config.batch_size={config.batch_size} is not divisible by the {num_devices} devices: '
        f'choose a multiple of {num_devices}.')
  if config.alc.enabled and config.alc.scope == 'per_device' and config.batch_size % num_devices:
    raise ConfigError('per-device ALC needs the batch to split evenly over devices.')
  if config.dataset.imbalance_ratio < 1:
    raise ConfigError(
        f'config.dataset.imbalance_ratio={config.dataset.imbalance_ratio} is below 1; it is the '
        f'largest-to-smallest class ratio (1 = balanced, the paper uses 5, 10, 15).')
  _validate_dataset(config.dataset)
  if config.dataset.validation_size > 0 and config.num_runs > 1 and config.dataset.split_seed < 0:
    # Every run is evaluated on the first run's held-out images (one evaluation set for all),
    # which the other runs' own splits would put among their training images.
    raise ConfigError(
        f'config.dataset.validation_size={config.dataset.validation_size} holds out one set of '
        f'validation images, but the {config.num_runs} runs would each draw their own label '
        'split (config.dataset.split_seed=-1), and every run is evaluated on the first run\'s '
        'held-out images, which the others train on: set --config.dataset.split_seed=N (any '
        'N >= 0) so that the runs share one split, or config.num_runs=1.')
  for field in ('consistency_weight', 'alc.weight', 'alc.entropy_weight', 'alc.graph_weight',
                'sntg.weight', 'vat.weight',
                'vat.entmin_weight', 'fixmatch.weight', 'fixmatch.num_ops', 'weight_decay',
                'consistency_rampup_epochs', 'lr_warmup_epochs', 'pseudo_label_threshold'):
    value = config
    for part in field.split('.'):
      value = value[part]
    if value < 0:
      raise ConfigError(f'config.{field}={value} is negative; weights must be >= 0.')
  if config.learning_rate <= 0:
    raise ConfigError(f'config.learning_rate={config.learning_rate} must be positive.')
  if not 0 <= config.ema_decay < 1:
    raise ConfigError(f'config.ema_decay={config.ema_decay} must be in [0, 1) (the paper: 0.97).')
  if not 0 <= config.fixmatch.ema_decay < 1:
    raise ConfigError(f'config.fixmatch.ema_decay={config.fixmatch.ema_decay} must be in [0, 1) '
                      '(FixMatch: 0.999).')
  if not 0 <= config.fixmatch.threshold <= 1:
    raise ConfigError(f'config.fixmatch.threshold={config.fixmatch.threshold} is a probability: '
                      'choose it in [0, 1] (FixMatch: 0.95).')
  if config.num_train_steps <= 0 and config.num_epochs <= 0:
    raise ConfigError('set config.num_epochs > 0 or config.num_train_steps > 0.')
  if config.dataset.name in imagenet.STREAMED_NAMES and config.num_runs != 1:
    raise ConfigError(f'{config.dataset.name} streams from TFDS: set config.num_runs=1.')


def _validate_dataset(dc):
  """The checks of config.dataset that need no data (the pipeline checks the rest)."""
  if dc.num_labels <= 0 and dc.num_labels != splits.ALL_LABELS:
    raise ConfigError(f'config.dataset.num_labels={dc.num_labels} must be positive, or '
                      f'{splits.ALL_LABELS} for every label the data set gives.')
  # Known class counts only (not for npz/folder data); ImageNet's fixed 1% subset decides its
  # labels (num_labels must be its size: below).
  num_classes = tfds_data.NUM_CLASSES.get(dc.name)
  if num_classes and dc.num_labels == splits.ALL_LABELS:
    raise ConfigError(
        f'config.dataset.num_labels={splits.ALL_LABELS} keeps every label the data set gives, '
        f'but every training image of {dc.name} is labeled: set how many labels the trainer '
        f'keeps (it hides the others), e.g. --config.dataset.num_labels={25 * num_classes} '
        f'(25 per class).')
  if num_classes and dc.imbalance_ratio == 1 and dc.num_labels % num_classes:
    raise ConfigError(
        f'config.dataset.num_labels={dc.num_labels} is not labels per class times '
        f'{num_classes} classes: a balanced split needs a multiple of {num_classes} '
        f'(e.g. {num_classes * max(1, dc.num_labels // num_classes)}).')
  ignored = [f'config.dataset.{field}={value!r}' for field, value, readers in (
      ('image_size', dc.image_size, datasets.IMAGE_FILE_NAMES + imagenet.STREAMED_NAMES),
      ('skip_unreadable', dc.skip_unreadable, datasets.IMAGE_FILE_NAMES),
      ('zca', dc.zca, datasets.IN_MEMORY_NAMES),
      ('path', dc.path, datasets.PATH_NAMES + ('fashion_mnist',)))
             if value and dc.name not in readers]
  if ignored:
    raise ConfigError(
        f'{", ".join(ignored)} would be ignored: {dc.name} does not read '
        f'{"them" if ignored[1:] else "it"} (image_size and skip_unreadable are for image '
        "folders' files, image_size for ImageNet's crops too; zca for data held in memory; path "
        "for the user's files and Fashion-MNIST's IDX files, TFDS data sets read data_dir). "
        f'Leave {"them" if ignored[1:] else "it"} at the default.')
  if dc.name in imagenet.STREAMED_NAMES:  # TFDS' fixed 1% subset is the labeled set.
    expected = {'num_labels': (imagenet.NUM_LABELED, splits.ALL_LABELS), 'validation_size': (0,),
                'imbalance_ratio': (1.0,), 'split_seed': (-1,)}
    fixed = [field for field, values in expected.items() if dc[field] not in values]
    if fixed:
      raise ConfigError(
          f'{", ".join(f"config.dataset.{f}={dc[f]!r}" for f in fixed)} would be ignored: '
          f"{dc.name} trains on TFDS' fixed 1% subset ({imagenet.NUM_LABELED} labeled images, "
          '~13 per class) and tests on the validation split; no split is drawn. Set '
          f'{" ".join(f"--config.dataset.{f}={expected[f][0]!r}" for f in fixed)}.')
  if dc.image_size < 0 or (dc.name in imagenet.STREAMED_NAMES and dc.image_size == 0):
    raise ConfigError(
        f'config.dataset.image_size={dc.image_size} must be positive for {dc.name} crops '
        '(e.g. 224), and 0 (an image folder\'s most common size) or positive otherwise.'
        if dc.name in imagenet.STREAMED_NAMES else
        f'config.dataset.image_size={dc.image_size} must be 0 (an image folder\'s most common '
        'size) or positive.')


def check_workdir(config, workdir):
  """A workdir holds one experiment: refuse to resume a run of a different config in it, or one
  whose learning-rate schedule would change (unless config.allow_schedule_change)."""
  saved = workdir_io.read_json(f'{workdir}/config.json')  # Local or a bucket (gs://...).
  if saved is None:
    return
  saved, current = flatten(saved), flatten(config.to_dict())
  ignored = BOOKKEEPING + SCHEDULE
  # A field the saved config lacks was added to the code since the run started: the run resumes
  # under its value (a field the code lost, or a value that differs, is another config).
  diff = sorted(k for k in set(saved) | set(current)
                if k not in ignored and k in saved and saved.get(k) != current.get(k))
  if diff:
    details = ', '.join(f'{k}: {saved.get(k)!r} -> {current.get(k)!r}' for k in diff[:8])
    raise ConfigError(
        f'{workdir} holds a run of a different config ({details}). Use a new --workdir, or '
        f'rerun with the config that started it to resume.')
  old, new = _schedule(saved), _schedule(current)
  if current.get('allow_schedule_change', False) or old is None or old == new:
    return
  changed = [k for k in SCHEDULE if saved.get(k) != current.get(k)]
  details = ', '.join(f'config.{k}: {saved.get(k)!r} -> {current.get(k)!r}' for k in changed)
  flags = ' '.join(f'--config.{k}={saved.get(k)!r}' for k in changed)
  raise ConfigError(
      f'{workdir} holds a run whose learning-rate schedule this one would change ({details}: '
      f'they set the length of the cosine schedule, and the resumed run would join the two). '
      f'Use a new --workdir, or rerun with {flags} to resume, or pass '
      f'--config.allow_schedule_change=True to continue on the new schedule.')


def _schedule(flat):
  """What sets the schedule's length: num_train_steps if > 0 (it overrides num_epochs), else
  num_epochs; None for a config.json without these fields (nothing to compare against)."""
  steps, epochs = flat.get('num_train_steps'), flat.get('num_epochs')
  if steps is None or epochs is None:
    return None
  return ('num_train_steps', steps) if steps > 0 else ('num_epochs', epochs)


def unknown_field_error(config, overrides):
  """The ConfigError for the first of `overrides` (dotted paths, as in --config.PATH=...) that
  names no field of `config`, or None if they all do. A renamed field is answered with its new
  name; another with the fields beside it."""
  for path in overrides:
    node, parts = config, path.split('.')
    for i, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        break
      node = node[part]
    else:
      continue
    if path in RENAMED_FIELDS:
      return ConfigError(f'config.{path} is now config.{RENAMED_FIELDS[path]}: set '
                         f'--config.{RENAMED_FIELDS[path]}=... instead.')
    where = '.'.join(['config'] + parts[:i])
    if not isinstance(node, ml_collections.ConfigDict):
      return ConfigError(f'--config.{path}: {where} is a value ({type(node).__name__}), not a '
                         'block of fields.')
    close = difflib.get_close_matches(part, list(node), n=3)
    hint = (f'did you mean {" or ".join(f"{where}.{c}" for c in close)}?' if close else
            f'its fields: {", ".join(sorted(node))}')
    return ConfigError(f'--config.{path}: {where} has no field {part!r} ({hint})')
  return None


def ignored_overrides(config, overrides):
  """The method-specific fields among `overrides` (dotted paths, as in --config.PATH=...) that
  runs of `config` do not read: another method's settings (`Method.SETTINGS`), ALC's without
  ALC. [] for a config that validate() refuses (it names the mistake: a typo in a switch the
  settings depend on, such as alc.similarity, is not 'an ignored field')."""
  try:
    validate(config)
  except ConfigError:
    return []
  read = set(methods.fields_read(methods.create(config), config))
  universe = set(methods.all_settings(config))
  return [path for path in dict.fromkeys(overrides) if path in universe and path not in read]


def ignored_override_error(config, overrides):
  """The ConfigError for overrides of settings that `config`'s method would ignore (e.g.
  --config.ema_decay for FixMatch, whose EMA is config.fixmatch.ema_decay), or None. Overrides of
  SHARED_SCHEDULE fields are let through (see there). Also --config.num_epochs where
  num_train_steps sets the run's length."""
  if 'num_epochs' in overrides and config.num_train_steps > 0:
    return ConfigError(
        f'--config.num_epochs would be ignored: config.num_train_steps={config.num_train_steps} '
        'sets the run\'s length (it takes precedence). Set --config.num_train_steps=0 too to '
        'train by epochs.')
  ignored = [path for path in ignored_overrides(config, overrides) if path not in SHARED_SCHEDULE]
  if not ignored:
    return None
  method = methods.create(config)
  read = methods.fields_read(method, config)
  hints = []
  for path in ignored:
    same_name = [field for field in read if field.rsplit('.', 1)[-1] == path.rsplit('.', 1)[-1]]
    if path.startswith('alc.') and not config.alc.enabled:
      hints.append('ALC is off: --config.alc.enabled=True turns it on.')
    elif alc_method.read_only_with(path):
      hints.append(f'--config.{path} is read only with {alc_method.read_only_with(path)}.')
    elif same_name:
      hints.append(f'Did you mean --config.{same_name[0]}?')
  names, them = ', '.join(f'--config.{path}' for path in ignored), 'them' if ignored[1:] else 'it'
  fix = ' '.join(list(dict.fromkeys(hints)) + [f'{"Or leave" if hints else "Leave"} {them} out.'])
  own = [field for field in read if not field.startswith('alc.')]
  own += ["ALC's of its reading (alc.*)"] if config.alc.enabled else []
  return ConfigError(f'{names} would be ignored: {method.label} does not read {them} (its own '
                     f'settings: {", ".join(own) or "none"}). {fix}')


def flatten(tree, prefix=''):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = list(value) if isinstance(value, tuple) else value
  return out
