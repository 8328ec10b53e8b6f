#!/usr/bin/env bash
# Sets up a fresh clone: the Fashion-MNIST data package, a virtual environment in .venv,
# and layerflow (editable) with its training stack, server, test tools and the JAX backend.
#
# torch is pinned to the CPU build that this machine keeps on disk; elsewhere choose
# another build with LAYERFLOW_TORCH, e.g. LAYERFLOW_TORCH="torch==2.13.0" (default) or
# LAYERFLOW_TORCH="torch" for whatever your index offers (on Linux that may be a large CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "Installing Debian's dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist)..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# pip's messages are kept, but not the local-mirror warnings some machines print by the hundred.
.venv/bin/python -m pip install -q "${LAYERFLOW_TORCH:-torch==2.13.0}" -e ".[train,serve,dev,jax]" 2>&1 \
  | sed '/^WARNING: Location/d'
.venv/bin/python -c "import layerflow, torch; print('layerflow', layerflow.__version__, 'on torch', torch.__version__)"
