"""bljust: bilevel joint unsupervised and supervised training for ASR.

``bljust.Speech2Text.from_package(path)`` turns audio into text with a trained model
(``bljust/decode/speech2text.py``); it is imported on first use, so ``import bljust`` stays light.
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Speech2Text":
        from bljust.decode.speech2text import Speech2Text

        return Speech2Text
    raise AttributeError(f"module 'bljust' has no attribute {name!r}")
