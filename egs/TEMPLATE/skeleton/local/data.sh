#!/usr/bin/env bash
# Stage 1 of egs/@NAME@: Kaldi data directories from the corpus on disk (@DBVAR@ in db.sh).
# Run by ./asr.sh from egs/@NAME@/ (./run.sh --stage 1 --stop_stage 1 runs only this stage).
#
# THIS IS A STUB: it stops with an error until you replace the part marked EDIT below.
#
# It must write, for every set run.sh names (by default data/train, data/dev, data/test and
# data/train_unlabeled), a Kaldi data directory data/<set>/ holding
#   wav.scp   <recording-id> <audio file>     (wav, flac, sph, mp3: anything soundfile reads,
#             or a Kaldi pipe "<recording-id> sox in.flac -t wav - |"; 16 kHz or more)
#   text      <utterance-id> <transcript>      (not for the unlabeled set: it has no text)
#   utt2spk   <utterance-id> <speaker-id>
#   spk2utt   <speaker-id> <utterance-id> ...  (utils/utt2spk_to_spk2utt.sh data/<set>/utt2spk > data/<set>/spk2utt)
#   segments  <utterance-id> <recording-id> <start s> <end s>   (optional: several utterances per recording;
#             without it every recording is one utterance and utterance-id = recording-id)
# Rules (utils/validate_data_dir.sh checks them after this script, and stage 1 fails on the first
# problem, naming file and line):
#   - every file sorted in C-locale byte order (path.sh sets LC_ALL=C, so plain `sort` does it);
#   - the speaker id is a prefix of the utterance id (spk1-utt0001), so both sort alike; without
#     speaker information use the utterance id as its own speaker;
#   - every file covers the same utterances (utils/fix_data_dir.sh drops the ones that are not in all);
#   - transcripts as they should be scored: normalise case and punctuation here.
# The unlabeled set may be the labeled audio itself (its data directory without text) or other audio.
set -euo pipefail

data_dir=data

help_message="Usage: $0 [options]
Options (defaults in brackets):
  --data_dir DIR   where the data directories go [$data_dir]"

. utils/parse_options.sh
[ $# -eq 0 ] || opt_error "unexpected arguments: $*"
. ./path.sh
. ./db.sh

# ---- EDIT: replace the two lines of this stub with the preparation of your corpus (Example A, B) ----
echo "local/data.sh: egs/@NAME@/local/data.sh is still the stub of egs/TEMPLATE/setup.sh: write it (see its comments and docs/new_corpus.md) so that it creates data/<set>/{wav.scp,text,utt2spk,spk2utt}" >&2
exit 1
# ------------------------------------------------------------------------------------------------

# Example A: the corpus already comes as Kaldi data directories, @DBVAR@/<set>/ (db.sh):
#
# [ -n "$@DBVAR@" ] || { echo "local/data.sh: set @DBVAR@ in db.sh to the folder of the Kaldi data directories" >&2; exit 1; }
# for set in train dev test; do
#     mkdir -p "$data_dir/$set"
#     for f in wav.scp text utt2spk spk2utt segments; do
#         [ ! -f "$@DBVAR@/$set/$f" ] || sort "$@DBVAR@/$set/$f" > "$data_dir/$set/$f"
#     done
#     utils/fix_data_dir.sh "$data_dir/$set"
# done
# # The training audio once more, without transcripts, as the unlabeled set:
# mkdir -p "$data_dir/train_unlabeled"
# for f in wav.scp utt2spk spk2utt segments; do
#     [ ! -f "$data_dir/train/$f" ] || cp "$data_dir/train/$f" "$data_dir/train_unlabeled/$f"
# done
#
# Example B: one audio file per utterance, <set>/<speaker>/<utterance>.flac, and one transcript
# file per set with "<speaker>-<utterance> <words>" lines (a sketch; adapt it to your layout):
#
# for set in train dev test; do
#     d=$data_dir/$set; mkdir -p "$d"
#     find "$@DBVAR@/$set" -name '*.flac' \
#         | awk -F/ '{ utt = $(NF-1) "-" $NF; sub(/\.flac$/, "", utt); print utt, $0 }' | sort > "$d/wav.scp"
#     awk '{ spk = $1; sub(/-[^-]*$/, "", spk); print $1, spk }' "$d/wav.scp" > "$d/utt2spk"
#     sort "$@DBVAR@/$set/transcripts.txt" > "$d/text"
#     utils/utt2spk_to_spk2utt.sh "$d/utt2spk" > "$d/spk2utt"
#     utils/fix_data_dir.sh "$d"
# done
