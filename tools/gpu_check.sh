#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) on a machine with one CUDA GPU where torch and torchaudio
# are already installed: installs the project's other dependencies that are missing (from
# PyPI, or offline from a folder of wheels: WHEELS=<dir>), then runs the check.
#
#   tools/gpu_check.sh [--steps 40] [--precision bfloat16] [--utts 400] [--only rnnt]
#
# Record its output in bench/README.md with the GPU's name.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
missing=()
for pair in sentencepiece:sentencepiece jiwer:jiwer kaldiio:kaldiio yaml:pyyaml numpy:numpy tqdm:tqdm \
            soundfile:soundfile matplotlib:matplotlib tensorboard:tensorboard; do
    "$python" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "gpu_check.sh: installing ${missing[*]}" >&2
    "$python" -m pip install -q ${WHEELS:+--no-index --find-links "$WHEELS"} "${missing[@]}"
fi
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} exec "$python" bench/gpu_check.py "$@"
