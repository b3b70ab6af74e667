#!/usr/bin/env bash
# @NAME@: made by egs/TEMPLATE/setup.sh. Edit the lines marked EDIT, then db.sh and local/data.sh
# (docs/new_corpus.md). Any asr.sh option can be added on the command line and wins over these:
#   ./run.sh --stage 1 --stop_stage 1                         # data preparation only (and its validation)
#   ./run.sh --stage 5 --train_config conf/train_supervised.yaml
#   ./run.sh --stage 5 --train_args "--max_epochs 5"           # key overrides: exp/asr_<config>_max_epochs5
#   ./run.sh --help                                           # every option of asr.sh
set -euo pipefail

# ---- EDIT: the data directories local/data.sh writes (data/<set>) ----------------------------
train_set=train                 # labeled training data
valid_set=dev                   # validation data (model selection, the best checkpoint)
test_sets="test"                # decoded and scored in stages 6-7 (space-separated, e.g. "dev test")
unlabeled_set=train_unlabeled   # audio without transcripts for PT+FT and BL-JUST; "" for none
                                # (then train only conf/train_supervised*.yaml)
# ---- EDIT: tokens, hardware, configs ---------------------------------------------------------
token_type=unigram              # char, unigram or bpe (char: small corpora, or many characters)
nbpe=500                        # vocabulary size for unigram/bpe
nj=4                            # parallel feature-extraction jobs
ngpu=1                          # 0: train on the CPU (only for small models and data)
train_config="conf/train_supervised.yaml conf/train_bljust.yaml"   # one experiment each (conf/train_*.yaml)
decode_config="conf/decode_greedy.yaml"                           # each decodes every experiment
# ----------------------------------------------------------------------------------------------

./asr.sh \
    --train_set "$train_set" \
    --valid_set "$valid_set" \
    --test_sets "$test_sets" \
    --unlabeled_set "$unlabeled_set" \
    --token_type "$token_type" \
    --nbpe "$nbpe" \
    --nj "$nj" \
    --ngpu "$ngpu" \
    --train_config "$train_config" \
    --decode_config "$decode_config" \
    "$@"
