#!/usr/bin/env bash
# CoVoST 2 as speech recognition in each source language, as in the Wav2Vec2-JUST study (Dutch,
# Mongolian, Arabic: 2-3 h of labeled speech each). For a language <l>:
#   data/train_<l>             CoVoST 2 train (labeled)       data/dev_<l>, data/test_<l>: CoVoST dev, test
#   data/train_unlabeled_<l>   Common Voice 4 clips outside CoVoST dev/test (their transcripts unused)
#   data/token_list/<l>/       its own token list             exp/<l>/asr_<config>/: its experiments
# By default one asr.sh run per language, so each language gets its own models; --multilingual true
# trains one model on all --langs together (train_<l1>_<l2>..., exp/<l1>_<l2>.../) and scores it on
# each language's test set. Common Voice 4 is a manual download: set COMMONVOICE in db.sh (stage 0
# stops and says what to get while it is missing); stage 0 downloads the CoVoST 2 tsv files.
#   ./run.sh                                             download, prepare, train, decode, score
#   ./run.sh --langs nl --stage 5 --train_config conf/train_supervised.yaml
#   ./run.sh --langs "nl ar" --multilingual true --token_type bpe --nbpe 300
# Every other option goes to asr.sh; stage 1 runs again when --langs changes.
set -euo pipefail

langs="nl mn ar"
multilingual=false

. utils/check_options.sh
. local/langs.sh
asr_opts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --langs|--multilingual)
            opt_need_value "$@"
            printf -v "${1#--}" '%s' "$2"; shift 2 ;;
        -h|--help)
            echo "Options of $0: --langs \"nl mn ar\" (CoVoST 2 source languages, Common Voice codes) [$langs],"
            echo "  --multilingual true|false (one model for all --langs) [$multilingual]; the others are asr.sh's:"
            exec ./asr.sh --help ;;
        *) asr_opts+=("$1"); shift ;;
    esac
done
check_opt bool --multilingual "$multilingual"
check_opt "list:one_of:$covost2_langs" --langs "$langs"
[ -n "${langs//[ ,]/}" ] || opt_error "--langs must name at least one language, got '$langs'"
langs=$(echo ${langs//,/ })  # one space between languages
# local/*.sh options pass through asr.sh unquoted, so the list travels comma-separated.
local_opts="--langs ${langs// /,}"

run_asr() {  # <name> <test sets>: one asr.sh run on the sets of <name>, a language or several joined by _
    ./asr.sh \
        --download_opts "$local_opts" \
        --local_data_opts "$local_opts" \
        --train_set "train_$1" \
        --valid_set "dev_$1" \
        --test_sets "$2" \
        --unlabeled_set "train_unlabeled_$1" \
        --token_listdir "data/token_list/$1" \
        --expdir "exp/$1" \
        --token_type char \
        --feats_compress true \
        --train_config "conf/train_pt_ft.yaml conf/train_bljust.yaml" \
        --decode_config conf/decode_greedy.yaml \
        "${asr_opts[@]}"
}

if [ "$multilingual" = true ]; then
    test_sets=""
    for lang in $langs; do test_sets+=" test_$lang"; done
    run_asr "${langs// /_}" "${test_sets# }"
else
    for lang in $langs; do
        run_asr "$lang" "test_$lang"
    done
fi
