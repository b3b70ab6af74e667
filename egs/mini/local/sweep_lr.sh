#!/usr/bin/env bash
# Table 1 of the Wav2Vec2-JUST / CNN-LSTM study on the mini corpus: BL-JUST test WER for
# pairs of learning rates (alpha: self-supervised exploration, beta: supervised joint
# steps). Run from egs/mini after stages 1-4 (./run.sh --stop_stage 4).
#   local/sweep_lr.sh [--pairs "1e-2,1e-2 1e-3,1e-3 1e-4,1e-3 1e-3,1e-4"] [--config conf/train_bljust_contrastive.yaml]
# Each run is exp/asr_<config name>_lr_alpha<a>_beta<b>; the table goes to exp/sweep_lr_<config name>.md.
set -euo pipefail
pairs="1e-2,1e-2 1e-3,1e-3 1e-4,1e-3 1e-3,1e-4"
config=conf/train_bljust_contrastive.yaml
help_message="Usage: $0 [--pairs \"$pairs\"] [--config $config]
  --pairs   space-separated alpha,beta pairs of learning rates (positive numbers)
  --config  the training config to sweep"
. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
[ -n "$pairs" ] || opt_error "--pairs must be space-separated alpha,beta pairs of positive numbers, got ''"
for pair in $pairs; do
    [[ $pair == *,* ]] && opt_valid posnum "${pair%,*}" && opt_valid posnum "${pair#*,}" \
        || opt_error "--pairs must be space-separated alpha,beta pairs of positive numbers, got '$pairs'"
done
[ -f "$config" ] || opt_error "--config $config: no such file"  # (--config is this script's option here)
. ./path.sh

exps=()
for pair in $pairs; do
    alpha=${pair%,*}; beta=${pair#*,}
    tag=$(basename "$config" .yaml)_lr_alpha${alpha}_beta${beta}
    ./run.sh --stage 5 --train_config "$config" --tag "$tag" \
        --train_args "--phases.explore.lr $alpha --phases.joint.lr $beta"
    exps+=("exp/asr_$tag")
done
python -m bljust.bin.compare --test_set test --out "exp/sweep_lr_$(basename "$config" .yaml).md" "${exps[@]}"
