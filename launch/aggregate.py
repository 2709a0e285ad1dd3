"""Collects every results.json under a root into results.md tables and PNG plots.

  python launch/aggregate.py --root runs/ --out docs/ [--metric auto|student|teacher]
                             [--which final|best] [--split test|validation]
                             [--paired-against mean_teacher,pi_model,supervised]

Experiments and rows come from the sweep's layout, root/<config stem>/<row>/seed<k>/results.json
(launch/sweep.py; also seed<a>-<b> and seeds<a>-<b>); a results.json elsewhere is filed under
'<dataset>_<num_labels>' and its method.
Each run of a results.json counts as one seed (a job with num_runs = 3 gives 3 seeds). Ours is the
mean +- std (numpy's std, ddof = 0, like results.json's summary) of the test accuracy at the end
of training ('final') over seeds, beside the paper's number (launch/paper_numbers.py); 'best'
reads results.json's `best` instead: each run's largest accuracy over its evaluations, per model
and key, chosen on the reported split itself (optimistic), per-class values still final.
Folders between the root and a config stem (e.g. a study's labels40/ and labels100/) are part of
the experiment: their runs are not merged into one row.
'auto' reports the model results.json names as `reported_model` (its method's choice in the
registry: the teacher (EMA) for Mean Teacher, as the Mean Teacher paper does, the student
otherwise). Under imbalanced label splits a per-class table and plot rank each run's
classes by their number of labels (results.json `labeled_class_prior`) and report the classes
with the most and the fewest labels. Every row is also compared with the mean_teacher, pi_model
and supervised rows (--paired-against), paired by seed and label split: the mean difference, its
95 % t interval (mean ± t_0.975,n-1 · sd / √n over the pairs) and each pair's difference. Plots
(matplotlib, Agg): accuracy over training per row (Fig. 5/7), per-class accuracy by label rank,
accuracy against w2 where runs differ only in config.alc.weight (Fig. 6), S of 100 test images
ordered by class, and the attention monitors over training. `--split validation` reports the
held-out validation split instead (config.dataset.validation_size > 0): what hyperparameters are
chosen on.
"""

import argparse
import collections
import importlib
import json
import os
import re
import sys

import numpy as np
from scipy import stats  # A dependency of jax (its install_requires), so always installed.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.dirname(os.path.abspath(__file__))):
  if path not in sys.path:
    sys.path.insert(0, path)

import paper_numbers  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax import host, methods  # pylint: disable=g-import-not-at-top,wrong-import-position
from alc_jax import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position

# The methods' names in tables: the registry's labels (alc_jax/methods/).
NAMES = {name: method.label for name, method in methods.REGISTRY.items()}
SEED_DIR = re.compile(r'^seeds?\d+(-\d+)?$')  # seed3, seed0-2 (sweep.py), seeds0-2.
RATIO_SUFFIX = re.compile(r'_ratio[0-9.]+$')
# similarity_same_class is over all pairs with every example's true label (runs from before the
# all-pairs diagnostic logged the labeled-pairs share under that name).
MONITORS = ('monitors/similarity_diagonal', 'monitors/similarity_entropy',
            'monitors/similarity_same_class', 'monitors/attention_logit_spread')
SPLITS = ('test', 'validation')

# One results.json: where it belongs, its accuracies (percent, one per run) and which model.
Run = collections.namedtuple(
    'Run', 'experiment stem name base workdir results accuracy top5 model')


def method_label(results):
  """'MeanTeacher + ALC (soft) [pooling max]' from results.json's fields."""
  label = NAMES.get(results['method'], results['method'])
  if results.get('alc'):
    label += ' + ALC'
    if results.get('alc_imbalance', 'none') != 'none':
      label += f" ({results['alc_imbalance']})"
    alc = results.get('config', {}).get('alc', {})
    if alc.get('similarity', 'attention') != 'attention':
      label += f" [{alc['similarity']} similarity]"
    else:
      if alc.get('pooling', 'max_avg') != 'max_avg':
        label += f" [pooling {alc['pooling']}]"
      if not alc.get('channel_attention', True):
        label += ' [no channel attention]'
  return label


