#!/usr/bin/env bash
# Sets up everything alc_jax needs on a fresh machine, idempotently:
#   - the real Fashion-MNIST IDX files (Debian package dataset-fashion-mnist) where apt is available,
#   - a virtual environment in .venv with the package and its test extras installed.
# Usage: source launch/setup_env.sh   (or bash it; the other launch scripts call it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  echo "[setup] installing the real Fashion-MNIST (apt-get install dataset-fashion-mnist)"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "[setup] could not apt-get dataset-fashion-mnist; TFDS will download Fashion-MNIST if online"
fi

if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "[setup] creating $ROOT/.venv"
  "$PYTHON" -m venv "$ROOT/.venv"
fi
# Install only when setup.cfg changed since the last install (keeps reruns fast).
STAMP="$ROOT/.venv/.alc_jax_installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.cfg" -nt "$STAMP" ]; then
  echo "[setup] pip install -e '.[test]' (first time: a few minutes)"
  "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip
  "$ROOT/.venv/bin/python" -m pip install -q -e "$ROOT[test]"
  touch "$STAMP"
fi
