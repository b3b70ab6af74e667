#!/usr/bin/env bash
# Stage 1 of egs/mini: generate the synthetic corpus (espeak-ng voices, offline, CPU only).
#
# Writes audio to $audio_dir/<split>/ and Kaldi data directories $data_dir/<split>/ for
# train_labeled, train_unlabeled (no text: its transcripts are only in
# $data_dir/local/train_unlabeled.text, for analysis), dev and test. Every split has its
# own voices; dev and test voices never occur in training. Rerunning with the same
# options does nothing. Run from egs/mini/.
set -euo pipefail

seed=0
num_train_labeled=1500
num_train_unlabeled=2400
num_dev=150
num_test=200
voices_labeled=8
voices_unlabeled=40
voices_dev=3
voices_test=4
snr_min=15
snr_max=30
num_workers=""     # processes rendering audio; empty: automatic (the output does not depend on it)
audio_dir=downloads/audio
data_dir=data

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --seed N                         [$seed]
  --num_train_labeled N            utterances [$num_train_labeled]
  --num_train_unlabeled N          utterances [$num_train_unlabeled]
  --num_dev N / --num_test N       utterances [$num_dev / $num_test]
  --voices_labeled N               voices in train_labeled [$voices_labeled]
  --voices_unlabeled N             voices in train_unlabeled [$voices_unlabeled]
  --voices_dev N / --voices_test N [$voices_dev / $voices_test]
  --snr_min dB / --snr_max dB      noise level range, min <= max [$snr_min / $snr_max]
  --num_workers N                  [automatic]
  --audio_dir DIR / --data_dir DIR [$audio_dir / $data_dir]"

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
check_opts uint seed
check_opts posint num_train_labeled num_train_unlabeled num_dev num_test \
    voices_labeled voices_unlabeled voices_dev voices_test
check_opts number snr_min snr_max
awk -v a="$snr_min" -v b="$snr_max" 'BEGIN { exit !(a + 0 <= b + 0) }' \
    || opt_error "--snr_max must be >= --snr_min ($snr_min), got '$snr_max'"
check_opt "posint?" --num_workers "$num_workers"
. ./path.sh

python -m bljust.bin.make_synthetic_corpus \
    --audio_dir "$audio_dir" --data_dir "$data_dir" --seed "$seed" \
    --num_train_labeled "$num_train_labeled" --num_train_unlabeled "$num_train_unlabeled" \
    --num_dev "$num_dev" --num_test "$num_test" \
    --voices_labeled "$voices_labeled" --voices_unlabeled "$voices_unlabeled" \
    --voices_dev "$voices_dev" --voices_test "$voices_test" \
    --snr_min "$snr_min" --snr_max "$snr_max" \
    ${num_workers:+--num_workers "$num_workers"}