def read_model(results, metric):
  """The model whose accuracy is read: `metric` ('student', 'teacher', 'ema'), or with 'auto'
  the one results.json names as its method's (`reported_model`). FixMatch runs from before
  2026-12-05 recorded their EMA as 'teacher': `--metric ema` reads that there."""
  if metric == 'ema' and 'ema' not in results.get('models', ['ema']):
    return 'teacher'  # An older FixMatch run: its EMA was recorded as 'teacher'.
  if metric != 'auto':
    return metric
  if 'reported_model' in results:  # The run says which model its method reports.
    return results['reported_model']
  # Runs from before results.json said it: the teacher for Mean Teacher (and SNTG on it).
  config = results.get('config', {})
  base = config.get('sntg', {}).get('base') if results['method'] == 'sntg' else results['method']
  teacher = base == 'mean_teacher' and 'teacher_accuracy' in results.get('final', {})
  return 'teacher' if teacher else 'student'


def load_runs(root, metric='auto', which='final', split='test'):
  runs = []
  for dirpath, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if d != 'checkpoints')  # Nothing of ours in there.
    if 'results.json' not in files:
      continue
    try:
      runs.append(_load_run(root, dirpath, metric, which, split))
    except (OSError, ValueError, KeyError) as e:  # A truncated or foreign results.json.
      print(f'skipping {dirpath}/results.json: {e!r}', file=sys.stderr)
  return runs


def _load_run(root, dirpath, metric, which, split='test'):
  with open(os.path.join(dirpath, 'results.json'), encoding='utf-8') as f:
    results = json.load(f)
  parts = os.path.relpath(dirpath, root).split(os.sep)
  above = []  # Folders between the root and the stem (a study's parts, e.g. labels40/).
  if len(parts) >= 3 and SEED_DIR.match(parts[-1]):
    stem, name, above = parts[-3], parts[-2], parts[:-3]
  else:  # Not the sweep's layout: file it under its data set and method.
    stem = f"{results['dataset']}_{results['num_labels']}"
    name = re.sub(r'[^a-z0-9]+', '_', method_label(results).lower()).strip('_')
  # The folders above are part of the experiment: runs of labels40/ and labels100/ under one
  # root were one row (n = 6), and their pairs overwrote each other.
  experiment = '/'.join(above + [stem])
  if results.get('imbalance_ratio', 1) != 1:
    experiment = f"{experiment} (1:{results['imbalance_ratio']:g})"
  model = read_model(results, metric)
  key = reporting.accuracy_key(model, split)
  if key not in results[which]:
    models = results.get('models')
    if models is not None and model not in models:
      raise ValueError(f'{dirpath}/results.json has no {model} model (it evaluated '
                       f'{" and ".join(models)}): use --metric auto or one of those')
    raise ValueError(f'{dirpath}/results.json has no {key}: was it trained with '
                     f'config.dataset.validation_size > 0?')
  accuracy = 100 * np.asarray(results[which][key], float).reshape(-1)
  top5 = results[which].get(reporting.accuracy_key(model, split, 'top5'))
  top5 = None if top5 is None else 100 * np.asarray(top5, float).reshape(-1)
  return Run(experiment, stem, name, name.split('--')[0], dirpath, results, accuracy, top5,
             model)


def _row_order(stem):
  """The config's ROWS (the paper's order), else the paper's table order."""
  try:
    rows = importlib.import_module(f'configs.{stem}').ROWS
  except (ImportError, AttributeError, ValueError):
    rows = [name for s, name in paper_numbers.PAPER if s == stem]
  return [RATIO_SUFFIX.sub('', r) for r in rows]


def _base_row(name):
  """'mean_teacher_alc_soft_ratio10--alc.weight=3' -> 'mean_teacher_alc_soft'."""
  return RATIO_SUFFIX.sub('', name.split('--')[0])


def group(runs):
  """{experiment: {row name: [Run]}}: experiments by stem and ratio, rows in the paper's order."""
  by_experiment = {}
  for run in sorted(runs, key=lambda r: (r.stem, r.results.get('imbalance_ratio', 1), r.name,
                                         r.workdir)):
    by_experiment.setdefault(run.experiment, {}).setdefault(run.name, []).append(run)
  out = {}
  for experiment, rows in by_experiment.items():
    order = _row_order(next(iter(rows.values()))[0].stem)

    def rank(name, order=order):  # Paper order, then numbers by value (w2=2 before w2=10).
      base = _base_row(name)
      number = r'[0-9]+(?:\.[0-9]+)?'
      natural = [(0, float(t), '') if re.fullmatch(number, t) else (1, 0.0, t)
                 for t in re.findall(number + '|[^0-9]+', name)]
      return (order.index(base) if base in order else len(order), natural)

    out[experiment] = {name: rows[name] for name in sorted(rows, key=rank)}
  return out


