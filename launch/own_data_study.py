"""Issue 29's check on real data no one here made: a user's path, end to end, on scikit-learn's
handwritten digits (UCI optdigits test set: 1,797 8x8 images of 16 grey levels, shipped inside
the scikit-learn wheel).

  .venv/bin/pip install scikit-learn      # Only this script needs it.
  .venv/bin/python launch/own_data_study.py [--root runs/own_data] [--steps 1200]

1. Lays the digits out as a user would: ROOT/digits/labeled/<class>/*.png with uneven counts
   (6-14 per class, ~100 in all), ROOT/digits/unlabeled/part<k>/*.png (no labels, sub-folders),
   ROOT/digits/test/<class>/*.png (50 per class). The 8x8 PNGs are trained at 32x32
   (config.dataset.image_size=32: the loader's bicubic resize).
2. Trains supervised, Mean Teacher and Mean Teacher + ALC on it (3 seeds side by side, CNN-13 at
   1/16 width, the CPU recipe of configs/fashion_mnist_cpu.py), each with `python -m alc_jax.main`.
3. For each run: `alc_jax.predict` on the test folder (every seed), the accuracy recomputed from its
   CSV against results.json; `alc_jax.evaluate` (seed 0); `alc_jax.export` (seed 0) and the
   artifact's probabilities against predict's.
Prints a table and writes ROOT/summary.json; rerunning resumes (finished runs are skipped).
"""

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from alc_jax import reporting  # noqa: E402  pylint: disable=wrong-import-position

PY = sys.executable
ROWS = ('supervised', 'mean_teacher', 'mean_teacher_alc')
CLASS_NAMES = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')


def write_folders(root, seed=0):
  """The digits as labeled / unlabeled / test folders; returns the labeled count per class."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)
  labels = digits.target
  rng = np.random.default_rng(seed)
  counts = rng.integers(6, 15, size=10)
  placed = {}
  for k in range(10):
    idx = rng.permutation(np.flatnonzero(labels == k))
    placed.update({i: ('test', k) for i in idx[:50]})
    placed.update({i: ('labeled', k) for i in idx[50:50 + counts[k]]})
    placed.update({i: ('unlabeled', None) for i in idx[50 + counts[k]:]})
  for i, (split, k) in sorted(placed.items()):
    if split == 'unlabeled':
      folder = os.path.join(root, 'unlabeled', f'part{i % 4}')
    else:
      folder = os.path.join(root, split, CLASS_NAMES[k])
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(images[i], mode='L').save(os.path.join(folder, f'{i:04d}.png'))
  return counts.tolist()


def run(args, **kwargs):
  print('$', ' '.join(args), flush=True)
  return subprocess.run(args, check=True, **kwargs)


def csv_accuracy(path, test_root):
  """Accuracy of predict's CSV against the class folder each test image lies in."""
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  right = [os.path.basename(os.path.dirname(r['path'])) == r['class'] for r in rows]
  assert rows and all(os.path.commonpath([test_root, os.path.abspath(r['path'])]) == test_root
                      for r in rows)
  return float(np.mean(right)), len(rows)


def _export_gap(workdir, export_dir, test_root, n=64):
  """Largest |p_export - p_predict| on the first n test images (seed 0)."""
  import jax  # pylint: disable=g-import-not-at-top
  from alc_jax import inference  # pylint: disable=g-import-not-at-top
  model = inference.load(workdir)
  images = inference.open_images(test_root, model.image_shape).read(0, n)
  with open(os.path.join(export_dir, 'model.jaxexport'), 'rb') as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  gap = float(np.max(np.abs(np.asarray(exported.call(images)) - model.predict(images))))
  assert gap < 1e-5, gap
  return gap


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--root', default='runs/own_data')
  parser.add_argument('--steps', type=int, default=1200)
  args = parser.parse_args()
  root = os.path.abspath(args.root)
  data = os.path.join(root, 'digits')
  if not os.path.isdir(data):
    counts = write_folders(data)
    print(f'labeled images per class: {counts} ({sum(counts)} in all)', flush=True)
  test_root = os.path.join(data, 'test')
  summary = {}
  for row in ROWS:
    workdir = os.path.join(root, row)
    results_path = os.path.join(workdir, 'results.json')
    if not os.path.exists(results_path):
      os.makedirs(workdir, exist_ok=True)
      with open(os.path.join(workdir, 'log.txt'), 'w') as log:
        run([PY, '-m', 'alc_jax.main', f'--config=configs/fashion_mnist_cpu.py:{row}',
             f'--workdir={workdir}', '--config.dataset.name=folder',
             f'--config.dataset.path={data}', '--config.dataset.num_labels=-1',
             '--config.dataset.image_size=32', f'--config.num_train_steps={args.steps}',
             # The CPU recipe's ramp-up (300 steps) in this data set's epochs (13 steps).
             f'--config.consistency_rampup_epochs={300 / 13:.2f}',
             f'--config.eval_every_steps={args.steps // 4}',
             f'--config.checkpoint_every_steps={args.steps // 4}'],
            stdout=log, stderr=subprocess.STDOUT)
    with open(results_path) as f:
      results = json.load(f)
    reported = results['reported_model']
    final = results['final'][reporting.accuracy_key(reported)]
    from_csv = []
    for k in range(results['num_runs']):
      out = os.path.join(workdir, f'predict_test_run{k}.csv')
      run([PY, '-m', 'alc_jax.predict', f'--workdir={workdir}', f'--input={test_root}',
           f'--out={out}', f'--run={k}'])
      accuracy, n = csv_accuracy(out, test_root)
      from_csv.append(accuracy)
      assert abs(accuracy - final[k]) < 1e-9, (row, k, accuracy, final[k])
    run([PY, '-m', 'alc_jax.evaluate', f'--workdir={workdir}', f'--data={test_root}',
         f'--out={os.path.join(workdir, "evaluate_run0")}'])
    export_dir = os.path.join(workdir, 'export_run0')
    run([PY, '-m', 'alc_jax.export', f'--workdir={workdir}', f'--out={export_dir}'])
    with open(os.path.join(workdir, 'evaluate_run0', 'metrics.json')) as f:
      metrics = json.load(f)
    export_gap = _export_gap(workdir, export_dir, test_root)
    summary[row] = {
        'reported_model': reported, 'test_accuracy': final, 'csv_accuracy': from_csv,
        'test_images': n, 'mean': 100 * float(np.mean(final)),
        'std': 100 * float(np.std(final)),
        'run0_balanced_accuracy': metrics['balanced_accuracy'],
        'run0_macro_f1': metrics['macro_f1'], 'labeled': results['num_labels'],
        'steps': results['steps'], 'wall_time_s': results['wall_time_s'],
        'export_max_abs_difference': export_gap}
  base = np.asarray(summary['supervised']['test_accuracy'])
  print('\n| Row | test accuracy (%, 3 seeds) | per seed | vs supervised (paired by seed) |')
  print('| --- | --- | --- | --- |')
  for row, s in summary.items():
    diff = 100 * (np.asarray(s['test_accuracy']) - base)
    print(f"| {row} ({s['reported_model']}) | {s['mean']:.2f} ± {s['std']:.2f} | "
          + ', '.join(f'{100 * a:.2f}' for a in s['test_accuracy'])
          + (' | — |' if row == 'supervised' else f' | {diff.mean():+.2f} |'))
  with open(os.path.join(root, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)


if __name__ == '__main__':
  main()
