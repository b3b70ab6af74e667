#!/usr/bin/env bash
# Stage 1 of egs/tedlium2: Kaldi data directories from the corpus on disk (TEDLIUM2 in
# db.sh, else what stage 0 unpacked into downloads/):
#   data/train            labeled training data (all of train, or --labeled_hours of it)
#   data/train_unlabeled  without text: all train audio, or the talks not in data/train
#   data/dev data/test
# wav.scp holds one .sph per talk, segments cut it into the stm's segments; speaker = talk;
# utterance id <talk>-<start cs>-<end cs>. Transcripts as TED-LIUM's Kaldi recipe maps them
# ({NOISE} -> [NOISE], "the(2)" -> "the", <sil> dropped, "it 's" -> "it's"), <unk> kept,
# ignore_time_segment_in_scoring segments dropped. Run from egs/tedlium2/.
set -euo pipefail

labeled_hours=""  # empty: all of train is labeled, and all of it is also the unlabeled set
seed=0            # order in which whole talks are drawn for --labeled_hours
data_dir=data

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --labeled_hours H   label only about H hours of train (whole talks, drawn at random with
                      --seed); the other talks become train_unlabeled [all of train labeled,
                      and train_unlabeled = all train audio]
  --seed N            [$seed]
  --data_dir DIR      [$data_dir]"

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
check_opt "posnum?" --labeled_hours "$labeled_hours"
check_opts uint seed
. ./path.sh
. ./db.sh

python -m bljust.bin.prepare_corpus tedlium2 --corpus_dir "${TEDLIUM2:-downloads}" --data_dir "$data_dir" \
    --seed "$seed" ${labeled_hours:+--labeled_hours "$labeled_hours"}
