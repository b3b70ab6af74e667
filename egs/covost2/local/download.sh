#!/usr/bin/env bash
# Stage 0 of egs/covost2: check that Common Voice 4 is where db.sh says (it cannot be downloaded
# for you: the message says what to get), then download and extract the CoVoST 2 X -> En tsv
# file of every language into $download_dir. Rerunning sends no request. Run from egs/covost2/.
set -euo pipefail

langs="nl,mn,ar"   # comma- or space-separated Common Voice codes
download_dir=downloads

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --langs nl,mn,ar          source languages [$langs]
  --download_dir DIR        where the archives and tsv files go [$download_dir]"

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
. local/langs.sh
check_opt "list:one_of:$covost2_langs" --langs "$langs"
[ -n "${langs//[ ,]/}" ] || opt_error "--langs must name at least one language, got '$langs'"
. ./path.sh
. ./db.sh

langs=${langs//,/ }
# shellcheck disable=SC2086
python -m bljust.bin.prepare_covost2 --check --commonvoice "$COMMONVOICE" --langs $langs

for lang in $langs; do
    name=covost_v2.${lang}_en.tsv
    if [ -n "$COVOST2_TSV" ]; then
        [ -f "$COVOST2_TSV/$name" ] || { echo "$0: COVOST2_TSV=$COVOST2_TSV (db.sh) has no $name" >&2; exit 1; }
        continue
    fi
    # No --md5/--sha256: CoVoST publishes no checksums for these files.
    python -m bljust.bin.download --url "$COVOST2_TSV_URL/$name.tar.gz" \
        --download_dir "$download_dir" --extract_dir "$download_dir" --db_var COVOST2_TSV
done
