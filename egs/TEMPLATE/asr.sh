#!/usr/bin/env bash
# The staged ASR pipeline shared by every recipe; egs/<corpus>/run.sh only sets options.
#
#   0 download             local/download.sh (corpora with one; skipped when db.sh points at a copy)
#   1 data preparation     local/data.sh -> data/<set> (Kaldi data directories)
#   2 speed perturbation   data/<train_set>_sp (only with --speed_perturb_factors)
#   3 features             80-dim fbank by nj parallel jobs -> dump/fbank/<set>, global CMVN
#                          (--feats_type raw: 16-bit waveforms -> dump/raw/<set>, no CMVN)
#   4 token list           data/token_list/<type> (characters or sentencepiece)
#   5 training             exp/asr_<tag> (resumes from the newest checkpoint)
#   6 decoding             exp/asr_<tag>/decode_<set>_<decode config>
#   7 scoring              WER/CER, alignments, exp/asr_<tag>/RESULTS.md; with several
#                          experiments (configs or seeds) also exp/comparison_<set>.md/.png
#   8 packing              exp/asr_<tag>/packed/<decode config>.pt: the model with its token list,
#                          CMVN, front end and decoding (lexicon and LM included), for transcribe
#
# Every stage skips work that is already done and says so; --stage N --stop_stage M
# runs a range. Delete a stage's output (or its .done file) to redo it.
set -euo pipefail

asr_args=("$@")  # kept for the experiment's replay script
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (asr.sh) $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# skip_if_done <marker> <what>: true (and says so) when <marker> exists.
skip_if_done() { if [ -f "$1" ]; then log "$2: already done ($1 exists), skipping"; return 0; fi; return 1; }

# General
stage=0
stop_stage=100
nj=4                 # parallel jobs for feature extraction
ngpu=0               # 0: CPU; N: N CUDA devices per node, one training process each
nproc_per_node=1     # training processes per node on the CPU (ngpu=0): data-parallel over gloo
num_nodes=1          # nodes of one training job (cmd_backend=slurm; cmd.sh)
dumpdir=dump
expdir=exp
# Data
download_opts=""     # options passed to local/download.sh
local_data_opts=""   # options passed to local/data.sh
train_set=""         # labeled training data
valid_set=""
test_sets=""         # space-separated
unlabeled_set=""     # unlabeled training data (used by strategies that need it)
speed_perturb_factors=""  # e.g. "0.9 1.0 1.1"; empty: no speed perturbation
fs=16000
feats_type=fbank     # fbank: 80-dim log-mel features; raw: 16-bit waveforms (encoders that read audio, e.g. wav2vec2)
num_mel_bins=80
feats_compress=false # true: Kaldi compressed matrices, about a quarter of float32's disk (docs/training.md, "Features on disk")
# Tokens
token_type=char      # char, unigram or bpe
nbpe=100             # vocabulary size for unigram/bpe
token_listdir=data/token_list  # token lists go to <token_listdir>/<type> (per-language recipes: one folder each)
lm_order=3           # word n-gram of the lang directory (stage 4), from the labeled transcripts only
# Training and decoding
train_config=""      # one YAML, or several ("conf/a.yaml conf/b.yaml"): one experiment each, then compared
train_args=""        # overrides, e.g. "--max_epochs 3 --phases.train.lr 5e-4"
tag=""               # experiment name; default: <config>_<train set>[_sp]_<feats type>_<token type>[nbpe] (+ train_args)
seeds=""             # e.g. "0 1 2": one experiment per seed (tag suffix _seed<N>), aggregated in the comparison
comparison=""        # comparison table/plot prefix; default: $expdir/comparison
compare_reference="" # the experiment (config name or tag, without _seed<N>) the comparison tests the others against; "NAME?": only when it is one
decode_config=""     # one YAML, or several ("conf/decode_greedy.yaml conf/decode_lm.yaml"): each decodes every experiment
decode_args=""       # overrides, e.g. "--beam_size 20"; they name the decoding folder too
train_jobs=1         # experiments trained and decoded at the same time, each with cores/train_jobs threads

