# Where the corpus comes from; sourced by local/download.sh and local/data.sh.
#
# TEDLIUM2      a folder that already holds TEDLIUM_release2/ (the unpacked openslr archive,
#               e.g. a shared copy). Set it and stage 0 downloads nothing: that copy is used
#               as it is. Empty: stage 0 downloads and unpacks TEDLIUM_release2.tar.gz into
#               downloads/ (downloads/TEDLIUM_release2).
# TEDLIUM2_URL  where TEDLIUM_release2.tar.gz is fetched from: openslr SLR19 or a mirror
#               (https://us.openslr.org/resources/19, https://openslr.elda.org/resources/19, ...).
TEDLIUM2=
TEDLIUM2_URL=https://www.openslr.org/resources/19
