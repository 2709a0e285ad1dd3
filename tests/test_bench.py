"""launch/bench.py runs end to end in a tiny mode and keeps its output contract (no timings)."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_tiny(tmp_path):
  out = tmp_path / 'bench.json'
  # One subprocess for both the table and --pairwise: each new process pays JAX's start-up again.
  cmd = [sys.executable, os.path.join(ROOT, 'launch', 'bench.py'), '--steps', '2', '--width',
         '0.0625', '--models', 'cnn13', '--methods', 'mean_teacher,mean_teacher_alc',
         '--batch-size', '16', '--pairwise', '--pairwise-sizes', '8,32', '--json', str(out)]
  env = dict(os.environ, ALC_TFDS_DOWNLOAD='0')
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert re.match(r'^alc_overhead \d+\.\d+$', lines[-1]), lines[-1]
  assert lines[0].startswith('machine: ')
  header = next(i for i, l in enumerate(lines) if l.startswith('model '))
  for col in ('img/s', 'ms/step', 'compile s', 'peak MiB'):
    assert col in lines[header]
  table = lines[header + 1:header + 3]
  assert [l.split()[:2] for l in table] == [['cnn13', 'MT'], ['cnn13', 'MT+ALC']]
  assert any(re.match(r'^\s+32\s+True\s', l) for l in lines), 'pairwise row for B=32 missing'

  results = json.loads(out.read_text())
  assert [r['method'] for r in results['rows']] == ['mean_teacher', 'mean_teacher_alc']
  assert all(r['images_per_second'] > 0 for r in results['rows'])
  assert [r['batch'] for r in results['pairwise']] == [8, 32]
  assert results['alc_overhead'] > 0
