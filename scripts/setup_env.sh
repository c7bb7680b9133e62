#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install the pinned packages from
# requirements.txt plus this repository in editable mode. Idempotent: a stamp holding the
# hash of requirements.txt and setup.py skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${CKD_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$ver" != "3.11" ]; then
  echo "error: Python 3.11 is required (the ROS 2 Kilted wheels are cp311); found $ver at $(command -v "$PY")." >&2
  echo "       Set CKD_PYTHON=/path/to/python3.11." >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.ckd-installed
want="$(cat requirements.txt setup.py | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
else
  echo "[setup] installing pinned packages (first run downloads torch: several GB)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
