#!/usr/bin/env bash
# Stage 1 of egs/librispeech: Kaldi data directories from the corpus on disk (LIBRISPEECH
# in db.sh, else what stage 0 unpacked into downloads/):
#   data/train_clean_100                      labeled training data
#   data/train_unlabeled                      the unlabeled parts combined, without text
#   data/dev_clean data/dev_other data/test_clean data/test_other
# Utterance ids <speaker>-<chapter>-<utt>, speaker <speaker>-<chapter>, transcripts upper
# case as distributed, wav.scp with the FLAC paths. Run from egs/librispeech/.
set -euo pipefail

unlabeled_parts=train-clean-360,train-other-500  # "train-clean-100": the CNN-LSTM study's setting
data_dir=data

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --unlabeled_parts LIST   comma-separated training parts whose audio forms train_unlabeled
                           [$unlabeled_parts]; train-clean-100 gives the same 100 h at both levels
  --data_dir DIR           [$data_dir]"

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
check_opt "list:one_of:train-clean-100|train-clean-360|train-other-500" --unlabeled_parts "$unlabeled_parts"
. ./path.sh
. ./db.sh

python -m bljust.bin.prepare_corpus librispeech --corpus_dir "${LIBRISPEECH:-downloads}" \
    --data_dir "$data_dir" --unlabeled_parts "$unlabeled_parts"
