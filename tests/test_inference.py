"""Using a trained model (alc_jax/inference.py and its tools predict, evaluate, export): one tiny
run on a folder data set (two runs side by side, ZCA on), shared by every test."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from PIL import Image

from alc_jax import evaluate, export, inference, predict, train, workdir_io
from tests.conftest import ROOT, make_tiny_images, tiny_config

CLASSES = ('circle', 'square', 'star')  # Folder names; sorted, so label k is CLASSES[k].


@pytest.fixture(scope='module')
def folder_data(tmp_path_factory):
  root = tmp_path_factory.mktemp('shapes')
  rng = np.random.default_rng(1)
  for split, n in (('train', 72), ('test', 30)):
    x, y = make_tiny_images(n, len(CLASSES), 16, rng)
    for i, (image, label) in enumerate(zip(x, y)):
      folder = root / split / CLASSES[label]
      folder.mkdir(parents=True, exist_ok=True)
      Image.fromarray(image[..., 0]).save(folder / f'{i:03d}.png')
  return root


@pytest.fixture(scope='module')
def run(folder_data, tmp_path_factory):
  """(workdir, results) of a finished tiny run: Mean Teacher + ALC (a teacher, reported), ZCA."""
  # Long enough to tell the classes apart (a model at chance would hide a wrong normalisation),
  # with BatchNorm statistics that settle within it.
  # (Run 0 reached 87 % for the student, 70 % for the teacher.)
  config = tiny_config('', num_runs=2, num_train_steps=60, eval_every_steps=60,
                       checkpoint_every_steps=30, log_every_steps=30, **{
                           'dataset.name': 'folder', 'dataset.path': str(folder_data),
                           'dataset.num_labels': 48, 'dataset.zca': True,
                           'model.bn_momentum': 0.9})
  workdir = str(tmp_path_factory.mktemp('run'))
  return workdir, train.train_and_evaluate(config, workdir)


def _read_csv(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def _test_accuracy(rows):
  """Share of rows whose predicted class is the folder the image is in."""
  return np.mean([row['class'] == os.path.basename(os.path.dirname(row['path'])) for row in rows])


def test_metadata_is_written_at_the_start_of_the_run(run):
  workdir, _ = run
  info = json.load(open(os.path.join(workdir, inference.METADATA_FILE)))
  assert info['image_shape'] == [16, 16, 1] and info['num_classes'] == 3
  assert info['reported_model'] == 'teacher' and info['models'] == ['student', 'teacher']
  assert info['config']['num_runs'] == 2 and info['config']['dataset']['zca']
  assert info['class_names'] == list(CLASSES)
  with np.load(os.path.join(workdir, inference.NORMALIZATION_FILE)) as f:
    assert sorted(f.files) == ['mean', 'std', 'zca', 'zca_mean']
    assert f['zca'].shape == (256, 256)
  # Before the first checkpoint, so that an interrupted run's checkpoint is usable too.
  first_checkpoint = min(os.scandir(os.path.join(workdir, 'checkpoints')),
                         key=lambda e: e.stat().st_mtime)
  assert (os.path.getmtime(os.path.join(workdir, inference.METADATA_FILE))
          <= first_checkpoint.stat().st_mtime)


def test_predict_csv_reproduces_the_reported_test_accuracy(run, folder_data, tmp_path):
  """The issue's acceptance check: the accuracy of predict's CSV on the test folder is the run's
  reported test accuracy, for the reported model (the teacher) and the student of either run."""
  workdir, results = run
  for weights, run_index in (('reported', 0), ('student', 1), ('teacher', 1)):
    out = str(tmp_path / f'{weights}{run_index}.csv')
    model = predict.predict(workdir, str(folder_data / 'test'), out, weights=weights,
                            run=run_index)
    rows = _read_csv(out)
    assert len(rows) == 30
    assert list(rows[0]) == ['path', 'class', 'confidence'] + [f'p_{c}' for c in CLASSES]
    name = 'teacher' if weights == 'reported' else weights
    assert model.weights == name and model.run == run_index and model.step == 60
    assert _test_accuracy(rows) == pytest.approx(
        results['final'][f'{name}_accuracy'][run_index], abs=1e-12), (weights, run_index)
    for row in rows:
      p = np.array([float(row[f'p_{c}']) for c in CLASSES])
      assert row['class'] == CLASSES[p.argmax()] and float(row['confidence']) == p.max()
      assert p.sum() == pytest.approx(1, abs=1e-4)


def test_load_selects_weights_and_runs(run, folder_data):
  workdir, _ = run
  images = inference.open_images(str(folder_data / 'test'), (16, 16, 1)).read(0, 12)
  teacher = inference.load(workdir)
  assert teacher.weights == 'teacher' and teacher.run == 0
  assert teacher.class_names == CLASSES and teacher.image_shape == (16, 16, 1)
  probabilities = teacher.predict(images)
  assert probabilities.shape == (12, 3) and probabilities.dtype == np.float32
  # Padding and batching change nothing: rows do not interact.
  np.testing.assert_allclose(teacher.predict(images, batch_size=5), probabilities, atol=1e-6)
  others = [inference.load(workdir, weights='student').predict(images),
            inference.load(workdir, run=1).predict(images)]
  for other in others:  # Other weights: other outputs.
    assert np.abs(other - probabilities).max() > 1e-4
  # Another size and channel count is converted (RGB 20x20 -> grayscale 16x16).
  rgb = np.repeat(np.stack([np.asarray(Image.fromarray(x[..., 0]).resize((20, 20)))
                            for x in images[:2]]), 3, axis=0).reshape(2, 20, 20, 3)
  assert teacher.predict(rgb).shape == (2, 3)


def test_predict_reads_an_npz_and_a_single_image(run, folder_data, tmp_path):
  workdir, _ = run
  files = sorted((folder_data / 'test' / 'star').iterdir())[:3]
  x = np.stack([np.asarray(Image.open(f)) for f in files])  # (3, 16, 16): grayscale.
  np.savez(tmp_path / 'pool.npz', x=x)
  predict.predict(workdir, str(tmp_path / 'pool.npz'), str(tmp_path / 'npz.csv'))
  predict.predict(workdir, str(files[0]), str(tmp_path / 'one.csv'))
  rows, one = _read_csv(tmp_path / 'npz.csv'), _read_csv(tmp_path / 'one.csv')
  assert [r['path'] for r in rows] == [f'{tmp_path / "pool.npz"}[{i}]' for i in range(3)]
  assert one[0]['path'] == str(files[0])
  assert float(one[0]['p_star']) == pytest.approx(float(rows[0]['p_star']), rel=1e-5)


def test_evaluate_writes_metrics_and_the_confusion_matrix(run, folder_data, tmp_path):
  workdir, results = run
  record = evaluate.evaluate(workdir, str(folder_data / 'test'), str(tmp_path / 'eval'))
  saved = json.load(open(tmp_path / 'eval' / 'metrics.json'))
  assert saved == json.loads(json.dumps(record))
  for key in ('accuracy', 'balanced_accuracy', 'macro_f1', 'per_class', 'confusion_matrix',
              'class_names', 'num_images', 'weights', 'run', 'step'):
    assert key in saved
  assert saved['accuracy'] == pytest.approx(results['final']['teacher_accuracy'][0], abs=1e-12)
  assert list(saved['per_class']) == list(CLASSES)
  assert set(saved['per_class']['star']) == {'precision', 'recall', 'f1', 'support'}
  assert np.sum(saved['confusion_matrix']) == 30
  with open(tmp_path / 'eval' / 'confusion_matrix.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_a_file_name_that_is_not_utf8_keeps_its_bytes_in_the_csv(tmp_path):
  name = os.fsdecode(b'caf\xe9.png')  # As os.listdir gives a Latin-1 name from an old zip.
  predict.write_csv(str(tmp_path / 'p.csv'), [name], np.array([[0.25, 0.75]]), ('cat', 'dog'))
  assert (tmp_path / 'p.csv').read_bytes().splitlines()[1] == b'caf\xe9.png,dog,0.75,0.25,0.75'


def test_a_csv_write_that_fails_keeps_the_previous_csv_whole(tmp_path):
  path = str(tmp_path / 'predictions.csv')
  probabilities = np.array([[0.2, 0.8], [0.9, 0.1]])
  predict.write_csv(path, ['a.png', 'b.png'], probabilities, ('cat', 'dog'))
  before = open(path, encoding='utf-8').read()
  assert before.splitlines()[1] == 'a.png,dog,0.8,0.2,0.8'

  def failing():  # One row, then the prediction fails.
    yield probabilities[0]
    raise RuntimeError('prediction failed')

  with pytest.raises(RuntimeError, match='prediction failed'):
    predict.write_csv(path, ['a.png', 'b.png'], failing(), ('cat', 'dog'))
  assert open(path, encoding='utf-8').read() == before
  assert os.listdir(tmp_path) == ['predictions.csv']  # No temporary file left.


def test_classification_metrics_against_hand_computed_values():
  # Classes 0 and 1: 3 true each, 2 found, 1 false alarm; class 2: 1 true, none predicted;
  # class 3: never present, predicted once.
  labels = [0, 0, 0, 1, 1, 2, 1]
  predictions = [0, 0, 1, 1, 0, 3, 1]
  m = evaluate.classification_metrics(labels, predictions, num_classes=5)
  np.testing.assert_array_equal(m['confusion_matrix'], [
      [2, 1, 0, 0, 0], [1, 2, 0, 0, 0], [0, 0, 0, 1, 0], [0] * 5, [0] * 5])
  assert m['accuracy'] == pytest.approx(4 / 7)
  np.testing.assert_allclose(m['precision'], [2 / 3, 2 / 3, 0, 0, 0])
  np.testing.assert_allclose(m['recall'], [2 / 3, 2 / 3, 0, 0, 0])
  np.testing.assert_array_equal(m['support'], [3, 3, 1, 0, 0])
  np.testing.assert_allclose(m['f1'], [2 / 3, 2 / 3, 0, 0, 0])
  # Balanced accuracy: the mean recall of the classes present (0, 1, 2); macro F1: of the classes
  # present or predicted (0, 1, 2, 3); class 4 (neither) counts in neither (scikit-learn's rule).
  assert m['balanced_accuracy'] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
  assert m['macro_f1'] == pytest.approx((2 / 3 + 2 / 3) / 4)
  # Precision and recall apart: class 0 found once of 3 (never wrongly), class 1 predicted 3 times
  # for its 1 image.
  m = evaluate.classification_metrics([0, 0, 0, 1], [0, 1, 1, 1], num_classes=2)
  np.testing.assert_allclose(m['precision'], [1, 1 / 3])
  np.testing.assert_allclose(m['recall'], [1 / 3, 1])
  np.testing.assert_allclose(m['f1'], [0.5, 0.5])
  assert m['balanced_accuracy'] == pytest.approx(2 / 3) and m['accuracy'] == 0.5
  perfect = evaluate.classification_metrics([0, 1, 1], [0, 1, 1], num_classes=2)
  assert perfect['accuracy'] == perfect['balanced_accuracy'] == perfect['macro_f1'] == 1.0


def test_export_equals_predict_and_loads_without_alc_jax(run, folder_data, tmp_path):
  workdir, _ = run
  # The run's class names in an order that is not sorted (an npz's class_names may be in any):
  # the export keeps the run's order (index = class id).
  copy = tmp_path / 'run'
  shutil.copytree(workdir, copy)
  metadata = json.loads((copy / 'inference.json').read_text())
  metadata['class_names'] = list(reversed(CLASSES))
  (copy / 'inference.json').write_text(json.dumps(metadata))
  out = tmp_path / 'exported'
  export.export(str(copy), str(out))
  model = inference.load(workdir)
  images = inference.open_images(str(folder_data / 'test'), model.image_shape).read(0, 10)
  with open(out / 'model.jaxexport', 'rb') as f:
    forward = jax.export.deserialize(bytearray(f.read()))
  for n in (3, 10):  # The batch size is symbolic.
    np.testing.assert_allclose(np.asarray(forward.call(images[:n])), model.predict(images[:n]),
                               rtol=1e-5, atol=1e-6)
  info = json.load(open(out / 'model.json'))
  assert info['class_names'] == list(reversed(CLASSES)) and info['image_shape'] == [16, 16, 1]
  assert (info['weights'], info['run'], info['step']) == (model.weights, 0, model.step)
  assert info['platforms'] == ['cpu', 'cuda'] and info['num_classes'] == len(CLASSES)
  assert (f'It is the {model.weights} of run 0 at step {model.step}'
          in (out / 'README.md').read_text())
  # The README's snippet, as it is, in a process without alc_jax.
  snippet = re.search(r'```python\n(.*?)```', (out / 'README.md').read_text(), re.S).group(1)
  np.save(tmp_path / 'images.npy', images)
  check = textwrap.dedent(f"""
      import sys
      assert not any(m.startswith('alc_jax') for m in sys.modules), 'alc_jax was imported'
      np.save({str(tmp_path / 'out.npy')!r},
              np.asarray(forward.call(np.load({str(tmp_path / 'images.npy')!r}))))
      """)
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  proc = subprocess.run([sys.executable, '-c', snippet + check], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert re.search(r"\['(circle|square|star)', '(circle|square|star)'\]", proc.stdout)
  np.testing.assert_allclose(np.load(tmp_path / 'out.npy'), model.predict(images), rtol=1e-5,
                             atol=1e-6)
  # The module docstring shows the same snippet.
  assert textwrap.indent(export.SNIPPET.format(directory='my_export'), '  ') in export.__doc__


def test_evaluate_and_export_write_to_a_bucket(run, folder_data, tmp_path, monkeypatch):
  """--out=gs://...: the files go to the bucket by their full names (no local 'gs:' folder), and
  the README's snippet loads a local copy of the folder, saying how to make it."""
  workdir, _ = run
  written = {}
  monkeypatch.setattr(workdir_io, 'write_bytes', lambda path, data: written.update({path: data}))
  monkeypatch.chdir(tmp_path)
  evaluate.evaluate(workdir, str(folder_data / 'test'), 'gs://bucket/eval')
  export.export(workdir, 'gs://bucket/exported', platforms=('cpu',))
  assert sorted(written) == [f'gs://bucket/{name}' for name in (
      'eval/confusion_matrix.png', 'eval/metrics.json', 'exported/README.md',
      'exported/model.jaxexport', 'exported/model.json')]
  assert not os.listdir(tmp_path)
  readme = written['gs://bucket/exported/README.md'].decode()
  assert 'Copy the folder from its bucket first: `gsutil cp -r gs://bucket/exported .`' in readme
  assert export.SNIPPET.format(directory='exported') in readme


