#!/usr/bin/env bash
# LibriSpeech (openslr SLR12): CTC CNN-LSTM trained on train-clean-100 (labeled) and
# train-clean-360 + train-other-500 (unlabeled audio, 860 h), PT+FT and BL-JUST on the same
# budget, tested on dev/test clean/other. Stage 0 downloads about 60 GB (or uses the copy
# LIBRISPEECH in db.sh points at). Needs a GPU; see conf/*.yaml for times. Examples:
#   ./run.sh                                   # everything, from the download on
#   unlabeled_parts=train-clean-100 ./run.sh   # the CNN-LSTM study's setting: 100 h at both levels
#   ./run.sh --stage 5 --train_config conf/train_supervised.yaml
#   ./run.sh --stage 5 --train_config conf/train_just_rnnt.yaml   # the JUST baseline (Conformer, RNN-T)
set -euo pipefail

# Training parts whose audio is the unlabeled set (comma-separated); stage 0 downloads
# them and stage 1 combines them into data/train_unlabeled.
unlabeled_parts=${unlabeled_parts:-train-clean-360,train-other-500}

./asr.sh \
    --download_opts "--unlabeled_parts $unlabeled_parts" \
    --local_data_opts "--unlabeled_parts $unlabeled_parts" \
    --train_set train_clean_100 \
    --valid_set dev_clean \
    --test_sets "dev_clean dev_other test_clean test_other" \
    --unlabeled_set train_unlabeled \
    --nj 8 \
    --feats_compress true \
    --ngpu 1 \
    --token_type unigram \
    --nbpe 1000 \
    --train_config "conf/train_pt_ft.yaml conf/train_bljust.yaml" \
    --decode_config conf/decode_greedy.yaml \
    "$@"
