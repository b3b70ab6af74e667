#!/usr/bin/env bash
# Table 2 of the Wav2Vec2-JUST / CNN-LSTM study on the mini corpus: PT+FT vs BL-JUST test
# WER for 2-4 CNN x 4-6 LSTM layers, with parameter counts. Run from egs/mini after
# stages 1-4 (./run.sh --stop_stage 4). 18 trainings: hours on 2 CPU cores.
#   local/sweep_depth.sh [--cnn "2 3 4"] [--lstm "4 5 6"]
set -euo pipefail
cnn="2 3 4"
lstm="4 5 6"
help_message="Usage: $0 [--cnn \"2 3 4\"] [--lstm \"4 5 6\"]   (CNN / LSTM layer counts: positive integers)"
. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
for opt in cnn lstm; do
    check_opt list:posint "--$opt" "${!opt}"
    [ -n "${!opt//[ ,]/}" ] || opt_error "--$opt must list at least one layer count, got '${!opt}'"
done
cnn=${cnn//,/ } lstm=${lstm//,/ }
. ./path.sh

exps=()
for c in $cnn; do
    for l in $lstm; do
        for strategy in pt_ft bljust; do
            tag=c${c}_l${l}_$strategy
            ./run.sh --stage 5 --train_config "conf/train_$strategy.yaml" --tag "$tag" \
                --train_args "--encoder_conf.cnn_layers $c --encoder_conf.lstm_layers $l"
            exps+=("exp/asr_$tag")
        done
    done
done
python -m bljust.bin.compare --pivot --test_set test --out exp/sweep_depth.md "${exps[@]}"
