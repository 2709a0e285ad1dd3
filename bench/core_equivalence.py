"""Checks that a restructuring of the core changed no result: 5 steps of 2 runs per method and ALC
variant, then every parameter, BatchNorm statistic, teacher variable, metric and accuracy.

  python bench/core_equivalence.py --save /tmp/before    # on the old code
  python bench/core_equivalence.py --compare /tmp/before # on the new code

It trains on a tiny generated data set (the test suite's), so it runs anywhere in a few minutes.
Exit status 1 if any case differs beyond --rtol (0: bitwise), an array's difference being its
largest absolute difference over its largest absolute value.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
from alc_jax import cpu_setup

cpu_setup.configure()
import jax  # pylint: disable=g-import-not-at-top

from alc_jax import reporting, train
from tests.conftest import make_tiny_images, tiny_config

# The methods and ALC readings of the code before the restructuring, on purpose not the registry's
# (methods.NAMES, configs/common.ALC_VARIANTS): a method added since (FixMatch) has no earlier
# result to equal.
BASES = ('supervised', 'pseudo_label', 'pi_model', 'mean_teacher', 'sntg', 'vat', 'vat_entmin')
ALC_VARIANTS = ('paper', 'pairs', 'scaled', 'cosine', 'entropy', 'decoupled')


def cases():
  """name -> config overrides: every method alone and with the shipped ALC; Mean Teacher with every
  ALC reading; the imbalance weights (Eq. 14, 15) on both consistency methods."""
  from configs import common  # pylint: disable=g-import-not-at-top
  out = {}
  for base in BASES:
    # VAT's default power iteration changed on purpose (issue 30): compare the finite difference
    # the earlier code ran ('exact' has no earlier result).
    extra = {'vat.power_iteration': 'finite_difference'} if base.startswith('vat') else {}
    if base == 'supervised':  # Labeled rows only: config_lib refuses a labeled/unlabeled split.
      extra['labeled_batch_size'] = 0
    out[base] = {'method': base, 'alc.enabled': False, **extra}  # smoke's config has ALC.
    out[f'{base}+alc'] = {'method': base, 'alc.enabled': True, **extra}
  for variant in ALC_VARIANTS:
    out[f'mean_teacher+alc@{variant}'] = {'method': 'mean_teacher', 'alc.enabled': True,
                                          **common.ALC_VARIANTS[variant]}
  for base in ('mean_teacher', 'pi_model'):
    for imbalance in ('hard', 'soft'):
      out[f'{base}+alc_{imbalance}'] = {'method': base, 'alc.enabled': True,
                                        'alc.imbalance': imbalance}
  out['pseudo_label@0.5'] = {'method': 'pseudo_label', 'alc.enabled': False,
                             'pseudo_label_threshold': 0.5}
  out['sntg@mean_teacher'] = {'method': 'sntg', 'alc.enabled': False, 'sntg.base': 'mean_teacher'}
  out['sntg@mean_teacher+alc_soft'] = {'method': 'sntg', 'sntg.base': 'mean_teacher',
                                       'alc.enabled': True, 'alc.imbalance': 'soft'}
  out['mean_teacher+alc@per_device'] = {'method': 'mean_teacher', 'alc.enabled': True,
                                        'alc.scope': 'per_device', 'alc.include_self': False}
  return out


def flat(prefix, tree):
  return {f'{prefix}/{jax.tree_util.keystr(path)}': np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def teacher_of(state):
  """The teacher's variables, through whichever API this version of the code has (the check runs
  on the code before a restructuring and after it)."""
  from alc_jax import ema  # pylint: disable=g-import-not-at-top
  if hasattr(ema, 'find_teacher'):  # One owner: the EMA state in the optax state.
    teacher = ema.find_teacher(state.opt_state)
    return {} if teacher is None else {'params': teacher.params,
                                       'batch_stats': teacher.batch_stats}
  return {'params': ema.teacher_params(state.opt_state), 'batch_stats': state.teacher_batch_stats}


def case_config(npz, overrides):
  """The config a case trains: the suite's tiny config, 2 runs, the case's overrides."""
  return tiny_config(npz, num_runs=2, **overrides)


def run_case(npz, overrides, steps=5):
  exp = train.create_experiment(case_config(npz, overrides))
  state = exp.initial_state
  out = {}
  for step, batch in zip(range(steps), exp.train_batches()):
    state, metrics = exp.train_step(state, batch)
    out.update(flat(f'metrics{step}', metrics))
  out.update(flat('params', state.params))
  out.update(flat('batch_stats', state.batch_stats))
  out.update(flat('teacher', teacher_of(state)))
  out.update(flat('eval', exp.evaluate_all(state)))
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--save', help='folder to write one .npz per case into')
  parser.add_argument('--compare', help='folder of a --save run to compare with')
  parser.add_argument('--only', default='', help='comma-separated case names (default: all)')
  parser.add_argument('--rtol', type=float, default=0.0)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x_train, y_train = make_tiny_images(480, 4, 16, rng)
  x_test, y_test = make_tiny_images(96, 4, 16, rng)
  npz = os.path.join(tempfile.mkdtemp(), 'tiny.npz')
  np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  selected = {k: v for k, v in cases().items()
              if not args.only or k in args.only.split(',')}
  failed = []
  for name, overrides in selected.items():
    got = run_case(npz, overrides)
    if args.save:
      os.makedirs(args.save, exist_ok=True)
      np.savez(os.path.join(args.save, f'{name}.npz'), **got)
      print(f'{name}: saved {len(got)} arrays', flush=True)
    if args.compare:
      want = dict(np.load(os.path.join(args.compare, f'{name}.npz')))
      # Keys only one side has: the teacher of a method without one, renamed metrics.
      only_old, only_new = sorted(set(want) - set(got)), sorted(set(got) - set(want))
      worst, where, accuracy_points = 0.0, '', 0.0
      for key in sorted(set(want) & set(got)):
        a, b = want[key].astype(np.float64), got[key].astype(np.float64)
        if a.shape != b.shape:
          worst, where = np.inf, key
          continue
        # The largest difference relative to the array's own scale (max |a|): elements near 0
        # would make an element-wise relative difference meaningless.
        diff = np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30) if a.size else 0.0
        if key.startswith('eval/') and not reporting.is_per_class(a):  # Accuracies per run.
          accuracy_points = max(accuracy_points, 100 * np.max(np.abs(a - b)))
        if diff > worst:
          worst, where = diff, key
      ok = worst <= args.rtol
      failed += [] if ok else [name]
      status = ('equal' if worst == 0 else f'max diff {worst:.2e} of the scale of {where}; '
                f'accuracies differ by up to {accuracy_points:.2f} points')
      print(f'{name}: {status}{"" if ok else "  <-- DIFFERS"}; only before: {len(only_old)} '
            f'arrays ({", ".join(sorted({k.split("/")[0] for k in only_old}))}), only after: '
            f'{len(only_new)}', flush=True)
  if failed:
    print(f'{len(failed)} case(s) differ: {", ".join(failed)}')
    sys.exit(1)


if __name__ == '__main__':
  main()
