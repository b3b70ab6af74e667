#!/usr/bin/env bash
# Embedded default recipe: synthetic speech generated offline, trained and scored on a CPU
# in minutes. Options given here are defaults; any asr.sh option can be added, e.g.
#   ./run.sh --stage 5 --train_config conf/train_cnn_lstm_small.yaml
set -euo pipefail

./asr.sh \
    --train_set train_labeled \
    --valid_set dev \
    --test_sets "test" \
    --nj 2 \
    --token_type char \
    --train_config conf/train_cnn_lstm.yaml \
    --decode_config conf/decode_greedy.yaml \
    "$@"