def test_errors_are_one_line(run, folder_data, tmp_path):
  workdir, _ = run
  with pytest.raises(inference.InferenceError, match='is not the workdir of a run'):
    inference.load(str(tmp_path))
  (tmp_path / 'config.json').write_text('{}')
  with pytest.raises(inference.InferenceError, match='predates inference.json'):
    inference.load(str(tmp_path))
  unfinished = tmp_path / 'unfinished'  # Its metadata, no checkpoint yet.
  unfinished.mkdir()
  for name in (inference.METADATA_FILE, inference.NORMALIZATION_FILE):
    shutil.copy(os.path.join(workdir, name), unfinished)
  with pytest.raises(inference.InferenceError, match='has no checkpoint yet'):
    inference.load(str(unfinished))
  (unfinished / 'checkpoints').mkdir()
  with pytest.raises(inference.InferenceError, match='has no checkpoint yet'):
    inference.load(str(unfinished))
  with pytest.raises(inference.InferenceError, match=r'run=2 is out of range.*0\.\.1'):
    inference.load(workdir, run=2)
  with pytest.raises(inference.InferenceError, match=r'has no ema \(it trained student and '
                     r'teacher\): choose weights=student or weights=teacher\.'):
    inference.load(workdir, weights='ema')
  model = inference.load(workdir)
  with pytest.raises(inference.InferenceError, match=r'dtype float32; expected uint8'):
    model.predict(np.zeros((2, *model.image_shape), np.float32))  # Floats are not pixel values.
  with pytest.raises(inference.InferenceError, match=r'shape \(2, 3\); expected \(N, H, W, C\)'):
    model.predict(np.zeros((2, 3), np.uint8))
  wrong = tmp_path / 'wrong'  # A class folder the run does not have.
  shutil.copytree(folder_data / 'test' / 'star', wrong / 'triangle')
  with pytest.raises(inference.InferenceError, match='these are not: triangle'):
    evaluate.evaluate(workdir, str(wrong), str(tmp_path / 'eval'))
  # The command line prints them as one line, without a traceback.
  cmd = [sys.executable, '-m', 'alc_jax.predict', f'--workdir={workdir}',
         f'--input={folder_data / "test"}', f'--out={tmp_path / "p.csv"}', '--run=5']
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith('Error: run=5 is out of range')
  assert 'Traceback' not in proc.stderr
  # Without --workdir, the flag parser says so (the tools need to know which run's model).
  proc = subprocess.run(cmd[:3] + cmd[4:6], cwd=ROOT, capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  assert 'Flag --workdir must have a value other than None' in proc.stderr, proc.stderr[-3000:]
