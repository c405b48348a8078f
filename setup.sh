#!/usr/bin/env bash
# Idempotent set-up: a .venv with the pinned stack and this project installed editable.
# Re-installs only when requirements.txt or pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.prernn-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements (about 2 minutes on a fresh machine)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
# The C++ time loop of the PreRNN layers (prernn/recurrent/csrc): built once (~30 s), cached by torch.
.venv/bin/python -c "import prernn.recurrent.kernels as k; k.load(required=True)" \
  || echo "setup: the C++ time loop did not build; PreRNN layers will use the slower Python loop" >&2
