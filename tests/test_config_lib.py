"""alc_jax/config_lib.py: configs that cannot run are refused before anything compiles, saying
what to change; a workdir refuses a run of another config."""

import json

import pytest

from alc_jax import checkpointing, config_lib, train
from tests.conftest import tiny_config


BAD_CONFIGS = [
    ({'method': 'bogus'}, 1, ['config.method', 'bogus', 'choose one of', 'mean_teacher']),
    ({'dataset.name': 'mnist'}, 1, ['config.dataset.name', 'choose one of', 'fashion_mnist']),
    ({'model.name': 'vgg'}, 1, ['config.model.name', 'choose one of', 'cnn13']),
    ({'labeled_batch_size': 16}, 1, ['config.labeled_batch_size=16', 'config.batch_size=16']),
    ({'labeled_batch_size': 20}, 1, ['config.labeled_batch_size=20', 'below']),
    ({'dataset.validation_size': 40, 'num_runs': 2}, 1,
     ['config.dataset.validation_size=40', 'the 2 runs', '--config.dataset.split_seed=N']),
    ({'labeled_batch_size': 0}, 1, ['config.labeled_batch_size=0', '> 0']),
    ({'method': 'supervised'}, 1,  # tiny_config's 4 labeled of 16: a split supervised ignores.
     ["config.method='supervised'", 'labeled_batch_size=4 would be ignored',
      '--config.labeled_batch_size=0']),
    ({'alc.pooling': 'average'}, 1,  # Renamed: it read like 'avg'.
     ["config.alc.pooling='average' is now 'mean_of_max_and_avg'",
      '--config.alc.pooling=mean_of_max_and_avg']),
    ({'model.name': 'wrn28_2', 'model.dropout': 0.3}, 1,
     ['config.model.dropout=0.3 would be ignored', 'wrn28_2 has no dropout', 'at 0.5']),
    ({'dataset.name': 'fashion_mnist', 'dataset.num_labels': 255}, 1,
     ['config.dataset.num_labels=255', 'multiple of 10', '250']),
    ({'dataset.imbalance_ratio': 0.5}, 1, ['config.dataset.imbalance_ratio=0.5', 'below 1']),
    ({'consistency_weight': -1.0}, 1, ['config.consistency_weight=-1.0', 'negative']),
    ({'alc.weight': -0.5}, 1, ['config.alc.weight=-0.5', 'negative']),
    ({'batch_size': 100, 'labeled_batch_size': 20}, 3,
     ['config.batch_size=100', '3 devices', 'multiple of 3']),
    ({'alc.head_training': 'decoupled', 'alc.entropy_weight': 0.5}, 1,
     ['config.alc.entropy_weight', 'decoupled', 'config.alc.head_training=eq13']),
    ({'alc.graph_threshold': 1.5}, 1, ['config.alc.graph_threshold=1.5', 'in [0, 1]']),
    ({'alc.attention_logits': 'cosine', 'alc.temperature': 0.0}, 1,
     ['config.alc.temperature=0.0 must be positive']),
    ({'ema_decay': 1.0}, 1, ['config.ema_decay=1.0', 'in [0, 1)']),
    ({'fixmatch.threshold': 1.2}, 1, ['config.fixmatch.threshold=1.2', 'in [0, 1]']),
    ({'dataset.name': 'imagenet_1pct', 'dataset.path': '', 'dataset.num_labels': 12811,
      'dataset.image_size': 224, 'num_runs': 2}, 1,
     ['imagenet_1pct streams from TFDS', 'config.num_runs=1']),
    ({'alc.enabled': False, 'alc.imbalance': 'hard'}, 1,
     ["config.alc.imbalance='hard'", 'would be ignored', '--config.alc.enabled=True']),
    ({'method': 'vat', 'alc.enabled': True, 'alc.imbalance': 'soft'}, 1,
     ["config.alc.imbalance='soft'", 'VAT does not have', "same run as 'hard'",
      '--config.alc.imbalance=hard']),
    ({'dataset.name': 'fashion_mnist', 'dataset.num_labels': 250, 'dataset.image_size': 32}, 1,
     ['config.dataset.image_size=32 would be ignored: fashion_mnist does not read it',
      'Leave it at the default']),
    ({'dataset.skip_unreadable': True, 'dataset.zca': True}, 1,  # npz: ZCA is read.
     ['config.dataset.skip_unreadable=True would be ignored: npz']),
    ({'dataset.name': 'imagenet_1pct', 'dataset.path': '', 'dataset.num_labels': 12811,
      'dataset.image_size': 224, 'dataset.zca': True}, 1,
     ['config.dataset.zca=True would be ignored: imagenet_1pct']),
    ({'dataset.name': 'cifar10', 'dataset.num_labels': 40}, 1,  # tiny_config's .npz path.
     ["config.dataset.path='", 'would be ignored: cifar10', 'TFDS data sets read data_dir']),
    ({'dataset.name': 'imagenet_1pct', 'dataset.path': '', 'dataset.image_size': 224,
      'dataset.validation_size': 100, 'dataset.split_seed': 3}, 1,  # And num_labels=40.
     ['config.dataset.num_labels=40, config.dataset.validation_size=100, '
      "config.dataset.split_seed=3 would be ignored: imagenet_1pct trains on TFDS' fixed 1% "
      'subset (12811 labeled images',
      'Set --config.dataset.num_labels=12811 --config.dataset.validation_size=0 '
      '--config.dataset.split_seed=-1.']),
]


