#!/usr/bin/env bash
# RNN-T from a CTC-trained encoder, each system against its matched control, over several seeds.
#
# JUST's model (conf/train_just_rnnt.yaml: a split Conformer, contrastive + MLM lower level, an
# RNN-T) hardly emits when its transducer is trained from scratch within the mini budget. Started
# from a CTC-trained Conformer it learns. For every seed N this script
#   1. trains that encoder with CTC (conf/train_supervised_conformer.yaml, 4 blocks, 200 warm-up
#      steps): exp/asr_conformer4_ctc_<data>_seedN;
#   2. starts four transducer systems from it (encoder weights only, --init), at the joint rate
#      1e-3 with 200 warm-up steps: BL-JUST (train_bljust_rnnt.yaml) and its matched control
#      (train_bljust_rnnt_control.yaml: BL-JUST's schedule, no unlabeled speech), JUST
#      (train_just_rnnt.yaml) and its matched control (train_just_rnnt_control.yaml: lambda = 0);
# then compares each system with its control: seed-paired over the seeds, bootstrap over the test
# utterances, greedy and RNN-T beam search (conf/decode_beam.yaml).
#
# Everything resumes: rerun the same command after an interruption. From egs/mini:
#   ./run_rnnt_from_ctc.sh                          # seeds 0 1 2, after ./run.sh made the data
#   ./run_rnnt_from_ctc.sh --systems bljust_rnnt    # BL-JUST and its control only
# Results: exp/rnnt_from_ctc_<system>_vs_control_test.md; the numbers are in RESULTS.md.
set -euo pipefail

stage=1
seeds="0 1 2"
systems="bljust_rnnt just_rnnt"
help_message="Usage: $0 [options]
  --stage N            first stage of asr.sh for the CTC models (1: data, 5: training) [$stage]
  --seeds \"0 1 ...\"    training seeds, distinct integers >= 0; the seeds run side by side,
                       one thread each [$seeds]
  --systems \"...\"      bljust_rnnt and/or just_rnnt, each trained with its control [$systems]"
. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
check_opt int:1:7 --stage "$stage"
check_opt list:uint --seeds "$seeds"
[ -n "${systems// /}" ] || opt_error "--systems must name bljust_rnnt and/or just_rnnt, got ''"
for system in $systems; do
    case $system in bljust_rnnt|just_rnnt) ;; *) opt_error "--systems must name bljust_rnnt and/or just_rnnt, got '$systems'";; esac
done
. ./path.sh
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run_rnnt_from_ctc.sh) $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

common=(--train_set train_labeled --valid_set dev --test_sets test --unlabeled_set train_unlabeled
        --nj 2 --token_type char)
data_tag=train_labeled_fbank_char
ctc_tag=conformer4_ctc_$data_tag
num_seeds=$(echo $seeds | wc -w)

./asr.sh "${common[@]}" --stage "$stage" --train_config conf/train_supervised_conformer.yaml \
    --tag "$ctc_tag" --seeds "$seeds" --train_jobs "$num_seeds" --decode_config conf/decode_greedy.yaml \
    --train_args "--encoder_conf.num_layers 4 --phases.train.warmup_steps 200" --comparison exp/conformer4_ctc

# One chain per seed, side by side: each seed's systems one after the other, one thread each.
train_seed() {  # <seed>
    local seed=$1 system config
    local from_ctc="--init exp/asr_${ctc_tag}_seed$seed/model_best.pt --phases.joint.lr 1e-3 --phases.joint.warmup_steps 200"
    for system in $systems; do
        for config in "train_$system" "train_${system}_control"; do
            OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ./asr.sh "${common[@]}" --stage 5 --train_config "conf/$config.yaml" \
                --tag "rnnt_from_ctc_${config#train_}_$data_tag" --seeds "$seed" --train_args "$from_ctc" \
                --decode_config "conf/decode_greedy.yaml conf/decode_beam.yaml"
        done
    done
}
declare -A chain  # pid -> seed
for seed in $seeds; do
    log "RNN-T systems from exp/asr_${ctc_tag}_seed$seed (log: exp/rnnt_from_ctc_seed$seed.log)"
    train_seed "$seed" > "exp/rnnt_from_ctc_seed$seed.log" 2>&1 &
    chain[$!]=$seed
done
failed=0
for pid in "${!chain[@]}"; do
    seed_log=exp/rnnt_from_ctc_seed${chain[$pid]}.log
    wait "$pid" || { failed=1; log "ERROR: seed ${chain[$pid]} failed; the end of $seed_log:"; tail -n 5 "$seed_log" >&2; }
done
[ "$failed" -eq 0 ] || die "some RNN-T runs failed (see above)"

for system in $systems; do
    exps=()
    for name in "${system}_control" "$system"; do
        for seed in $seeds; do exps+=("exp/asr_rnnt_from_ctc_${name}_${data_tag}_seed$seed"); done
    done
    python -m bljust.bin.compare --test_set test --decode decode_greedy decode_beam \
        --out "exp/rnnt_from_ctc_${system}_vs_control_test.md" --reference "rnnt_from_ctc_${system}_control_$data_tag" \
        --ref_text dump/fbank/test/text "${exps[@]}"
done
