#!/usr/bin/env bash
# Check a data directory by Kaldi's rules (sorted unique keys, utt2spk/spk2utt inverse,
# speaker ids prefixing utterance ids, every file covering the same utterances, ...).
# Prints the first problem as "ERROR: <file>:<line>: ..." and exits 1.
set -euo pipefail

usage() {
    cat >&2 <<USAGE
Usage: $0 [--no-text] [--no-wav] [--need-feats] <data-dir>
  --no-text     the directory has no transcripts (text is then optional)
  --no-wav      the directory need not have wav.scp
  --need-feats  feats.scp is required
e.g.: $0 data/train
USAGE
    exit 1
}

opts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-text|--no-wav|--need-feats) opts+=("$1"); shift ;;
        --no-feats) shift ;;  # Kaldi's option; features are optional here anyway
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
exec "${PYTHON:-python}" -m bljust.bin.datadir validate ${opts[@]+"${opts[@]}"} "$1"