@pytest.mark.parametrize('overrides,num_devices,fragments', BAD_CONFIGS,
                         ids=[','.join(c[0]) + f'@{c[1]}' for c in BAD_CONFIGS])
def test_validate_refuses_a_bad_config_saying_what_to_change(tiny_npz, overrides, num_devices,
                                                            fragments):
  config = tiny_config(tiny_npz, **overrides)
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.validate(config, num_devices)
  for fragment in fragments:
    assert fragment in str(error.value), str(error.value)


@pytest.mark.parametrize('overrides,num_devices', [
    ({}, 1), ({'batch_size': 100, 'labeled_batch_size': 20}, 4),
    ({'dataset.name': 'fashion_mnist', 'dataset.num_labels': 250}, 1),
    ({'dataset.name': 'fashion_mnist', 'dataset.num_labels': 255, 'dataset.imbalance_ratio': 10.0},
     1),
    ({'consistency_weight': 0.0, 'alc.weight': 0.0}, 1),
    ({'method': 'supervised', 'labeled_batch_size': 0}, 1),
    ({'method': 'supervised', 'labeled_batch_size': 16}, 1),
    ({'model.name': 'cnn13', 'model.dropout': 0.3}, 1), ({'model.name': 'resnet18'}, 1),
    ({'dataset.validation_size': 40, 'num_runs': 2, 'dataset.split_seed': 0}, 1),
    ({'dataset.validation_size': 40}, 1),
    ({'method': 'vat', 'alc.enabled': True, 'alc.imbalance': 'hard'}, 1),
    ({'method': 'fixmatch', 'alc.enabled': True, 'alc.imbalance': 'soft'}, 1),
    ({'method': 'sntg', 'alc.enabled': True, 'alc.imbalance': 'soft'}, 1)])
def test_validate_accepts_good_configs(tiny_npz, overrides, num_devices):
  config_lib.validate(tiny_config(tiny_npz, **overrides), num_devices)  # The checks can pass.


def test_workdir_of_a_different_config_is_refused(tiny_npz, tmp_path):
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(tiny_config(tiny_npz, seed=1).to_dict(), f)
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.check_workdir(tiny_config(tiny_npz, seed=0), str(tmp_path))
  message = str(error.value)
  assert 'seed: 1 -> 0' in message and 'new --workdir' in message, message
  # The same config resumes; bookkeeping fields (logging, checkpoints) may change.
  config_lib.check_workdir(tiny_config(tiny_npz, seed=1), str(tmp_path))
  config_lib.check_workdir(tiny_config(tiny_npz, seed=1, log_every_steps=7, keep_checkpoints=1,
                                       eval_every_steps=3, progress_every_seconds=1.0),
                           str(tmp_path))
  with pytest.raises(config_lib.ConfigError, match='learning_rate'):
    config_lib.check_workdir(tiny_config(tiny_npz, seed=1, learning_rate=0.5), str(tmp_path))
  config_lib.check_workdir(tiny_config(tiny_npz), str(tmp_path / 'fresh'))  # No config.json yet.


