"""Accuracy against the training budget: one line per row, one point per budget (run root).

  python launch/plot_budget_curve.py --roots docs/runs/alc_study/ABC,docs/runs/alc_study/E \
      --rows 'supervised,mean_teacher--supervised_normalization=labeled|mean_teacher' \
      --out docs/alc_study/budget_curve.png --split validation

Each root holds runs of one budget (the sweep's layout, read by launch/aggregate.py's load_runs;
every run trains with its own cosine schedule over its budget, so this is not one run's curve over
training). Rows are matched by their directory name; 'a|b' joins names that one row has in
different roots (the first found in a root is used); 'row:student', 'row:teacher' or 'row:ema'
reads that model (aggregate.py's --metric), otherwise the model the run reports (its 'auto': the
teacher for Mean Teacher, FixMatch's EMA where it keeps one). Prints the table it plots: mean ±
std over seeds of the final accuracy.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax import methods  # pylint: disable=g-import-not-at-top,wrong-import-position


def parse_rows(spec):
  """'a|b:student,c' -> [(['a', 'b'], 'student'), (['c'], 'auto')]."""
  rows = []
  for item in spec.split(','):
    names, _, metric = item.partition(':')
    if metric and metric not in methods.EVALUATED_MODELS:
      raise ValueError(f"row {item!r}: the model after ':' is 'student', 'teacher' or 'ema', "
                       f"not {metric!r}")
    rows.append((names.split('|'), metric or 'auto'))
  return rows


def budget_points(roots, rows, split):
  """{row label: [(epochs, mean, std, n)]} for the runs whose row name is in `rows` (parse_rows's
  pairs); runs of one row and one budget found under several roots are pooled (more seeds of the
  same point)."""
  pooled = {}
  for root in roots:
    by_metric = {}  # {metric: {row name: runs}}, each root read once per model asked for.
    for names, metric in rows:  # Each entry: alternative names of one row, the model read.
      if metric not in by_metric:
        by_metric[metric] = {}
        for run in aggregate.load_runs(root, metric=metric, split=split):
          by_metric[metric].setdefault(run.name, []).append(run)
      by_name = by_metric[metric]
      found = [n for n in names if n in by_name]
      if not found:
        continue
      runs = by_name[found[0]]
      label = aggregate.method_label(runs[0].results) + (
          '' if '@' not in found[0] else f" @{found[0].split('@')[1].split('--')[0]}") + (
              '' if metric == 'auto' else f' ({metric})')
      for run in runs:
        key = (label, round(float(run.results['epochs']), 1))
        pooled.setdefault(key, []).append(run.accuracy)
  points = {}
  for (label, epochs), accuracies in pooled.items():
    accuracy = np.concatenate(accuracies)
    points.setdefault(label, []).append((epochs, accuracy.mean(), accuracy.std(), accuracy.size))
  return points


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--roots', required=True, help='comma list, one run root per budget')
  p.add_argument('--rows', required=True,
                 help="comma list of row names; 'a|b' joins two names of one row, "
                      "'a:student', 'a:teacher' or 'a:ema' reads that model")
  p.add_argument('--out', required=True, help='the PNG to write')
  p.add_argument('--split', default='test', choices=('test', 'validation'))
  args = p.parse_args(argv)
  try:
    rows = parse_rows(args.rows)
  except ValueError as e:
    p.error(str(e))
  points = budget_points(args.roots.split(','), rows, args.split)
  if not points:
    p.error('no run of those rows under those roots')
  budgets = sorted({e for values in points.values() for e, *_ in values})
  print(f'| Row ({args.split} accuracy, %) | ' + ' | '.join(f'{e:.1f} epochs' for e in budgets)
        + ' |\n|---|' + '---|' * len(budgets))
  for label, values in points.items():
    cells = {e: f'{m:.2f} ± {s:.2f} (n={n})' for e, m, s, n in values}
    print(f'| {label} | ' + ' | '.join(cells.get(e, 'not run') for e in budgets) + ' |')
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, values in points.items():
    e, m, s, _ = (np.asarray(v) for v in zip(*sorted(values)))
    ax.errorbar(e, m, yerr=s, marker='o', capsize=3, label=label)
  ax.set_xscale('log')
  ax.set_xticks(budgets, [f'{e:g}' for e in budgets])  # The budgets run, not 10^k.
  ax.minorticks_off()
  ax.set_xlabel('training budget (epochs; each point its own cosine schedule)')
  ax.set_ylabel(f'{args.split} accuracy (%), mean ± std over seeds')
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  fig.tight_layout()
  fig.savefig(args.out, dpi=110)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
