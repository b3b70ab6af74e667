#!/usr/bin/env bash
# Stage 0 of egs/tedlium2: fetch TEDLIUM_release2.tar.gz (about 34 GB) from openslr SLR19
# (TEDLIUM2_URL in db.sh), verify it (local/checksums.txt) and unpack it into
# downloads/TEDLIUM_release2. An interrupted download resumes; once unpacked it is not
# requested again. With TEDLIUM2 set in db.sh nothing is downloaded: the script only
# checks that the copy there has train, dev and test. Run from egs/tedlium2/.
set -euo pipefail

help_message="Usage: $0
Downloads and unpacks TED-LIUM release 2 unless TEDLIUM2 in db.sh points at a copy."

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
. ./path.sh
. ./db.sh
download_dir=downloads  # local/data.sh reads the corpus from here when TEDLIUM2 is empty
archive=TEDLIUM_release2.tar.gz

if [ -n "$TEDLIUM2" ]; then
    for set in train dev test; do
        if [ ! -d "$TEDLIUM2/TEDLIUM_release2/$set" ]; then
            echo "$0: ERROR: TEDLIUM2=$TEDLIUM2 (db.sh) has no TEDLIUM_release2/$set; fix the path," \
                 "or empty TEDLIUM2 to download the corpus" >&2
            exit 1
        fi
    done
    echo "$0: using the TED-LIUM 2 copy in $TEDLIUM2 (TEDLIUM2 in db.sh): nothing to download" >&2
    exit 0
fi

if [ -f "$download_dir/.$archive.done" ]; then
    echo "$0: already downloaded and unpacked ($download_dir/.$archive.done exists), skipping" >&2
    exit 0
fi
echo "$0: $TEDLIUM2_URL/$archive -> $download_dir/TEDLIUM_release2" >&2
python -m bljust.bin.download --url "$TEDLIUM2_URL/$archive" --download_dir "$download_dir" \
    --extract_dir "$download_dir" --checksums local/checksums.txt --db_var TEDLIUM2
