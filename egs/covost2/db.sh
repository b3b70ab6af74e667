# Where the covost2 recipe finds its corpora; sourced by local/download.sh and local/data.sh.
#
# COMMONVOICE      a folder holding Common Voice Corpus 4 (cv-corpus-4-2019-12-10), the release
#                  CoVoST 2 was built from, as <lang>/validated.tsv and <lang>/clips/*.mp3 for
#                  every language of --langs. Its licence needs a manual download from
#                  https://commonvoice.mozilla.org/datasets ("Common Voice Corpus 4", one archive
#                  per language); stage 0 stops and says so while this is empty or incomplete.
# COVOST2_TSV_URL  where the CoVoST 2 X -> En files covost_v2.<lang>_en.tsv.tar.gz (CC0) are
#                  fetched from (stage 0, into downloads/).
# COVOST2_TSV      a folder already holding the unpacked covost_v2.<lang>_en.tsv files; set it
#                  and stage 0 downloads nothing.
COMMONVOICE=
COVOST2_TSV_URL=https://dl.fbaipublicfiles.com/covost
COVOST2_TSV=