def _pm(values):
  return f'{np.mean(values):.2f} ± {np.std(values):.2f}'


def _paper(reported, top5=False):
  if reported is None:
    return '—'
  if reported.mean is None:
    return f'— ({reported.note})'
  if top5:
    return '—' if reported.top5 is None else f'{reported.top5:.2f}'
  return f'{reported.mean:.2f}' + ('' if reported.std is None else f' ± {reported.std:.2f}')


def table(rows):
  """Markdown table of one experiment."""
  has_top5 = any(run.top5 is not None for runs in rows.values() for run in runs)
  head = ['row', 'method', 'eval', 'ours (%)', 'n', 'epochs', 'paper (%)', 'diff']
  if has_top5:
    head += ['ours top-5 (%)', 'paper top-5 (%)']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for name, runs in rows.items():
    acc = np.concatenate([r.accuracy for r in runs])
    epochs = sorted({round(r.results.get('epochs', float('nan')), 1) for r in runs})
    reported = None if '--' in name else paper_numbers.lookup(runs[0].stem, name)
    diff = ('—' if reported is None or reported.mean is None
            else f'{np.mean(acc) - reported.mean:+.2f}')
    row = [RATIO_SUFFIX.sub('', name), method_label(runs[0].results), runs[0].model, _pm(acc),
           str(len(acc)), '/'.join(f'{e:g}' for e in epochs), _paper(reported), diff]
    if has_top5:
      top5 = [r.top5 for r in runs if r.top5 is not None]
      row += [_pm(np.concatenate(top5)) if top5 else '—', _paper(reported, top5=True)]
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines)


def describe_host(entry):
  """A host in words from a results.json (or one of its `hosts` entries): the CPU and its vector
  ISA on the CPU backend, the device kind on an accelerator."""
  if entry.get('platform', 'cpu') != 'cpu':
    return f"{entry['platform']} {entry.get('device_kind')}"
  if entry.get('cpu'):
    return host.cpu_in_words(entry['cpu'], entry.get('cpu_isa'))
  return 'not recorded (before 2026-12-03)'


def hosts_line(rows):
  """Which hosts the rows' jobs ran on (results.json `hosts`, else its `cpu` / `cpu_isa`), in one
  line. A run reproduces to the digit only on the same kind of host (alc_jax/host.py), so a pair
  from two hosts also differs by float rounding: seed-like noise that widens an interval, no bias.
  A job resumed on another host is listed as 'A then B'."""
  by_host = {}
  for name, runs in rows.items():
    for run in runs:
      entries = run.results.get('hosts') or [run.results]
      host = ' then '.join(dict.fromkeys(describe_host(e) for e in entries))
      by_host.setdefault(host, []).append(name)
  if len(by_host) == 1:
    return f'Host: {next(iter(by_host))}, every job.'
  return ('Hosts (jobs on different hosts are not bitwise comparable): ' + '; '.join(
      f'{host}: {", ".join(dict.fromkeys(names))}' for host, names in sorted(by_host.items()))
      + '.')


# Columns of the attention-diagnostics table: (metrics.jsonl key, header).
DIAGNOSTICS = (('monitors/similarity_same_class', 'same-class share'),
               ('monitors/same_class_chance', 'chance'),
               ('monitors/similarity_entropy', 'row entropy'),
               ('monitors/similarity_diagonal', 'diagonal'),
               ('monitors/attention_logit_spread', 'logit spread'),
               ('losses/alc', 'l_alc'), ('losses/supervised', 'supervised loss'))


def last_logged(runs, key):
  """Mean over workdirs of the last logged value of `key` (NaN where none logged it)."""
  values = [rows[-1][key] for rows in ([r for r in read_metrics(run.workdir) if key in r]
                                       for run in runs) if rows]
  return float(np.mean(values)) if values else float('nan')