def test_only_a_run_with_a_checkpoint_to_resume_refuses_another_config(tiny_npz, tmp_path,
                                                                      monkeypatch):
  """config.json of a run that stopped before its first checkpoint (e.g. out of memory in its
  first step) does not hold a rerun with a fixed config: nothing would resume. With a checkpoint
  the rerun is refused before the experiment is built."""

  class Built(Exception):
    pass

  def create_experiment(config, devices):
    raise Built

  monkeypatch.setattr(train, 'create_experiment', create_experiment)
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(tiny_config(tiny_npz, batch_size=32).to_dict(), f)
  with pytest.raises(Built):
    train.train_and_evaluate(tiny_config(tiny_npz), str(tmp_path))
  (tmp_path / checkpointing.FOLDER / '10').mkdir(parents=True)
  with pytest.raises(config_lib.ConfigError, match='batch_size: 32 -> 16'):
    train.train_and_evaluate(tiny_config(tiny_npz), str(tmp_path))


def test_a_run_from_before_a_field_was_added_resumes(tiny_npz, tmp_path):
  """config.json without a field the code has since gained (e.g. pseudo_label_schedule) is no
  other config; one with a field the code no longer has is."""
  saved = tiny_config(tiny_npz).to_dict()
  del saved['pseudo_label_schedule'], saved['sntg']['distance']
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(saved, f)
  config_lib.check_workdir(tiny_config(tiny_npz), str(tmp_path))
  saved['alc']['logits'] = 'dot'  # A field renamed since (alc.attention_logits).
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(saved, f)
  with pytest.raises(config_lib.ConfigError, match=r"alc.logits: 'dot' -> None"):
    config_lib.check_workdir(tiny_config(tiny_npz), str(tmp_path))


def _workdir_of(config, tmp_path):
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(config.to_dict(), f)
  return str(tmp_path)


@pytest.mark.parametrize('old,new,field', [
    ({'num_train_steps': 300}, {'num_train_steps': 600}, 'num_train_steps'),
    ({'num_train_steps': 300}, {'num_train_steps': -1}, 'num_train_steps'),
    ({'num_train_steps': -1, 'num_epochs': 400.0}, {'num_train_steps': -1, 'num_epochs': 200.0},
     'num_epochs'),
], ids=['steps', 'steps_to_epochs', 'epochs'])
def test_a_changed_learning_rate_schedule_is_refused(tiny_npz, tmp_path, old, new, field):
  """num_train_steps and num_epochs set the cosine schedule's length: resuming with another one
  would join two schedules, quietly."""
  workdir = _workdir_of(tiny_config(tiny_npz, **old), tmp_path)
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.check_workdir(tiny_config(tiny_npz, **new), workdir)
  message = str(error.value)
  assert f'config.{field}: {old[field]!r} -> {new[field]!r}' in message, message
  assert f'--config.{field}={old[field]!r}' in message, message  # The value that resumes.
  assert 'new --workdir' in message and '--config.allow_schedule_change=True' in message, message
  assert '\n' not in message
  # Opting in accepts it, and so does the old value.
  config_lib.check_workdir(tiny_config(tiny_npz, allow_schedule_change=True, **new), workdir)
  config_lib.check_workdir(tiny_config(tiny_npz, **old), workdir)


def test_num_epochs_may_change_while_num_train_steps_sets_the_schedule(tiny_npz, tmp_path):
  workdir = _workdir_of(tiny_config(tiny_npz, num_train_steps=300, num_epochs=400.0), tmp_path)
  config_lib.check_workdir(tiny_config(tiny_npz, num_train_steps=300, num_epochs=10.0), workdir)


def test_allow_schedule_change_is_bookkeeping_and_off_by_default(tiny_npz, tmp_path):
  from configs import default  # pylint: disable=g-import-not-at-top
  assert default.get_config().allow_schedule_change is False
  assert 'allow_schedule_change' in config_lib.BOOKKEEPING
  assert not set(config_lib.SCHEDULE) & set(config_lib.BOOKKEEPING)
  # A run started with the switch on resumes with it off (the schedule unchanged), and back.
  workdir = _workdir_of(tiny_config(tiny_npz, allow_schedule_change=True), tmp_path)
  config_lib.check_workdir(tiny_config(tiny_npz), workdir)


def test_a_config_json_without_the_schedule_fields_resumes(tiny_npz, tmp_path):
  """A config.json without them (nothing to compare against) is no schedule change."""
  saved = tiny_config(tiny_npz).to_dict()
  del saved['num_train_steps'], saved['num_epochs']
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(saved, f)
  config_lib.check_workdir(tiny_config(tiny_npz, num_train_steps=5), str(tmp_path))
