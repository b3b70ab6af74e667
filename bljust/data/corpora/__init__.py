"""Data preparation of real corpora: their on-disk layout -> Kaldi data directories.

One module per corpus, called by each recipe's ``local/data.sh`` through a ``bljust.bin``
command (``prepare_corpus librispeech|tedlium2``).
"""


class CorpusError(ValueError):
    """The corpus on disk is not what its layout promises; the message names the file (and line)."""
