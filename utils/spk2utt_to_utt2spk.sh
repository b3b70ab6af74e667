#!/usr/bin/env bash
# Convert spk2utt to utt2spk, reading stdin (or the file given) and writing stdout.
#   utils/spk2utt_to_utt2spk.sh < data/train/spk2utt > data/train/utt2spk
set -euo pipefail

if [ $# -gt 1 ] || [[ ${1:-} == -?* ]]; then
    echo "Usage: $0 [<spk2utt>] > <utt2spk>   (reads stdin without a file)" >&2
    exit 1
fi
exec "${PYTHON:-python}" -m bljust.bin.datadir spk2utt_to_utt2spk "$@"
