#!/usr/bin/env bash
# TED-LIUM release 2 (openslr SLR19): CTC CNN-LSTM, PT+FT and BL-JUST on the same budget,
# labeled = train (207 h of talks), unlabeled = the same audio without its transcripts;
# tested on dev and test. Stage 0 downloads about 34 GB (or uses the copy TEDLIUM2 in db.sh
# points at). Needs a GPU; see conf/*.yaml. Examples:
#   ./run.sh                                                   # everything, from the download on
#   ./run.sh --local_data_opts "--labeled_hours 50"            # 50 h labeled, the other talks unlabeled
#   ./run.sh --stage 5 --train_config conf/train_supervised.yaml
# (Changing --local_data_opts prepares data/ again; delete dump/ too so features follow.)
set -euo pipefail

./asr.sh \
    --train_set train \
    --valid_set dev \
    --test_sets "dev test" \
    --unlabeled_set train_unlabeled \
    --nj 8 \
    --feats_compress true \
    --ngpu 1 \
    --token_type unigram \
    --nbpe 500 \
    --train_config "conf/train_pt_ft.yaml conf/train_bljust.yaml" \
    --decode_config conf/decode_greedy.yaml \
    "$@"
