"""bljust: bilevel joint unsupervised and supervised training for ASR."""
__version__ = "0.1.0"
