#!/usr/bin/env bash
# Copy a data directory restricted to some utterances; every file is filtered alike and,
# with segments, only the recordings still used are kept (Kaldi's subset_data_dir.sh).
set -euo pipefail

usage() {
    cat >&2 <<USAGE
Usage: $0 --utt-list <file> <src-data-dir> <dest-data-dir>
       $0 --spk-list <file> <src-data-dir> <dest-data-dir>
       $0 --first|--last|--shortest <src-data-dir> <N> <dest-data-dir>
       $0 --first|--last|--shortest <N> <src-data-dir> <dest-data-dir>
  --utt-list <file>  the utterances listed in <file> (first field of each line)
  --spk-list <file>  all utterances of the speakers listed in <file>
  --first / --last   the first / last N utterances in sorted order
  --shortest         the N shortest utterances (by utt2dur, segments or utt2num_frames)
e.g.: $0 --first data/train 100 data/train_100
USAGE
    exit 1
}

mode="" list="" num=""
while [ $# -gt 0 ]; do
    case "$1" in
        --utt-list|--spk-list)
            [ -z "$mode" ] || { echo "$0: give only one of the selection options" >&2; usage; }
            [ $# -ge 2 ] || usage
            mode=$1; list=$2; shift 2 ;;
        --first|--last|--shortest)
            [ -z "$mode" ] || { echo "$0: give only one of the selection options" >&2; usage; }
            mode=$1; shift
            # Both "--first N <src> <dst>" and Kaldi's "--first <src> N <dst>" are accepted: N
            # first when only the first is a number, or (neither being one) only the second a folder.
            if [ $# -eq 3 ] && ! [[ $2 =~ ^[0-9]+$ ]] && { [[ $1 =~ ^[0-9]+$ ]] || { [ ! -d "$1" ] && [ -d "$2" ]; }; }; then
                num=$1; shift
            fi ;;
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
case "$mode" in
    --utt-list|--spk-list)
        [ $# -eq 2 ] || usage
        exec "${PYTHON:-python}" -m bljust.bin.datadir subset "$mode" "$list" "$1" "$2" ;;
    --first|--last|--shortest)
        if [ -z "$num" ]; then
            [ $# -eq 3 ] || usage
            src=$1 num=$2 dst=$3
        else
            [ $# -eq 2 ] || usage
            src=$1 dst=$2
        fi
        . "$(dirname "${BASH_SOURCE[0]}")/check_options.sh"
        check_opt posint "the N of $mode" "$num"
        exec "${PYTHON:-python}" -m bljust.bin.datadir subset "$mode" "$num" "$src" "$dst" ;;
    *) echo "$0: give one of --utt-list, --spk-list, --first, --last, --shortest" >&2; usage ;;
esac
