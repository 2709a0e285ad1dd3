#!/usr/bin/env bash
# One command on a fresh machine: set up, then train the main job (Mean Teacher + ALC, real
# Fashion-MNIST, 250 labels, CPU-sized), then print its accuracy beside the supervised baseline.
#   bash launch/quickstart.sh [extra --config.* overrides]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/launch/setup_env.sh"
cd "$ROOT"
WORKDIR="${WORKDIR:-workdirs/fashion_mnist_cpu}"
.venv/bin/python -m alc_jax.main --config=configs/fashion_mnist_cpu.py --workdir="$WORKDIR" "$@"
.venv/bin/python - "$WORKDIR/results.json" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))['summary']
print(f"\nMean Teacher + ALC test accuracy: teacher {r['teacher_accuracy_mean']:.2f}%, "
      f"student {r['student_accuracy_mean']:.2f}%")
m = re.search(r'main-job supervised baseline: ([0-9.]+)%', open('docs/results.md').read())
if m:
  print(f'Supervised baseline at the same budget (docs/results.md): {m.group(1)}%')
PY
