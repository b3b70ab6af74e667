"""Pre-trained weights into a model: init files and loading them (``init``), and the wav2vec 2.0
checkpoint readers that make init files (``hf``, ``fairseq``, sharing ``convert``)."""
