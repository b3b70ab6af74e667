#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment in tools/venv and
# install bljust into it, editable, with the pinned torch/torchaudio pair.
# Idempotent: a second run with an unchanged setup.py does nothing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/tools/venv"
python="${PYTHON:-python3}"
stamp="$venv/.installed"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "install.sh: Python >= 3.10 is required ('$python' is $("$python" --version 2>&1))" >&2
    exit 1
fi

wanted=$(cat "$root/setup.py" | "$python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    echo "install.sh: environment in tools/venv is up to date"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "install.sh: creating virtual environment tools/venv"
    "$python" -m venv "$venv"
fi
echo "install.sh: installing bljust and its dependencies (torch is large: the first run takes a few minutes)"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -e "$root[test]"
"$venv/bin/python" -c 'import torch, torchaudio, bljust; print(f"install.sh: torch {torch.__version__}, torchaudio {torchaudio.__version__}, bljust {bljust.__version__}")'
echo "$wanted" > "$stamp"
