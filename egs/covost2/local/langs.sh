# The source languages of CoVoST 2 X -> En, as Common Voice codes. Sourced by run.sh,
# local/download.sh and local/data.sh, which check --langs against it (utils/check_options.sh).
covost2_langs="ar|ca|cy|de|es|et|fa|fr|id|it|ja|lv|mn|nl|pt|ru|sl|sv-SE|ta|tr|zh-CN"
