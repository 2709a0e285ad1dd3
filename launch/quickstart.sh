#!/usr/bin/env bash
# One command on a fresh machine: set up, then train the main job (FixMatch, real Fashion-MNIST,
# 100 labels, CPU-sized: configs/fashion_mnist_100_cpu.py, the protocol where semi-supervision pays
# on a 2-core CPU), then print its test accuracy beside the other rows' at the same config and
# label split, as measured in docs/results.md ("The README's main job").
#   bash launch/quickstart.sh [extra --config.* overrides]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/launch/setup_env.sh"
cd "$ROOT"
WORKDIR="${WORKDIR:-workdirs/fashion_mnist_100_cpu}"
.venv/bin/python -m alc_jax.main --config=configs/fashion_mnist_100_cpu.py --workdir="$WORKDIR" "$@"
.venv/bin/python - "$WORKDIR/results.json" <<'PY'
import json, re, sys
import numpy as np
from alc_jax import reporting
results = json.load(open(sys.argv[1]))
model = results['reported_model']
accuracy = 100 * np.asarray(results['final'][reporting.accuracy_key(model)], float).reshape(-1)
seeds = ', '.join(str(s) for s in results['seeds'])
print(f'\nThis run, {results["method"]}{" + ALC" if results["alc"] else ""} ({model}), test '
      f'accuracy, seed(s) {seeds}: {", ".join(f"{a:.2f}" for a in accuracy)} %')
print('Measured with the same config (docs/results.md, "The README\'s main job"):')
for line in open('docs/results.md', encoding='utf-8'):
  m = re.match(r'main-job (\S+): (.+)$', line.strip())
  if m:
    print(f'  {m.group(1):<18} {m.group(2)}')
# A run's digits follow the host's CPU (alc_jax/host.py): say which one this was.
from alc_jax import host
print(f"Splits 0-2 match to the digit only on the study's kind of CPU (AMD EPYC family 25 model "
      f"17, a Zen 4 with avx512f); this one: "
      f"{host.cpu_in_words(results.get('cpu'), results.get('cpu_isa'))}.")
PY