def diagnostics_table(rows):
  """Markdown table of the attention monitors at the end of training, for the ALC rows (None if
  there are none). The same-class share is over all pairs i != j with every example's true label
  (diagnostics only); `chance` is that share under uniform attention."""
  alc_rows = {name: runs for name, runs in rows.items() if runs[0].results.get('alc')}
  if not alc_rows:
    return None
  head = ['row'] + [header for _, header in DIAGNOSTICS]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for name, runs in alc_rows.items():
    cells = [last_logged(runs, key) for key, _ in DIAGNOSTICS]
    lines.append('| ' + ' | '.join([RATIO_SUFFIX.sub('', name)] + [
        '—' if np.isnan(v) else f'{v:.3g}' for v in cells]) + ' |')
  return '\n'.join(lines)


def class_accuracy_by_rank(run, split='test'):
  """(R, K) accuracies in %, each run's classes ordered from most to fewest labels.

  Under imbalance each label split draws which classes are large (alc_jax.data.splits), so the
  classes are ranked per run by that run's labeled class shares (results.json
  `labeled_class_prior`, r of Eq. 14). None for runs without per-class accuracies or shares, or
  with a balanced split (no ranking).
  """
  key = reporting.accuracy_key(run.model, split, 'per_class')
  accuracy = run.results.get('final_per_class', {}).get(key)
  prior = run.results.get('labeled_class_prior')
  if accuracy is None or prior is None:
    return None
  accuracy, prior = 100 * np.asarray(accuracy, float), np.asarray(prior, float)
  if np.allclose(prior, prior[:, :1]):
    return None
  order = np.argsort(-prior, axis=1, kind='stable')
  return np.take_along_axis(accuracy, order, axis=1)


def _rows_class_accuracy_by_rank(runs, split):
  """class_accuracy_by_rank of every run of a row that has it, stacked (runs, K); else None."""
  ranked = [r for r in (class_accuracy_by_rank(run, split) for run in runs) if r is not None]
  return np.concatenate(ranked) if ranked else None


def _half_means(ranked):
  """Mean accuracy of the larger and of the smaller half of the classes by label count, over the
  last axis of class accuracies ranked most labels first (class_accuracy_by_rank)."""
  half = ranked.shape[-1] // 2
  return ranked[..., :half].mean(-1), ranked[..., -half:].mean(-1)


