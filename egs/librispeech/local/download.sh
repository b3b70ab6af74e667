#!/usr/bin/env bash
# Stage 0 of egs/librispeech: fetch the LibriSpeech parts the recipe uses from openslr SLR12
# (LIBRISPEECH_URL in db.sh), verify each archive's md5 (local/checksums.txt) and unpack it
# into downloads/LibriSpeech/<part>. An interrupted download resumes; a part already
# unpacked is not requested again. With LIBRISPEECH set in db.sh nothing is downloaded:
# the script only checks that the copy there has the parts. Run from egs/librispeech/.
#
# Sizes (openslr): dev-clean 337M, dev-other 314M, test-clean 346M, test-other 328M,
# train-clean-100 6.3G, train-clean-360 23G, train-other-500 30G.
set -euo pipefail

unlabeled_parts=train-clean-360,train-other-500  # as local/data.sh: training parts used as unlabeled audio

help_message="Usage: $0 [options]
Downloads dev-clean, dev-other, test-clean, test-other, train-clean-100 and the unlabeled parts.
Options (defaults in brackets):
  --unlabeled_parts LIST   comma-separated training parts [$unlabeled_parts]
                           (train-clean-100 alone: nothing more than the labeled part)"

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
check_opt "list:one_of:train-clean-100|train-clean-360|train-other-500" --unlabeled_parts "$unlabeled_parts"
. ./path.sh
. ./db.sh
download_dir=downloads  # local/data.sh reads the corpus from here when LIBRISPEECH is empty

parts="dev-clean dev-other test-clean test-other train-clean-100"
for part in ${unlabeled_parts//,/ }; do
    case " $parts " in *" $part "*) ;; *) parts+=" $part" ;; esac
done

if [ -n "$LIBRISPEECH" ]; then
    for part in $parts; do
        if [ ! -d "$LIBRISPEECH/LibriSpeech/$part" ]; then
            echo "$0: ERROR: LIBRISPEECH=$LIBRISPEECH (db.sh) has no LibriSpeech/$part; add the part there," \
                 "or empty LIBRISPEECH to download the corpus" >&2
            exit 1
        fi
    done
    echo "$0: using the LibriSpeech copy in $LIBRISPEECH (LIBRISPEECH in db.sh): nothing to download" >&2
    exit 0
fi

for part in $parts; do
    archive=$part.tar.gz
    if [ -f "$download_dir/.$archive.done" ]; then
        echo "$0: $part: already downloaded and unpacked ($download_dir/.$archive.done exists), skipping" >&2
        continue
    fi
    echo "$0: $part: $LIBRISPEECH_URL/$archive -> $download_dir/LibriSpeech/$part" >&2
    python -m bljust.bin.download --url "$LIBRISPEECH_URL/$archive" --download_dir "$download_dir" \
        --extract_dir "$download_dir" --checksums local/checksums.txt --db_var LIBRISPEECH
done
