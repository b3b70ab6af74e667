# Sourced by every recipe script: puts the project's virtual environment first on PATH.
bljust_root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
if [ ! -x "$bljust_root/tools/venv/bin/python" ]; then
    echo "path.sh: the environment tools/venv is missing; create it with: $bljust_root/tools/install.sh" >&2
    return 1
fi
export PATH="$bljust_root/tools/venv/bin:$PATH"
export PYTHONUNBUFFERED=1
export LC_ALL=C  # Kaldi data directories are sorted in C-locale byte order
