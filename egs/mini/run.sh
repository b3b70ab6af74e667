#!/usr/bin/env bash
# Embedded default recipe: synthetic speech generated offline, trained and scored on a CPU
# in minutes. By default it trains supervised-only, PT+FT and BL-JUST on the same labeled budget,
# the three at once (one thread each), decodes the test set greedily and with the word lexicon
# and 3-gram of data/lang/char (from the labeled transcripts only), and prints the results side
# by side, with each system's WER/CER difference to supervised-only and its significance (when
# supervised-only is among the experiments). Any asr.sh option can be added, e.g.
#   ./run.sh --stage 5 --train_config conf/train_just.yaml
#   ./run.sh --stage 5 --seeds "0 1 2" --train_config "conf/train_supervised.yaml conf/train_pt_ft.yaml conf/train_just.yaml conf/train_bljust.yaml"
set -euo pipefail

./asr.sh \
    --train_set train_labeled \
    --valid_set dev \
    --test_sets "test" \
    --unlabeled_set train_unlabeled \
    --nj 2 \
    --token_type char \
    --train_config "conf/train_supervised.yaml conf/train_pt_ft.yaml conf/train_bljust.yaml" \
    --train_jobs 3 \
    --decode_config "conf/decode_greedy.yaml conf/decode_lm.yaml" \
    --compare_reference "train_supervised?" \
    "$@"
