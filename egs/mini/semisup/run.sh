#!/usr/bin/env bash
# The semi-supervised benchmark of egs/mini: does unlabeled speech, used the BL-JUST way, make a
# better recogniser than PT+FT, JUST or no unlabeled speech at all, where it carries information?
#
# Why this regime. In the default recipe (8 labeled voices, 1500 labeled utterances) every system
# reaches the same WER: labeled speech alone covers the voices. Here the labeled set is small and
# narrow (600 utterances from 4 voices) while the unlabeled set is 4x larger and has 10x the voices
# (2400 utterances, 40 voices); dev and test voices are heard nowhere in training. This is where
# an earlier measurement saw CPC pre-training help (48 against 57 % WER with the LM).
#
# Systems (conf/): supervised, the matched control of PT+FT and JUST (their labeled schedule is
# supervised's); bljust_control, BL-JUST's matched control (its schedule, no unlabeled speech);
# PT+FT, JUST and BL-JUST with a CPC and a contrastive lower level. Every system draws 600 labeled
# batches, and the six that use unlabeled speech 600 unlabeled ones (budget.json, and the tables).
# --ablations adds BL-JUST (CPC) with N1 = 0, with N3 = 0, with a constant gamma, and with plain SGD.
#
# Everything resumes: rerun the same command after an interruption. From egs/mini/semisup:
#   ./run.sh                                  # stages 1-8, 5 seeds, then the comparisons
#   ./run.sh --seeds "0 1 2" --ablations true
# Results: exp/semisup_test.md (every system, and its difference from supervised training),
# exp/semisup_bljust_vs_control_test.md, exp/semisup_vs_{pt_ft,just}_<lower level>_test.md (BL-JUST
# against them), exp/ablations_test.md; the numbers are in egs/mini/RESULTS.md.
set -euo pipefail

stage=1
seeds="0 1 2 3 4"
lower_levels="cpc contrastive"
ablations=false
train_jobs=3
help_message="Usage: $0 [options]
  --stage N            first stage of asr.sh (1: data, 5: training) [$stage]
  --seeds \"0 1 ...\"    training seeds, distinct integers >= 0 [$seeds]
  --lower_levels \"...\" cpc and/or contrastive [$lower_levels]
  --ablations BOOL     also the BL-JUST (cpc) ablations: N1 = 0, N3 = 0, constant gamma, SGD [$ablations]
  --train_jobs N       experiments at a time [$train_jobs]"
. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
check_opt int:1:7 --stage "$stage"
check_opt list:uint --seeds "$seeds"
check_opt bool --ablations "$ablations"
check_opt posint --train_jobs "$train_jobs"
for level in $lower_levels; do
    case $level in cpc|contrastive) ;; *) opt_error "--lower_levels must name cpc and/or contrastive, got '$lower_levels'";; esac
done
. ./path.sh

data_opts="--num_train_labeled 600 --voices_labeled 4 --num_train_unlabeled 2400 --voices_unlabeled 40"
common=(--local_data_opts "$data_opts" --train_set train_labeled --valid_set dev --test_sets test
        --unlabeled_set train_unlabeled --nj 2 --token_type char --train_jobs "$train_jobs" --seeds "$seeds"
        --decode_config "conf/decode_greedy.yaml conf/decode_lm.yaml")
data_tag=train_labeled_fbank_char

configs="conf/train_supervised.yaml conf/train_bljust_control.yaml"
for level in $lower_levels; do
    configs+=" conf/train_pt_ft_$level.yaml conf/train_just_$level.yaml conf/train_bljust_$level.yaml"
done
./asr.sh "${common[@]}" --stage "$stage" --train_config "$configs" --compare_reference train_supervised \
    --comparison exp/semisup

# Each system against its matched control, and BL-JUST against the other two ways of using the
# same unlabeled speech: seed-paired over the seeds, bootstrap over the test utterances.
exps() { for name in "$@"; do for s in $seeds; do echo "exp/asr_train_${name}_${data_tag}_seed$s"; done; done; }
compare() {  # <out> <reference> <systems...>: names of conf/train_<name>.yaml
    local out=$1 ref=$2; shift 2
    python -m bljust.bin.compare --test_set test --decode decode_greedy decode_lm --out "$out" \
        --reference "train_${ref}_$data_tag" --ref_text dump/fbank/test/text $(exps "$ref" "$@")
}
compare exp/semisup_bljust_vs_control_test.md bljust_control $(for l in $lower_levels; do echo "bljust_$l"; done)
for level in $lower_levels; do
    compare "exp/semisup_vs_pt_ft_${level}_test.md" "pt_ft_$level" "bljust_$level"
    compare "exp/semisup_vs_just_${level}_test.md" "just_$level" "bljust_$level"
done

if [ "$ablations" = true ]; then
    # The papers' ablations of BL-JUST (CPC), each against the full method: no exploration (N1 = 0),
    # no final fine-tuning (N3 = 0), gamma constant at gamma_max instead of ramped per epoch, and
    # plain SGD (the algorithm as written; rates 20x AdamW's, not tuned) instead of AdamW.
    declare -A ablation=(
        [no_explore]="--phases.explore.steps 0"
        [no_finetune]="--phases.finetune.steps 0"
        [constant_gamma]="--strategy_conf.gamma_schedule constant"
        [sgd]="--optim.type sgd --phases.explore.lr 0.04 --phases.joint.lr 0.1 --phases.finetune.lr 0.02"
    )
    tags=()
    for name in no_explore no_finetune constant_gamma sgd; do
        ./asr.sh "${common[@]}" --stage 5 --train_config conf/train_bljust_cpc.yaml \
            --tag "train_bljust_cpc_${name}_$data_tag" --train_args "${ablation[$name]}"
        tags+=("bljust_cpc_$name")
    done
    compare exp/ablations_test.md bljust_cpc "${tags[@]}"
fi
