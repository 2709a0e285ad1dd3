"""metrics.jsonl in its local and object-store modes, and a resumed run's rows."""

import json

import numpy as np
import pytest

from alc_jax import reporting


def _lines(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_local_jsonl_is_readable_after_every_row(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  writer = reporting.JsonlWriter(str(path))
  writer.write_scalars(1, {'a': np.float32(0.5)})
  assert _lines(path) == [{'step': 1, 'a': 0.5}]  # No flush needed.
  writer.close()
  again = reporting.JsonlWriter(str(path))  # A resumed run appends.
  again.write_scalars(2, {'a': 1.0})
  again.close()
  assert [r['step'] for r in _lines(path)] == [1, 2]


@pytest.mark.parametrize('remote', [False, True])
def test_a_resumed_run_drops_the_rows_it_will_log_again(tmp_path, remote):
  """Rows after the restored checkpoint (logged before a crash, trained again now) and a line cut
  short by the crash go: every step is logged once (the chaos test checks it end to end)."""
  path = tmp_path / 'metrics.jsonl'
  path.write_text(''.join(json.dumps({'step': s, 'a': s}) + '\n' for s in (10, 20, 30))
                  + '{"step": 40, "a"')
  writer = reporting.JsonlWriter(str(path), remote=remote, resume_step=20)
  writer.write_scalars(30, {'a': -30.0})
  writer.close()
  assert _lines(path) == [{'step': 10, 'a': 10}, {'step': 20, 'a': 20}, {'step': 30, 'a': -30.0}]
  assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.jsonl']


def test_a_last_row_whole_but_for_its_newline_is_not_joined_by_the_next(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text(json.dumps({'step': 10, 'a': 1.0}) + '\n' + json.dumps({'step': 20, 'a': 2.0}))
  writer = reporting.JsonlWriter(str(path), resume_step=20)
  writer.write_scalars(30, {'a': 3.0})
  writer.close()
  assert [row['step'] for row in _lines(path)] == [10, 20, 30]


def test_object_store_jsonl_is_rewritten_whole_on_flush(tmp_path):
  # gs:// cannot append: the remote mode keeps the rows and writes the whole file on flush
  # (exercised here on a local path with remote=True).
  path = tmp_path / 'metrics.jsonl'
  path.write_text(json.dumps({'step': 1, 'a': 0.0}) + '\n')  # From before a resumption.
  writer = reporting.JsonlWriter(str(path), remote=True)
  writer.write_scalars(2, {'a': 2.0})
  assert [r['step'] for r in _lines(path)] == [1]  # Not yet flushed.
  writer.flush()
  assert _lines(path) == [{'step': 1, 'a': 0.0}, {'step': 2, 'a': 2.0}]
  writer.write_scalars(3, {'a': 3.0})
  writer.close()
  assert [r['step'] for r in _lines(path)] == [1, 2, 3]


def test_results_record_keeps_per_class_accuracies_out_of_final_best_and_summary(tiny_npz):
  from tests.conftest import tiny_config  # pylint: disable=g-import-not-at-top
  history = [reporting.evaluation_row(10, {'teacher_accuracy': np.array([0.5, 0.7]),
                                           'teacher_class_accuracy': np.array([[1.0, 0.0]] * 2)}),
             reporting.evaluation_row(20, {'teacher_accuracy': np.array([0.6, 0.65]),
                                           'teacher_class_accuracy': np.array([[0.5, 0.75]] * 2)})]
  record = reporting.results_record(
      tiny_config(tiny_npz, num_runs=2), history, seeds=[0, 1], split_seeds=[0, 1],
      priors=[[0.25, 0.75], [0.5, 0.5]], steps=25,
      steps_per_epoch=10, labeled_batch_size=4, mesh_devices=1, wall_time_s=1.0,
      resumed_from_step=0, images_per_second=1.0, models=('student', 'teacher'),
      reported_model='teacher', num_labels=40)
  assert record['num_labels'] == 40
  assert record['models'] == ['student', 'teacher'] and record['reported_model'] == 'teacher'
  assert record['final'] == {'teacher_accuracy': [0.6, 0.65]}
  assert record['best'] == {'teacher_accuracy': [0.6, 0.7]}
  assert record['final_per_class'] == {'teacher_class_accuracy': [[0.5, 0.75]] * 2}
  assert record['labeled_class_prior'] == [[0.25, 0.75], [0.5, 0.5]]
  assert set(record['summary']) == {'teacher_accuracy_mean', 'teacher_accuracy_std'}
  # Over runs, in %: the mean and the standard deviation of the runs as a population (ddof 0, as
  # launch/aggregate.py's tables).
  assert record['summary']['teacher_accuracy_mean'] == pytest.approx(62.5)
  assert record['summary']['teacher_accuracy_std'] == pytest.approx(2.5)
  assert record['epochs'] == 2.5


def test_without_tensorboard_the_writer_is_metrics_jsonl_alone(tmp_path):
  """config.tensorboard=False: no event files, and clu's writer (TensorFlow) is not created."""
  writer = reporting.create_writer(str(tmp_path), tensorboard=False)
  assert isinstance(writer, reporting.JsonlWriter)
  writer.write_hparams({'lr': 0.1})
  writer.write_scalars(3, {'loss': 1.5})
  writer.close()
  assert _lines(tmp_path / 'metrics.jsonl') == [{'step': 3, 'loss': 1.5}]
  assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.jsonl']


def test_accuracy_keys_have_one_scheme():
  """reporting.accuracy_key is the one place the evaluation keys are spelled (the trainer writes
  them, launch/aggregate.py reads them)."""
  assert reporting.accuracy_key('teacher') == 'teacher_accuracy'
  assert reporting.accuracy_key('student', 'validation', 'top5') == (
      'validation_student_top5_accuracy')
  assert reporting.accuracy_key('student', 'test', 'per_class') == 'student_class_accuracy'
  with pytest.raises(KeyError):
    reporting.accuracy_key('student', 'test', 'top1')
