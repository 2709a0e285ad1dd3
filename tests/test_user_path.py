"""A new user's path, as the README writes it: labeled/, unlabeled/ and test/ folders, the README's
training command, then its predict, evaluate and export commands, each run as a program. Only the
paths are replaced and a tiny budget appended; the accuracy recomputed from predict's CSV must
equal the test accuracy the run reports (issue 29's acceptance check)."""

import csv
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import ROOT, make_tiny_images

CLASSES = ('ant', 'bee', 'cat', 'dog')
# Appended to the README's training command: a budget for a test (later flags win). TinyCNN and
# no TensorBoard events (TensorFlow's import, ~4 s): tests/test_train_end_to_end.py covers both.
TINY = ('--config.num_train_steps=12', '--config.batch_size=16', '--config.labeled_batch_size=4',
        '--config.eval_every_steps=12', '--config.checkpoint_every_steps=12',
        '--config.log_every_steps=6', '--config.eval_batch_size=32',
        '--config.model.name=tiny_cnn', '--config.tensorboard=False')


def _readme_commands():
  """The README's commands of 'Train on your own images', one string each."""
  with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
    text = f.read()
  section = text[text.index('## Train on your own images'):]
  section = section[:section.index('\n## ', 5)]
  blocks = re.findall(r'```bash\n(.*?)```', section, re.S)
  commands = [c.strip() for block in blocks for c in block.replace('\\\n', ' ').splitlines()
              if c.strip().startswith('python -m alc_jax.')]
  assert [c.split()[2] for c in commands] == [
      'alc_jax.main', 'alc_jax.predict', 'alc_jax.evaluate', 'alc_jax.export'], commands
  return commands


def _write_folders(root):
  """Uneven labeled counts (3-8 per class), unlabeled images in sub-folders, a test set; mixed
  sizes (the loader resizes them to the most common labeled size)."""
  rng = np.random.default_rng(5)
  x, y = make_tiny_images(200, len(CLASSES), 16, rng)
  counts = {k: 3 + 2 * k - (k == 3) for k in range(len(CLASSES))}
  seen = {k: 0 for k in range(len(CLASSES))}
  for i, (image, label) in enumerate(zip(x[:160], y[:160])):
    if seen[label] < counts[label]:
      seen[label] += 1
      folder = root / 'labeled' / CLASSES[label]
    else:
      folder = root / 'unlabeled' / f'batch{i % 3}'
    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image[..., 0])
    if i % 7 == 0 and folder.parent.name == 'unlabeled':
      picture = picture.resize((20, 20)).convert('RGB')  # Another size and mode.
    picture.save(folder / f'{i:03d}.png')
  for i, (image, label) in enumerate(zip(x[160:], y[160:])):
    folder = root / 'test' / CLASSES[label]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0]).save(folder / f'{i:03d}.png')


def _run(command, tmp_path):
  args = shlex.split(command.replace('data/my_images', str(tmp_path / 'my_images'))
                     .replace('runs/my_images', str(tmp_path / 'run'))
                     .replace('data/new_photos', str(tmp_path / 'my_images' / 'test'))
                     .replace('predictions.csv', str(tmp_path / 'predictions.csv'))
                     .replace('eval_test', str(tmp_path / 'eval_test'))
                     .replace('my_export', str(tmp_path / 'my_export')))
  if args[2] == 'alc_jax.main':
    args += TINY
  args[0] = sys.executable
  proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc.stdout


def test_the_readme_commands_take_a_user_from_folders_to_predictions_and_an_export(tmp_path):
  _write_folders(tmp_path / 'my_images')
  train_command, predict_command, evaluate_command, export_command = _readme_commands()
  out = _run(train_command, tmp_path)
  assert '23 labeled training images (all of them)' in out, out
  results = json.loads((tmp_path / 'run' / 'results.json').read_text())
  reported = results['final'][f"{results['reported_model']}_accuracy"][0]
  _run(predict_command, tmp_path)
  with open(tmp_path / 'predictions.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0])[:3] == ['path', 'class', 'confidence']
  assert list(rows[0])[3:] == [f'p_{name}' for name in CLASSES]
  from_csv = np.mean([r['class'] == os.path.basename(os.path.dirname(r['path'])) for r in rows])
  assert len(rows) == 40 and abs(from_csv - reported) < 1e-9, (from_csv, reported)
  _run(evaluate_command, tmp_path)
  metrics = json.loads((tmp_path / 'eval_test' / 'metrics.json').read_text())
  assert abs(metrics['accuracy'] - reported) < 1e-9
  assert (tmp_path / 'eval_test' / 'confusion_matrix.png').stat().st_size > 0
  _run(export_command, tmp_path)
  assert (tmp_path / 'my_export' / 'model.jaxexport').stat().st_size > 0
  info = json.loads((tmp_path / 'my_export' / 'model.json').read_text())
  assert info['class_names'] == list(CLASSES) and info['image_shape'] == [16, 16, 1]
