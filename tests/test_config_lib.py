"""alc_jax/config_lib.py: configs that cannot run are refused before anything compiles, saying
what to change; a workdir refuses a run of another config."""

import json

import pytest

from alc_jax import config_lib
from tests.conftest import tiny_config


BAD_CONFIGS = [
    ({'method': 'bogus'}, 1, ['config.method', 'bogus', 'choose one of', 'mean_teacher']),
    ({'dataset.name': 'mnist'}, 1, ['config.dataset.name', 'choose one of', 'fashion_mnist']),
    ({'model.name': 'vgg'}, 1, ['config.model.name', 'choose one of', 'cnn13']),
    ({'labeled_batch_size': 16}, 1, ['config.labeled_batch_size=16', 'config.batch_size=16']),
    ({'labeled_batch_size': 20}, 1, ['config.labeled_batch_size=20', 'below']),
    ({'labeled_batch_size': 0}, 1, ['config.labeled_batch_size=0', '> 0']),
    ({'dataset.name': 'fashion_mnist', 'dataset.num_labels': 255}, 1,
     ['config.dataset.num_labels=255', 'multiple of 10', '250']),
    ({'dataset.imbalance_ratio': 0.5}, 1, ['config.dataset.imbalance_ratio=0.5', 'below 1']),
    ({'consistency_weight': -1.0}, 1, ['config.consistency_weight=-1.0', 'negative']),
    ({'alc.weight': -0.5}, 1, ['config.alc.weight=-0.5', 'negative']),
    ({'batch_size': 100, 'labeled_batch_size': 20}, 3,
     ['config.batch_size=100', '3 devices', 'multiple of 3']),
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
    ({'consistency_weight': 0.0, 'alc.weight': 0.0}, 1)])
def test_validate_accepts_good_configs(tiny_npz, overrides, num_devices):
  config_lib.validate(tiny_config(tiny_npz, **overrides), num_devices)  # The checks can pass.


def test_workdir_of_a_different_config_is_refused(tiny_npz, tmp_path):
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(tiny_config(tiny_npz, seed=1).to_dict(), f)
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.check_workdir(tiny_config(tiny_npz, seed=0), str(tmp_path))
  message = str(error.value)
  assert 'seed: 1 -> 0' in message and 'new --workdir' in message, message
  # The same config resumes; bookkeeping fields (the run's length, logging) may change.
  config_lib.check_workdir(tiny_config(tiny_npz, seed=1), str(tmp_path))
  config_lib.check_workdir(tiny_config(tiny_npz, seed=1, num_train_steps=999,
                                       log_every_steps=7, keep_checkpoints=1), str(tmp_path))
  with pytest.raises(config_lib.ConfigError, match='learning_rate'):
    config_lib.check_workdir(tiny_config(tiny_npz, seed=1, learning_rate=0.5), str(tmp_path))
  config_lib.check_workdir(tiny_config(tiny_npz), str(tmp_path / 'fresh'))  # No config.json yet.
