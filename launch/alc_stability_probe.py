"""Stability probe: do the shipped ALC configs hit the NaN guard, and does the attention collapse?

  python launch/alc_stability_probe.py [--rows mean_teacher_alc,pi_model_alc,mean_teacher_alc@paper]
      [--widths 1,0.25] [--steps 300] [--w2-scale 10] [--root runs/stability_probe] [--out DIR]

Each case trains configs/fashion_mnist_250.py:ROW on real Fashion-MNIST at a model width, with w2
multiplied by --w2-scale (a harder test than the paper's w2) and a ramp-up of a tenth of the steps,
so the full weight acts for most of the run. It logs the attention-logit spread (the per-row
standard deviation of the logits of Eq. 12: a spread that keeps growing is S collapsing to one-hot
rows, the path to the NaN guard), the row entropy and the diagonal mass of S every 10 steps.
Cases run one after another as `python -m alc_jax.main` (one workdir each under --root, so a rerun
skips finished cases and resumes an interrupted one). The table (probe.md) and a plot of the
spread (probe_spread.png) go to --out (default: --root). Exit status 1 if a row without '@paper'
hit the NaN guard: the shipped defaults must never do that.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
from alc_jax import reporting  # noqa: E402
from configs import fashion_mnist_250  # noqa: E402

CONFIG = os.path.join(ROOT, 'configs', 'fashion_mnist_250.py')
DIVERGED = 'non-finite value at step'


def _csv(text, cast=str):
  return [cast(item) for item in text.split(',') if item]


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--rows', default='mean_teacher_alc,pi_model_alc,mean_teacher_alc@paper')
  p.add_argument('--widths', default='1,0.25')
  p.add_argument('--steps', type=int, default=300)
  p.add_argument('--w2-scale', type=float, default=10.0)
  p.add_argument('--root', default=os.path.join(ROOT, 'runs', 'stability_probe'))
  p.add_argument('--out', default='')
  p.add_argument('--override', action='append', default=[], metavar='config.KEY=VALUE',
                 help='Passed to every case (repeatable).')
  args = p.parse_args(argv)
  args.rows, args.widths = _csv(args.rows), _csv(args.widths, float)
  if args.steps < 20 or args.w2_scale <= 0:
    p.error('--steps must be >= 20 and --w2-scale > 0')
  return args


def w2_of(row):
  """w2 of the row's config (the data set's recipe), before scaling."""
  return fashion_mnist_250.get_config(row).alc.weight


def run_case(row, width, args):
  """Trains one case (or finds it done); returns its summary dict."""
  workdir = os.path.join(args.root, f'{row}_width{width:g}')
  os.makedirs(workdir, exist_ok=True)
  status_path = os.path.join(workdir, 'probe_status.json')
  if not os.path.exists(status_path):
    cmd = [sys.executable, '-m', 'alc_jax.main', f'--config={CONFIG}:{row}', f'--workdir={workdir}',
           f'--config.model.width={width}', f'--config.alc.weight={w2_of(row) * args.w2_scale}',
           f'--config.num_train_steps={args.steps}',
           f'--config.consistency_rampup_epochs={args.steps / 10 / 600}',
           '--config.log_every_steps=10', f'--config.eval_every_steps={args.steps}',
           f'--config.checkpoint_every_steps={max(args.steps // 3, 10)}',
           '--config.dataset.eval_examples=2000', '--config.progress_every_seconds=60',
           *[f'--{o}' if o.startswith('config.') else o for o in args.override]]
    print(f'[probe] {row} width {width:g}: {" ".join(cmd[2:])}', flush=True)
    start = time.time()
    with open(os.path.join(workdir, 'log.txt'), 'a', encoding='utf-8') as log:
      proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    with open(os.path.join(workdir, 'log.txt'), encoding='utf-8') as log:
      text = log.read()
    diverged = DIVERGED in text
    if proc.returncode and not diverged:
      raise SystemExit(f'[probe] {row} width {width:g} failed (exit {proc.returncode}); see '
                       f'{workdir}/log.txt')
    with open(status_path, 'w', encoding='utf-8') as f:
      json.dump({'diverged': diverged, 'wall_s': time.time() - start,
                 'message': next((l for l in text.splitlines() if DIVERGED in l), '')}, f)
  return summarize_case(row, width, workdir)


def summarize_case(row, width, workdir):
  """A finished case's summary dict, from its workdir."""
  with open(os.path.join(workdir, 'probe_status.json'), encoding='utf-8') as f:
    status = json.load(f)
  rows = []
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    rows = [json.loads(line) for line in f if line.strip()]
  train = [r for r in rows if 'monitors/attention_logit_spread' in r]
  spread = [(r['step'], r['monitors/attention_logit_spread']) for r in train]
  results_path = os.path.join(workdir, 'results.json')
  accuracy = None
  if os.path.exists(results_path):  # The accuracy of the model its method reports.
    with open(results_path, encoding='utf-8') as f:
      results = json.load(f)
    key = reporting.accuracy_key(results['reported_model'])
    accuracy = results['summary'][f'{key}_mean']
  last = train[-1] if train else {}
  return {'row': row, 'width': width, 'diverged': status['diverged'],
          'last_step': last.get('step', 0), 'spread': spread,
          'max_spread': max((v for _, v in spread), default=float('nan')),
          'entropy': last.get('monitors/similarity_entropy', float('nan')),
          'diagonal': last.get('monitors/similarity_diagonal', float('nan')),
          'same_class': last.get('monitors/similarity_same_class', float('nan')),
          'accuracy': accuracy, 'wall_s': status['wall_s'], 'message': status['message']}


