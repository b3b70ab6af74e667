# Where the @NAME@ corpus is; sourced by local/data.sh (and local/download.sh, if you add one for
# stage 0). EDIT: the absolute path of the corpus on disk, or of a folder that already holds
# its Kaldi data directories (<set>/wav.scp, text, utt2spk, ...; docs/new_corpus.md).
@DBVAR@=
