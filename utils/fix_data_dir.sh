#!/usr/bin/env bash
# Make a data directory consistent (Kaldi's fix_data_dir.sh): keep only the utterances
# present in every file, drop unused recordings, sort everything, regenerate spk2utt.
# The original files are kept in <data-dir>/.backup/.
set -euo pipefail

if [ $# -ne 1 ] || [[ $1 == -* ]]; then
    echo "Usage: $0 <data-dir>" >&2
    echo "e.g.: $0 data/train" >&2
    exit 1
fi
exec "${PYTHON:-python}" -m bljust.bin.datadir fix "$1"