def report(cases, args, out):
  lines = [f'Stability probe: configs/fashion_mnist_250.py, w2 x {args.w2_scale:g}, '
           f'{args.steps} steps, ramp-up {args.steps // 10} steps, real Fashion-MNIST.', '',
           '| row | width | NaN guard | last logged step | max logit spread | final spread | '
           'row entropy | diagonal | same-class share | accuracy (%, 2000 test) | wall (s) |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  for c in cases:
    final = c['spread'][-1][1] if c['spread'] else float('nan')
    acc = '—' if c['accuracy'] is None else f"{c['accuracy']:.2f}"
    lines.append(f"| {c['row']} | {c['width']:g} | {'**hit**' if c['diverged'] else 'no'} | "
                 f"{c['last_step']} | {c['max_spread']:.3g} | {final:.3g} | {c['entropy']:.3f} | "
                 f"{c['diagonal']:.3f} | {c['same_class']:.3f} | {acc} | {c['wall_s']:.0f} |")
  text = '\n'.join(lines) + '\n'
  with open(os.path.join(out, 'probe.md'), 'w', encoding='utf-8') as f:
    f.write(text)
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set(xlabel='step', ylabel='attention-logit spread', yscale='log',
           title=f'ALC stability probe (w2 x {args.w2_scale:g})')
    for c in cases:
      if c['spread']:
        steps, values = zip(*c['spread'])
        ax.plot(steps, values, label=f"{c['row']} w{c['width']:g}"
                + (' (NaN)' if c['diverged'] else ''))
    ax.grid(alpha=0.3)
    if ax.lines:
      ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'probe_spread.png'), dpi=110)
    plt.close(fig)
  except ImportError:
    pass
  return text


def main(argv=None):
  args = parse_args(argv)
  out = args.out or args.root
  os.makedirs(out, exist_ok=True)
  cases = [run_case(row, width, args) for width in args.widths for row in args.rows]
  print(report(cases, args, out))
  shipped_diverged = [c for c in cases if c['diverged'] and '@paper' not in c['row']]
  for c in shipped_diverged:
    print(f"[probe] FAILED: {c['row']} at width {c['width']:g}: {c['message']}")
  return 1 if shipped_diverged else 0


if __name__ == '__main__':
  sys.exit(main())
