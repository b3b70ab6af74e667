#!/usr/bin/env bash
# Combine data directories into one (Kaldi's combine_data.sh). Utterance ids must be
# unique across the sources; a file that only some sources have is left out (with a
# warning), except wav.scp and utt2spk, which every source needs.
set -euo pipefail

if [ $# -lt 2 ] || [[ $1 == -* ]]; then
    echo "Usage: $0 <dest-data-dir> <src-data-dir1> <src-data-dir2> ..." >&2
    echo "e.g.: $0 data/train_all data/train_a data/train_b" >&2
    exit 1
fi
exec "${PYTHON:-python}" -m bljust.bin.datadir combine "$@"
