#!/usr/bin/env bash
# Stage 1 of egs/covost2: Kaldi data directories from the CoVoST 2 tsv files (stage 0) and the
# Common Voice 4 clips (db.sh: COMMONVOICE). Per language <l>: data/train_<l>, dev_<l>, test_<l>
# (CoVoST splits, normalised transcripts) and train_unlabeled_<l> (Common Voice clips outside CoVoST
# dev and test, no text); with several languages also train_<l1>_<l2>..., dev_... and
# train_unlabeled_... for multilingual training. Audio stays where it is (mp3, read at 16 kHz).
set -euo pipefail

langs="nl,mn,ar"   # comma- or space-separated Common Voice codes
download_dir=downloads
data_dir=data

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --langs nl,mn,ar          source languages [$langs]
  --download_dir DIR        where stage 0 put covost_v2.<lang>_en.tsv [$download_dir]
  --data_dir DIR            [$data_dir]"

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
. local/langs.sh
check_opt "list:one_of:$covost2_langs" --langs "$langs"
[ -n "${langs//[ ,]/}" ] || opt_error "--langs must name at least one language, got '$langs'"
. ./path.sh
. ./db.sh

# shellcheck disable=SC2086
python -m bljust.bin.prepare_covost2 --commonvoice "$COMMONVOICE" --tsv_dir "${COVOST2_TSV:-$download_dir}" \
    --data_dir "$data_dir" --langs ${langs//,/ }