help_message="Usage: $0 --train_set <set> --valid_set <set> --test_sets \"<sets>\" --train_config <yaml> [options]
Options (defaults in brackets):
  --stage / --stop_stage N     first / last stage to run, 0-8 (stage <= stop_stage) [$stage / $stop_stage]
  --nj N                       parallel feature-extraction jobs [$nj]
  --ngpu N                     0 = CPU; N = N GPUs per node, data-parallel with torchrun [$ngpu]
  --nproc_per_node N           CPU training processes, data-parallel over gloo (with --ngpu 0) [$nproc_per_node]
  --num_nodes M                nodes per training job (a Slurm cluster, see cmd.sh) [$num_nodes]
  --dumpdir DIR, --expdir DIR  features / experiments [$dumpdir, $expdir]
  --download_opts \"...\"        passed to local/download.sh
  --local_data_opts \"...\"      passed to local/data.sh
  --train_set, --valid_set, --test_sets, --unlabeled_set
  --speed_perturb_factors \"0.9 1.0 1.1\"   distinct positive numbers [none]
  --feats_type fbank|raw       what stage 3 dumps: fbank features or waveforms for wav2vec2 [$feats_type]
  --fs N, --num_mel_bins N     sampling rate (Hz) and mel bins of the features [$fs, $num_mel_bins]
  --feats_compress true|false  features as Kaldi compressed matrices [$feats_compress]
  --token_type char|unigram|bpe [$token_type], --nbpe N (vocabulary size for unigram/bpe) [$nbpe]
  --token_listdir DIR          token lists go to DIR/<type> [$token_listdir]
  --lm_order N                 word n-gram order of the lang directory (lexicon + LMs, stage 4) [$lm_order]
  --train_config \"<yaml> [<yaml> ...]\", --train_args \"--key value ...\", --tag <name>
  --seeds \"0 1 2\"              one experiment per seed (distinct integers >= 0), compared as mean +- std
  --comparison PREFIX          where the comparison of several experiments goes [$expdir/comparison]
  --compare_reference NAME     in the comparison, the others' WER/CER differences to experiment NAME (its
                               config's name, or its tag without _seed<N>): paired bootstrap CI and p, paired
                               t-test over seeds; \"NAME?\": only when NAME is one of the experiments [none]
  --decode_config \"<yaml> [<yaml> ...]\", --decode_args \"--key value ...\"
  --train_jobs N               experiments run N at a time (stages 5-8; log: exp/asr_<tag>/asr.log) [$train_jobs]
  --config FILE                read options from FILE (shell assignments, e.g. nj=8); the command line wins"

