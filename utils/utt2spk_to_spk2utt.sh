#!/usr/bin/env bash
# Convert utt2spk to spk2utt, reading stdin (or the file given) and writing stdout.
#   utils/utt2spk_to_spk2utt.sh < data/train/utt2spk > data/train/spk2utt
set -euo pipefail

if [ $# -gt 1 ] || [[ ${1:-} == -?* ]]; then
    echo "Usage: $0 [<utt2spk>] > <spk2utt>   (reads stdin without a file)" >&2
    exit 1
fi
exec "${PYTHON:-python}" -m bljust.bin.datadir utt2spk_to_spk2utt "$@"
