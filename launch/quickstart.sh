#!/usr/bin/env bash
# One command on a fresh machine: set up, then train the main job (Mean Teacher + ALC with the
# shipped ALC defaults, real Fashion-MNIST, 250 labels, 3 seeds, CPU-sized: configs/fashion_mnist_cpu.py),
# then print its test accuracy beside Mean Teacher's and the supervised baseline's at the same budget,
# as measured in docs/results.md.
#   bash launch/quickstart.sh [extra --config.* overrides]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/launch/setup_env.sh"
cd "$ROOT"
WORKDIR="${WORKDIR:-workdirs/fashion_mnist_cpu}"
.venv/bin/python -m alc_jax.main --config=configs/fashion_mnist_cpu.py --workdir="$WORKDIR" "$@"
.venv/bin/python - "$WORKDIR/results.json" <<'PY'
import json, re, sys
import numpy as np
final = json.load(open(sys.argv[1]))['final']
teacher = 100 * np.asarray(final['teacher_accuracy'], float).reshape(-1)
print(f'\nThis run, Mean Teacher + ALC (teacher), test accuracy over {teacher.size} seed(s): '
      f'{teacher.mean():.2f} ± {teacher.std():.2f} %  ({", ".join(f"{a:.2f}" for a in teacher)})')
print('Measured with the same config and seeds (docs/results.md, "ALC on this CPU"):')
for line in open('docs/results.md', encoding='utf-8'):
  m = re.match(r'main-job (\S+): (.+)$', line.strip())
  if m:
    print(f'  {m.group(1):<22} {m.group(2)}')
PY