def per_class_table(rows, split='test'):
  """Markdown table for imbalanced label splits (None otherwise): the accuracy of the class with
  the most labels and of the class with the fewest, and of the larger and smaller half of the
  classes by label count; mean ± std over runs."""
  lines = []
  for name, runs in rows.items():
    acc = _rows_class_accuracy_by_rank(runs, split)  # (runs, K), most labels first.
    if acc is None:
      continue
    cells = (acc[:, 0], acc[:, -1], *_half_means(acc), acc.mean(1))
    lines.append('| ' + ' | '.join([RATIO_SUFFIX.sub('', name), str(len(acc))] +
                                   [_pm(c) for c in cells]) + ' |')
  if not lines:
    return None
  head = ['row', 'n', 'most labels', 'fewest labels', 'larger half', 'smaller half',
          'mean over classes']
  return '\n'.join(['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + lines)


# Rows that the others are compared with, paired by seed, where an experiment has them.
PAIRED_AGAINST = ('mean_teacher', 'pi_model', 'supervised')


def _by_split(runs, split):
  """{(seed, label-split seed): (accuracy %, per-class by label rank or None)} of a row's runs;
  runs whose results.json does not name its seeds cannot be paired and are left out. None, with
  a warning, where two runs hold one seed and split (e.g. different configs filed under one row
  off the sweep's layout): no pair may silently replace another."""
  out, where = {}, {}
  for run in runs:
    seeds = run.results.get('seeds')
    if seeds is None:
      continue
    ranked = class_accuracy_by_rank(run, split)
    for i, key in enumerate(zip(seeds, run.results.get('split_seeds', seeds))):
      if key in out:
        print(f'not paired: {where[key]} and {run.workdir} both hold seed {key[0]} on label '
              f'split {key[1]} of row {run.name!r}: keep one (e.g. seed0-2 or seed0, not both) '
              'or aggregate them under separate roots.', file=sys.stderr)
        return None
      where[key] = run.workdir
      out[key] = (run.accuracy[i], None if ranked is None else ranked[i])
  return out


def paired_interval(differences, confidence=0.95):
  """(mean, low, high): the t confidence interval of the mean of paired differences,
  mean ± t_{(1 + confidence) / 2, n - 1} · sd / √n with the sample sd (ddof 1). (nan, nan) bounds
  for fewer than 2 pairs. With n = 2 or 3 the quantile is 12.71 or 4.30 (95 %): the interval is
  wide, and one that contains 0 says the difference is not resolved at that n."""
  differences = np.asarray(differences, float)
  n, mean = len(differences), float(np.mean(differences))
  if n < 2:
    return mean, float('nan'), float('nan')
  half = stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(differences, ddof=1) / np.sqrt(n)
  return mean, mean - half, mean + half


def _paired_cell(differences):
  """'+0.09 [-0.73, +0.90] (-0.29, +0.24, +0.31)': the mean, its 95 % t interval (none for a
  single pair) and every pair's difference."""
  mean, low, high = paired_interval(differences)
  interval = '' if np.isnan(low) else f' [{low:+.2f}, {high:+.2f}]'
  return f'{mean:+.2f}{interval} (' + ', '.join(f'{d:+.2f}' for d in differences) + ')'


def paired_table(rows, reference, split='test'):
  """Markdown table of every row minus the `reference` row (None if the experiment has no such
  row or nothing pairs with it). Runs are paired by (seed, label-split seed): a pair trained on
  the same labeled images, so under imbalance the same classes are the large ones, and the
  difference's spread is the methods', not the splits'. Each cell is the mean over pairs, its 95 %
  t interval in square brackets (paired_interval), then every pair's difference; the halves are
  the classes ranked per run by their number of labels, as in per_class_table (only where both
  rows have per-class accuracies)."""
  names = [n for n in rows if _base_row(n) == reference and '--' not in n]
  if not names:
    return None
  base = _by_split(rows[names[0]], split)
  if base is None:
    return None
  lines = []
  for name, runs in rows.items():
    by_split = None if name == names[0] else _by_split(runs, split)
    if by_split is None:
      continue
    pairs = sorted(((k, v) for k, v in by_split.items() if k in base), key=lambda pair: pair[0])
    if not pairs:
      continue
    cells = [_paired_cell([acc - base[k][0] for k, (acc, _) in pairs])]
    if all(ranked is not None and base[k][1] is not None for k, (_, ranked) in pairs):
      differences = np.array([np.subtract(_half_means(ranked), _half_means(base[k][1]))
                              for k, (_, ranked) in pairs])  # (pairs, 2): larger, smaller half.
      cells += [_paired_cell(differences[:, 0]), _paired_cell(differences[:, 1])]
    else:
      cells += ['—', '—']
    lines.append('| ' + ' | '.join([RATIO_SUFFIX.sub('', name), str(len(pairs))] + cells) + ' |')
  if not lines:
    return None
  head = ['row', 'pairs', 'all classes', 'larger half', 'smaller half']
  return '\n'.join(['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + lines)


def read_metrics(workdir):
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path, encoding='utf-8') as f:
    return [json.loads(line) for line in f if line.strip()]


def mean_curve(runs, key):
  """(epochs, mean over workdirs) of `key` at the steps every workdir logged it."""
  per_run = []
  for run in runs:
    spe = run.results.get('steps_per_epoch') or 1
    per_run.append({row['step'] / spe: row[key] for row in read_metrics(run.workdir) if key in row})
  common = sorted(set.intersection(*(set(c) for c in per_run))) if per_run else []
  return np.array(common), np.array([np.mean([c[x] for c in per_run]) for x in common])


def slug(text):
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', text).strip('_')


def plot_curves(plt, experiment, rows, metric, out, split='test'):
  fig, ax = plt.subplots(figsize=(7, 4.5))
  drawn = False
  for name, runs in rows.items():
    key = 'eval/' + reporting.accuracy_key(read_model(runs[0].results, metric), split)
    x, y = mean_curve(runs, key)
    if len(x):
      ax.plot(x, 100 * y, label=f'{RATIO_SUFFIX.sub("", name)}: {method_label(runs[0].results)}')
      drawn = True
  if not drawn:
    plt.close(fig)
    return None
  ax.set(xlabel='epoch', ylabel=f'{split} accuracy (%)', title=experiment)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return _save(plt, fig, out, f'curves_{slug(experiment)}.png')


def w2_groups(runs):
  """{(experiment, row without its alc.weight grid part): {w2: [accuracies]}} of the ALC runs.

  Runs that differ in anything else (another --grid value, e.g. alc.outputs=probs) stay apart.
  """
  groups = collections.defaultdict(lambda: collections.defaultdict(list))
  for run in runs:
    if run.results.get('alc'):
      weight = run.results.get('config', {}).get('alc', {}).get('weight')
      if weight is not None:
        row = re.sub(r'--alc\.weight=(?:(?!--).)*', '', run.name)
        groups[(run.experiment, row)][float(weight)].append(run.accuracy)
  return {key: dict(by_weight) for key, by_weight in groups.items() if len(by_weight) > 1}


def plot_w2(plt, runs, out, split='test'):
  """Accuracy against w2 (Fig. 6) for each ALC row run at several values of config.alc.weight."""
  files = []
  for (experiment, base), by_weight in sorted(w2_groups(runs).items()):
    weights = sorted(by_weight)
    accs = [np.concatenate(by_weight[w]) for w in weights]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(weights, [a.mean() for a in accs], yerr=[a.std() for a in accs], marker='o',
                capsize=3, label=base)
    # The experiment's rows without ALC (e.g. Mean Teacher, supervised) as reference lines.
    baselines = collections.defaultdict(list)
    for run in runs:
      if run.experiment == experiment and not run.results.get('alc'):
        baselines[run.name].append(run.accuracy)
    for (name, accs_), style in zip(sorted(baselines.items()), ('--', ':', '-.', (0, (1, 3)))):
      ax.axhline(np.concatenate(accs_).mean(), color='gray', linestyle=style, label=name)
    if min(weights) > 0:
      ax.set_xscale('log')
    ax.set(xlabel='w2', ylabel=f'{split} accuracy (%)', title=f'{experiment}: {base}')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    files.append(_save(plt, fig, out, f'w2_{slug(experiment)}_{slug(base)}.png'))
  return files


def plot_per_class(plt, experiment, rows, out, split='test'):
  """Accuracy of each class against its rank by label count (1 = most labels), mean over runs,
  one line per row: does a method help the classes with few labels, or only the mean?"""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  drawn = False
  for name, runs in rows.items():
    acc = _rows_class_accuracy_by_rank(runs, split)
    if acc is not None:
      ax.plot(np.arange(1, acc.shape[1] + 1), acc.mean(0), marker='o', ms=3,
              label=f'{RATIO_SUFFIX.sub("", name)} (n={len(acc)})')
      drawn = True
  if not drawn:
    plt.close(fig)
    return None
  ax.set(xlabel='class rank by number of labels (1 = most)', ylabel=f'{split} accuracy (%)',
         title=f'{experiment}: per-class accuracy')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return _save(plt, fig, out, f'per_class_{slug(experiment)}.png')


def plot_similarity(plt, experiment, rows, out):
  """S of the first 100 test images of the first seed of each ALC row, ordered by class."""
  found = []
  for name, runs in rows.items():
    path = os.path.join(runs[0].workdir, 'similarity.npz')
    if os.path.exists(path):
      found.append((name, runs[0], np.load(path)))
  if not found:
    return None
  fig, axes = plt.subplots(1, len(found), figsize=(4.2 * len(found), 4), squeeze=False)
  for ax, (name, run, data) in zip(axes[0], found):
    order = np.argsort(data['labels'], kind='stable')
    labels = data['labels'][order]
    image = ax.imshow(data['similarity'][np.ix_(order, order)], cmap='viridis')
    for edge in np.flatnonzero(np.diff(labels)) + 0.5:  # Class boundaries.
      ax.axhline(edge, color='w', lw=0.4)
      ax.axvline(edge, color='w', lw=0.4)
    ax.set_title(f'{RATIO_SUFFIX.sub("", name)}', fontsize=9)
    ax.set(xlabel='i (ordered by class)', ylabel='j')
    fig.colorbar(image, ax=ax, fraction=0.046)
  fig.suptitle(f'{experiment}: similarity S (test images)')
  return _save(plt, fig, out, f'similarity_{slug(experiment)}.png')


def plot_monitors(plt, experiment, rows, out):
  fig, axes = plt.subplots(1, len(MONITORS), figsize=(5 * len(MONITORS), 3.5))
  drawn = False
  # One colour per row on every panel: a row without a monitor (the logit spread of an
  # attention-free similarity) must not shift the colours of the rows after it on that panel.
  for index, (name, runs) in enumerate(rows.items()):
    if not runs[0].results.get('alc'):
      continue
    for ax, key in zip(axes, MONITORS):
      x, y = mean_curve(runs, key)
      if len(x):
        ax.plot(x, y, color=f'C{index % 10}', label=RATIO_SUFFIX.sub('', name))
        drawn = True
  if not drawn:
    plt.close(fig)
    return None
  for ax, key in zip(axes, MONITORS):
    ax.set(xlabel='epoch', title=key.split('/')[-1])
    if key == 'monitors/attention_logit_spread':
      ax.set_yscale('log')  # Bounded variants stay near 1-10, a collapsing S grows to ~1000.
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.suptitle(f'{experiment}: attention diagnostics')
  return _save(plt, fig, out, f'attention_{slug(experiment)}.png')


def _save(plt, fig, out, name):
  fig.tight_layout()
  fig.savefig(os.path.join(out, name), dpi=110)
  plt.close(fig)
  return name


def aggregate(root, out, metric='auto', which='final', split='test',
              paired_against=PAIRED_AGAINST):
  """Writes out/results.md and the plots; returns the markdown text."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  os.makedirs(out, exist_ok=True)
  runs = load_runs(root, metric, which, split)
  eval_model = {'auto': "the one each run's method reports (results.json's reported_model, the "
                        "`eval` column: 'teacher' is Mean Teacher's teacher, 'ema' FixMatch's EMA, "
                        "which runs before 2026-12-05 recorded as 'teacher')"
                }.get(metric, metric)
  when = ('at the final evaluation' if which == 'final' else
          "as each run's best evaluation: its largest accuracy over the evaluation steps, for each "
          'model and key apart, chosen on this split itself (optimistic; per-class columns stay '
          'final)')
  text = [f'# Results under `{root}`', '',
          f'{split.capitalize()} accuracy {when}, mean ± std (ddof 0) over '
          f'seeds; model: {eval_model}. `paper` is the paper\'s number '
          '(launch/paper_numbers.py), `diff` = ours - paper. Rows with a `--key=value` suffix '
          'vary a hyperparameter and get no paper number.', '']
  if not runs:
    text.append('No results.json found.')
  for experiment, rows in group(runs).items():
    stem = next(iter(rows.values()))[0].stem
    sources = sorted({r.source for (s, _), r in paper_numbers.PAPER.items() if s == stem})
    title = experiment + (f" (paper: {', '.join(sources)})" if sources else '')
    text += [f'## {title}', '', table(rows), '', hosts_line(rows), '']
    diagnostics = diagnostics_table(rows)
    if diagnostics:
      text += ['Attention diagnostics, last logged value (mean over runs):', '', diagnostics, '']
    per_class = per_class_table(rows, split)
    if per_class:
      text += ['Per-class accuracy (%) under the imbalanced label split, classes ranked per run by '
               'their number of labels:', '', per_class, '']
    for reference in paired_against:
      paired = paired_table(rows, reference, split)
      if paired:
        text += [f'Paired by seed: each row minus {reference} (points: mean [95 % t interval, '
                 'mean ± t_0.975,n-1 · sd / √n] (each pair); larger and smaller half of the '
                 'classes by their number of labels):', '', paired, '']
    for name in (plot_curves(plt, experiment, rows, metric, out, split),
                 plot_per_class(plt, experiment, rows, out, split),
                 plot_monitors(plt, experiment, rows, out),
                 plot_similarity(plt, experiment, rows, out)):
      if name:
        text += [f'![{name}]({name})', '']
  for name in plot_w2(plt, runs, out, split):
    text += [f'![{name}]({name})', '']
  markdown = '\n'.join(text)
  with open(os.path.join(out, 'results.md'), 'w', encoding='utf-8') as f:
    f.write(markdown)
  return markdown


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--root', default='runs', help='Searched recursively for results.json.')
  p.add_argument('--out', default='docs', help='Where results.md and the PNGs go.')
  p.add_argument('--metric', default='auto', choices=('auto',) + methods.EVALUATED_MODELS)
  p.add_argument('--which', default='final', choices=('final', 'best'))
  p.add_argument('--split', default='test', choices=SPLITS,
                 help='validation: the held-out split that hyperparameters are chosen on.')
  p.add_argument('--paired-against', default=','.join(PAIRED_AGAINST),
                 help='Comma-separated rows that every other row is compared with, paired by '
                      'seed (empty: none).')
  args = p.parse_args(argv)
  aggregate(args.root, args.out, args.metric, args.which, args.split,
            tuple(r for r in args.paired_against.split(',') if r))
  print(f'wrote {os.path.join(args.out, "results.md")}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
