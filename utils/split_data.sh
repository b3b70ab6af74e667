#!/usr/bin/env bash
# Split a data directory into <num> parts <data>/split<num>/1..<num> for parallel jobs
# (Kaldi's split_data.sh). By default whole speakers go into one part; with --per-utt the
# parts are <data>/split<num>utt/1..<num>, balanced by utterances. Nothing is redone
# when an existing split is newer than the data directory.
set -euo pipefail

usage() {
    echo "Usage: $0 [--per-utt] <data-dir> <num-to-split>" >&2
    echo "e.g.: $0 data/train 4   # -> data/train/split4/{1,2,3,4}" >&2
    exit 1
}
opts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --per-utt) opts+=(--per-utt); shift ;;
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -eq 2 ] || usage
. "$(dirname "${BASH_SOURCE[0]}")/check_options.sh"
check_opt posint "<num-to-split>" "$2"
exec "${PYTHON:-python}" -m bljust.bin.datadir split ${opts[@]+"${opts[@]}"} "$1" "$2"
