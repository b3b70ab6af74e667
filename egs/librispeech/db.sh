# Where the corpus comes from; sourced by local/download.sh and local/data.sh.
#
# LIBRISPEECH      a folder that already holds LibriSpeech/<part>/... (a shared copy, the
#                  unpacked openslr archives). Set it and stage 0 downloads nothing: that
#                  copy is used as it is. Empty: stage 0 downloads and unpacks the parts
#                  into downloads/ (downloads/LibriSpeech/<part>).
# LIBRISPEECH_URL  where the archives <part>.tar.gz are fetched from: openslr SLR12, or one
#                  of its mirrors (https://us.openslr.org/resources/12,
#                  https://openslr.elda.org/resources/12, ...). Their md5 sums are in
#                  local/checksums.txt.
LIBRISPEECH=
LIBRISPEECH_URL=https://www.openslr.org/resources/12