# Every option is checked before any work starts: one line naming it on stderr, exit status 1.
. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
check_opt int:0:8 --stage "$stage"
check_opt uint --stop_stage "$stop_stage"
[ "$stop_stage" -ge "$stage" ] || opt_error "--stop_stage must be >= --stage ($stage), got '$stop_stage'"
check_opts posint nj nproc_per_node num_nodes train_jobs fs num_mel_bins nbpe lm_order
check_opts uint ngpu
check_opts nonempty dumpdir expdir token_listdir
check_opt "one_of:fbank|raw" --feats_type "$feats_type"
check_opt bool --feats_compress "$feats_compress"
check_opt "one_of:char|unigram|bpe" --token_type "$token_type"
check_opt list:posnum --speed_perturb_factors "$speed_perturb_factors"
check_opt list:uint --seeds "$seeds"
speed_perturb_factors=${speed_perturb_factors//,/ } seeds=${seeds//,/ }  # commas are accepted too
[ -n "$train_set" ] || opt_error "--train_set is required"
[ -n "$valid_set" ] || opt_error "--valid_set is required"
[ -n "$train_config" ] || opt_error "--train_config is required"
for config in $train_config; do [ -f "$config" ] || opt_error "--train_config $config: no such file"; done
for config in $decode_config; do [ -f "$config" ] || opt_error "--decode_config $config: no such file"; done
[ -n "$comparison" ] || comparison="$expdir/comparison"

. ./path.sh
. ./cmd.sh
if [ "$cmd_backend" = slurm ]; then  # cmd.sh's settings, from the environment
    check_opt uint "slurm_gpus (cmd.sh)" "$slurm_gpus"
    check_opt slurm_mem "slurm_gpu_mem (cmd.sh)" "$slurm_gpu_mem"
    check_opt slurm_time "slurm_time (cmd.sh)" "$slurm_time"
elif [ "$num_nodes" -gt 1 ]; then
    opt_error "--num_nodes must be 1 unless cmd_backend=slurm (see cmd.sh), got '$num_nodes'"
fi
procs_per_node=$nproc_per_node
[ "$ngpu" -eq 0 ] || procs_per_node=$ngpu
dec_cmd=$decode_cmd dec_gpu=0  # decoding uses one GPU, when there are any
[ "$ngpu" -eq 0 ] || { dec_cmd="$cuda_cmd --gpu 1 --num-nodes 1"; dec_gpu=1; }

# What an experiment was trained on, in its name (as ESPnet's): train set (+ _sp), features, tokens.
data_tag="${train_set}${speed_perturb_factors:+_sp}_${feats_type}_${token_type}"
[ "$token_type" = char ] || data_tag+=$nbpe
experiment_tag() {  # <train_config> <seed or empty>
    local t=$tag
    if [ -z "$t" ]; then
        t=$(basename "$1" .yaml)_$data_tag
        # Different overrides must not share (and clobber) one experiment folder.
        [ -z "$train_args" ] || t+=$(echo "$train_args" | sed -e 's/--/_/g' -e 's/[ =/|]//g')
    fi
    echo "$t${2:+_seed$2}"
}
# --compare_reference: one of the experiments, by its tag or its config's name (checked before any
# work); "NAME?" is dropped when it is none of them.
compare_ref=${compare_reference%"?"}
if [ -n "$compare_ref" ]; then
    compare_tags=() found=""
    for config in $train_config; do
        compare_tags+=("$(experiment_tag "$config" "")")
        [ "$compare_ref" != "$(basename "$config" .yaml)" ] && [ "$compare_ref" != "${compare_tags[-1]}" ] \
            || found=${compare_tags[-1]}
    done
    [ -n "$found" ] || [ "$compare_ref" != "$compare_reference" ] \
        || opt_error "--compare_reference must be one of the experiments' config names or tags (${compare_tags[*]}), got '$compare_reference'"
    compare_ref=$found
fi
if [ "$token_type" = char ]; then token_dir=$token_listdir/char; else token_dir=$token_listdir/${token_type}${nbpe}; fi
lang_dir=$(dirname "$token_listdir")/lang/$(basename "$token_dir")  # data/lang/char: lexicon and n-gram LMs
feats_dir="$dumpdir/$feats_type"
cmvn_opts=()  # global CMVN for fbank; an encoder that reads raw audio normalises it itself
[ "$feats_type" = raw ] || cmvn_opts=(--cmvn "$feats_dir/$train_set/cmvn.ark")

# ---------------------------------------------------------------------------------------
if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    if [ -f local/download.sh ]; then
        # The script itself skips what is already downloaded (or found through db.sh).
        log "Stage 0: download: local/download.sh $download_opts"
        # shellcheck disable=SC2086
        local/download.sh $download_opts
    else
        log "Stage 0: download: this recipe has no local/download.sh (nothing to download), skipping"
    fi
fi

# ---------------------------------------------------------------------------------------
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    # The marker holds the options it was made with: other --local_data_opts prepare again.
    if [ -f data/.done_stage1 ] && [ "$(cat data/.done_stage1)" = "$local_data_opts" ]; then
        log "Stage 1 (data preparation): already done with these options (data/.done_stage1), skipping"
    else
        log "Stage 1: data preparation: local/data.sh $local_data_opts"
        # shellcheck disable=SC2086
        local/data.sh $local_data_opts
        for dset in "$train_set" "$valid_set" $test_sets; do
            utils/validate_data_dir.sh "data/$dset"
        done
        [ -z "$unlabeled_set" ] || utils/validate_data_dir.sh --no-text "data/$unlabeled_set"
        echo "$local_data_opts" > data/.done_stage1
    fi
fi

# ---------------------------------------------------------------------------------------
labeled_text_set=$train_set  # tokens and LMs: each transcript once, not once per speed
if [ -n "$speed_perturb_factors" ]; then
    if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
        if ! skip_if_done "data/${train_set}_sp/.done" "Stage 2 (speed perturbation)"; then
            log "Stage 2: speed perturbation of $train_set by factors $speed_perturb_factors"
            python -m bljust.bin.speed_perturb --factors "$speed_perturb_factors" \
                "data/$train_set" "data/${train_set}_sp" "$dumpdir/sp_audio/$train_set"
            utils/validate_data_dir.sh "data/${train_set}_sp"
            touch "data/${train_set}_sp/.done"
        fi
    fi
    train_set="${train_set}_sp"
fi

# ---------------------------------------------------------------------------------------
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    for dset in "$train_set" "$valid_set" $test_sets $unlabeled_set; do
        out="$feats_dir/$dset"
        skip_if_done "$out/.done" "Stage 3 (features for $dset)" && continue
        log "Stage 3: $feats_type features for data/$dset with $nj jobs -> $out"
        n_utts=$(wc -l < "data/$dset/utt2spk")
        this_nj=$(( nj < n_utts ? nj : n_utts ))
        utils/split_data.sh --per-utt "data/$dset" "$this_nj"
        rm -rf "$out"; mkdir -p "$out/log"
        ${train_cmd} JOB=1:"$this_nj" "$out/log/fbank.JOB.log" \
            python -m bljust.bin.compute_fbank --feats_type "$feats_type" --fs "$fs" --num_mel_bins "$num_mel_bins" --compress "$feats_compress" \
                "data/$dset/split${this_nj}utt/JOB" "$out/feats.JOB"
        for f in scp utt2num_frames skipped; do
            cat "$out"/feats.*."$f" | sort > "$out/${f/scp/feats.scp}"
            rm -f "$out"/feats.*."$f"
        done
        # The front end's settings (the same in every job), which the model package carries (docs/inference.md).
        mv "$out/feats.1.frontend.yaml" "$out/frontend.yaml"; rm -f "$out"/feats.*.frontend.yaml
        for f in wav.scp text utt2spk spk2utt segments utt2dur; do
            [ ! -f "data/$dset/$f" ] || cp "data/$dset/$f" "$out/$f"
        done
        # Kaldi's frame_shift file: seconds per row, so budgets and hours count audio for any front end.
        [ "$feats_type" = fbank ] || awk -v fs="$fs" 'BEGIN { printf "%.10g\n", 1 / fs }' > "$out/frame_shift"
        n_skipped=$(wc -l < "$out/skipped")
        [ "$n_skipped" -eq 0 ] || log "Stage 3: $n_skipped utterances of $dset too short for features (listed in $out/skipped) are dropped"
        utils/fix_data_dir.sh "$out" >/dev/null
        if [ "$dset" = "$unlabeled_set" ]; then
            utils/validate_data_dir.sh --no-text --need-feats "$out"
        else
            utils/validate_data_dir.sh --need-feats "$out"
        fi
        touch "$out/.done"
    done
    if [ "$feats_type" = fbank ] && ! skip_if_done "$feats_dir/$train_set/cmvn.ark" "Stage 3 (CMVN statistics)"; then
        python -m bljust.bin.compute_cmvn_stats "$feats_dir/$train_set/feats.scp" "$feats_dir/$train_set/cmvn.ark"
    fi
fi

# ---------------------------------------------------------------------------------------
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    if ! skip_if_done "$token_dir/.done" "Stage 4 (token list)"; then
        log "Stage 4: $token_type token list from data/$labeled_text_set/text -> $token_dir"
        python -m bljust.bin.make_tokens --token_type "$token_type" --vocab_size "$nbpe" \
            "data/$labeled_text_set/text" "$token_dir"
        touch "$token_dir/.done"
    fi
    if ! skip_if_done "$lang_dir/.done" "Stage 4 (lexicon and n-gram LMs)"; then
        log "Stage 4: lexicon and n-gram LMs from data/$labeled_text_set/text (labeled transcripts only) -> $lang_dir"
        python -m bljust.bin.make_lang --text "data/$labeled_text_set/text" --token_dir "$token_dir" \
            --out_dir "$lang_dir" --word_order "$lm_order"
        touch "$lang_dir/.done"
    fi
fi

# ---------------------------------------------------------------------------------------
# Stages 5-8 run once per experiment: each training config, and each seed of --seeds.
# A decoding is named after its config and overrides, so changing either decodes anew.
decode_names=()
for config in ${decode_config:-default}; do
    decode_names+=("$(basename "$config" .yaml)$(echo "$decode_args" | sed -e 's/--/_/g' -e 's/[ =/|]//g')")
done
decode_configs=(${decode_config:-""})

# decode_key <experiment> <decode config or empty>: what a decoding's hypotheses depend on (the
# config's content, --decode_args, the model files); a decode folder keyed otherwise is redone.
decode_key() {
    { [ -z "$2" ] || cat "$2"; echo "decode_args: $decode_args"
      stat -c '%n %s %Y' "$1"/model_best.pt "$1"/model_last.pt 2>/dev/null || true; } | cksum | cut -d' ' -f1
}

run_experiment() {  # <train_config> <seed or empty> <experiment folder>
    local config=$1 seed=$2 exp=$3 args=$train_args dset out
    [ -z "$seed" ] || args+=" --seed $seed"

    if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
        log "Stage 5: training $exp (config $config${args:+, overrides:$args})"
        mkdir -p "$exp"
        # The experiment folder's run.sh replays the command that produced it.
        { echo "#!/usr/bin/env bash"; echo "# Replays the command that produced this experiment."
          printf 'cd %q && %s\n' "$(pwd)" "$(printf '%q ' "$0" "${asr_args[@]}")"; } > "$exp/run.sh"
        chmod +x "$exp/run.sh"
        # Through cmd.sh's cuda_cmd: here, or as one job of num_nodes nodes on a cluster. Its log
        # has everything the processes print; $exp/train.log has the trainer's own log.
        # shellcheck disable=SC2086
        ${cuda_cmd} --gpu "$ngpu" --num-nodes "$num_nodes" "$exp/log/train.log" \
            utils/torchrun.sh --nproc_per_node "$procs_per_node" --nnodes "$num_nodes" \
            -m bljust.bin.train --config "$config" --resume --ngpu "$ngpu" \
            --train_dir "$feats_dir/$train_set" --valid_dir "$feats_dir/$valid_set" \
            ${unlabeled_set:+--unlabeled_dir "$feats_dir/$unlabeled_set"} \
            --token_dir "$token_dir" ${cmvn_opts[@]+"${cmvn_opts[@]}"} --exp_dir "$exp" $args \
            || { grep -v '^#' "$exp/log/train.log" | tail -n 5 >&2; die "training $exp failed (log: $exp/log/train.log)"; }
    fi

    if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
        for i in "${!decode_names[@]}"; do
            for dset in $test_sets; do
                out="$exp/decode_${dset}_${decode_names[$i]}"
                key=$(decode_key "$exp" "${decode_configs[$i]}")
                if [ "$(cat "$out/.done" 2>/dev/null)" = "$key" ]; then
                    log "Stage 6 (decoding $dset with $exp): already done for this model and config, skipping"
                    continue
                fi
                [ ! -f "$out/.done" ] || log "Stage 6: the model or the decode config changed since $out was decoded: decoding again"
                rm -f "$out/.done" "$out/.done_scoring"
                log "Stage 6: decoding $dset -> $out"
                # shellcheck disable=SC2086
                ${dec_cmd} "$out/log/decode.log" \
                    python -m bljust.bin.decode ${decode_configs[$i]:+--config "${decode_configs[$i]}"} --ngpu "$dec_gpu" \
                        --exp_dir "$exp" --data_dir "$feats_dir/$dset" --token_dir "$token_dir" \
                        ${cmvn_opts[@]+"${cmvn_opts[@]}"} --out_dir "$out" $decode_args
                grep -h "real-time factor" "$out/log/decode.log" | sed 's/^/    /' >&2 || true
                echo "$key" > "$out/.done"
            done
        done
    fi

    if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
        for name in "${decode_names[@]}"; do
            for dset in $test_sets; do
                out="$exp/decode_${dset}_${name}"
                skip_if_done "$out/.done_scoring" "Stage 7 (scoring $dset with $exp)" && continue
                log "Stage 7: scoring $out"
                python -m bljust.bin.score "$feats_dir/$dset/text" "$out/text" "$out"
                touch "$out/.done_scoring"
            done
        done
        python -m bljust.bin.make_results "$exp"
    fi

    if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
        local packing=()  # one process per decode config, side by side: each spends most of its time starting up
        for i in "${!decode_names[@]}"; do
            out="$exp/packed/${decode_names[$i]}.pt"
            key=$(decode_key "$exp" "${decode_configs[$i]}")
            if [ "$(cat "$out.done" 2>/dev/null)" = "$key" ]; then
                log "Stage 8 (packing $out): already done for this model and config, skipping"
                continue
            fi
            log "Stage 8: packing $exp with ${decode_configs[$i]:-the default decoding} -> $out"
            # shellcheck disable=SC2086
            { python -m bljust.bin.pack ${decode_configs[$i]:+--config "${decode_configs[$i]}"} --exp_dir "$exp" \
                --out "$out" $decode_args && echo "$key" > "$out.done"; } &
            packing+=("$!")
        done
        for pid in ${packing[@]+"${packing[@]}"}; do wait "$pid" || die "packing $exp failed (see above)"; done
    fi
}

experiments=() experiment_configs=() experiment_seeds=()
for config in $train_config; do
    for seed in ${seeds:-""}; do
        experiments+=("$expdir/asr_$(experiment_tag "$config" "$seed")")
        experiment_configs+=("$config")
        experiment_seeds+=("$seed")
    done
done
if [ "$stop_stage" -lt 5 ]; then
    :  # none of stages 5-8 to run
elif [ "$train_jobs" -eq 1 ] || [ ${#experiments[@]} -eq 1 ]; then
    for i in "${!experiments[@]}"; do
        run_experiment "${experiment_configs[$i]}" "${experiment_seeds[$i]}" "${experiments[$i]}"
    done
else
    # train_jobs experiments at a time, sharing the cores: on 2 cores, two 1-thread trainings
    # finish about 1.4x sooner than the same two one after the other with 2 threads.
    threads=$(( $(nproc) / train_jobs )); [ "$threads" -ge 1 ] || threads=1
    log "Stages 5-8: ${#experiments[@]} experiments, $train_jobs at a time, $threads thread(s) each"
    declare -A log_start  # each asr.log is appended to: this run's part starts at this line
    for i in "${!experiments[@]}"; do
        exp=${experiments[$i]}
        while [ "$(jobs -rp | wc -l)" -ge "$train_jobs" ]; do sleep 1; done
        mkdir -p "$exp"; rm -f "$exp/.asr_ok"
        lines=0; [ ! -f "$exp/asr.log" ] || lines=$(wc -l < "$exp/asr.log")
        log_start[$exp]=$(( lines + 1 ))
        log "Stages 5-8 for $exp started (log: $exp/asr.log)"
        # set -e ends the job at its first failure, before it writes .asr_ok.
        ( export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
          echo "# $(date '+%Y-%m-%d %H:%M:%S') asr.sh stages $stage-$stop_stage"
          run_experiment "${experiment_configs[$i]}" "${experiment_seeds[$i]}" "$exp"
          touch "$exp/.asr_ok" ) >> "$exp/asr.log" 2>&1 &
    done
    wait
    failed=0
    for exp in "${experiments[@]}"; do
        if [ -f "$exp/.asr_ok" ]; then
            tail -n "+${log_start[$exp]}" "$exp/asr.log" | grep -h -e "^score:" -e "real-time factor" >&2 || true
        else
            log "ERROR: $exp failed; the end of $exp/asr.log:"; tail -n 5 "$exp/asr.log" >&2; failed=1
        fi
    done
    [ "$failed" -eq 0 ] || die "some experiments failed (see above)"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ] && [ ${#experiments[@]} -gt 1 ]; then
    for dset in $test_sets; do
        log "Comparison on $dset -> ${comparison}_$dset.md, ${comparison}_$dset.png${compare_ref:+ (against $compare_ref)}"
        python -m bljust.bin.compare --test_set "$dset" --decode "${decode_names[@]}" --examples 3 --out "${comparison}_$dset.md" \
            --plot "${comparison}_$dset.png" ${compare_ref:+--reference "$compare_ref" --ref_text "$feats_dir/$dset/text"} \
            "${experiments[@]}"
    done
fi
log "Done (stages $stage to $stop_stage)."
