#!/usr/bin/env bash
# Builds hello_py.wasm from app.py. Needs python3 (>= 3.9) with venv; installs the pinned
# componentize-py (requirements.txt) into a virtualenv under ~/.cache on first run.
# componentize-py generates the Python bindings for wit/ itself (the `wit_world` module).
set -euo pipefail
cd "$(dirname "$0")"

venv="${YUN_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/yun/componentize-py-venv}"
if [[ ! -x "$venv/bin/componentize-py" ]] || ! cmp -s requirements.txt "$venv/.requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$venv/.requirements.txt"
fi
"$venv/bin/componentize-py" -d wit -w hello componentize app -o hello_py.wasm
echo "built $(pwd)/hello_py.wasm"
