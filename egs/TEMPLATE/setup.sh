#!/usr/bin/env bash
# Make the skeleton of a recipe for a new corpus (as ESPnet's egs2/TEMPLATE/asr1/setup.sh does):
#
#   egs/TEMPLATE/setup.sh egs/<name>
#
# writes egs/<name>/ with
#   run.sh           ./asr.sh with the set names and configs (lines marked EDIT), "$@" passed on
#   db.sh            where the corpus is (one variable, <NAME>=)
#   local/data.sh    stage 1: a stub that says what it must write and fails until it is written
#   conf/            training configs (CNN-LSTM and Conformer; supervised, PT+FT, BL-JUST) and
#                    decoding configs (greedy, beam), from egs/TEMPLATE/skeleton/conf
#   asr.sh path.sh cmd.sh -> ../TEMPLATE/...,  utils -> ../../utils
# The folder must not exist yet, and must sit next to egs/TEMPLATE (the links are relative).
# Walk-through: docs/new_corpus.md.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
usage="Usage: $0 egs/<name>   (a new recipe folder next to egs/TEMPLATE; <name>: letters, digits, '_', '-', '.')"

case "${1:-}" in
    -h|--help) echo "$usage"; exit 0 ;;
esac
[ $# -eq 1 ] || die "expected one argument, the new recipe folder (e.g. egs/mycorpus), got $#"
[ -n "$1" ] || die "the recipe folder must not be empty (e.g. egs/mycorpus)"

template_dir=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd -P)
skeleton=$template_dir/skeleton
[ -d "$skeleton" ] || die "$skeleton is missing (a broken checkout?)"

target=${1%/}
name=${target##*/}
parent=$(dirname "$target")
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] \
    || die "the recipe name must start with a letter or digit and hold only letters, digits, '_', '-', '.', got '$name'"
[ "$name" != TEMPLATE ] || die "TEMPLATE is the shared pipeline's folder; choose another name"
if [ -e "$target" ] || [ -L "$target" ]; then
    die "$target already exists; choose another name or remove it first"
fi
[ -d "$parent" ] || die "$parent is not a folder; the recipe goes next to egs/TEMPLATE (e.g. egs/$name)"
# asr.sh, path.sh and cmd.sh link to ../TEMPLATE, utils to ../../utils: the parent must be egs/.
if [ ! -d "$parent/TEMPLATE" ] || [ "$(cd "$parent/TEMPLATE" && pwd -P)" != "$template_dir" ] \
        || [ ! -d "$parent/../utils" ]; then
    die "$target must be a folder next to egs/TEMPLATE (e.g. egs/$name): its asr.sh, path.sh, cmd.sh and utils are relative links"
fi

# db.sh's variable: the name in capitals, other characters as '_' (mycorpus -> MYCORPUS).
dbvar=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9_' '_')
[[ $dbvar =~ ^[A-Z_] ]] || dbvar=CORPUS_$dbvar

# Built in a hidden folder beside the target, then renamed: an interrupted setup leaves no half recipe.
work=$(mktemp -d "$parent/.$name.setup.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$skeleton/." "$work/"
for f in run.sh db.sh local/data.sh; do
    sed -e "s/@NAME@/$name/g" -e "s/@DBVAR@/$dbvar/g" "$skeleton/$f" > "$work/$f"
done
chmod 755 "$work" "$work/run.sh" "$work/local/data.sh"
ln -s ../TEMPLATE/asr.sh "$work/asr.sh"
ln -s ../TEMPLATE/path.sh "$work/path.sh"
ln -s ../TEMPLATE/cmd.sh "$work/cmd.sh"
ln -s ../../utils "$work/utils"
mv -T "$work" "$target" 2>/dev/null || die "$target already exists; choose another name or remove it first"
trap - EXIT

cat <<EOF
Created $target (recipe $name). Edit, in this order:
  1. $target/db.sh          $dbvar=  where the corpus (or its Kaldi data directories) is
  2. $target/local/data.sh  stage 1: write data/<set>/{wav.scp,text,utt2spk,spk2utt} for every set
                            (it stops with an error until you replace its stub)
  3. $target/run.sh         the lines marked EDIT: set names, token type, GPUs, configs
  4. $target/conf/*.yaml    model size, epochs and steps for your amount of data
Then:
  cd $target
  ./run.sh --stage 1 --stop_stage 1   # data preparation and its validation
  ./run.sh --stage 2                  # features, tokens, training, decoding, scoring
Walk-through: docs/new_corpus.md
EOF
