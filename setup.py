"""Installable package for the bljust toolkit."""
from setuptools import find_packages, setup

setup(
    name="bljust",
    version="0.1.0",
    description="Bilevel joint unsupervised and supervised training (BL-JUST) for speech recognition",
    packages=find_packages(include=["bljust", "bljust.*"]),
    python_requires=">=3.10",
    install_requires=[
        # torch and torchaudio must be the same release and CUDA build (README: Dependencies).
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "sentencepiece",
        "jiwer",
        "kaldiio",
        "pyyaml",
        "numpy",
        "tqdm",
        "soundfile",
        "espeakng-loader",
        "matplotlib",  # training-curve and strategy-comparison PNGs
        "tensorboard",  # training scalars beside the CSV logs (torch.utils.tensorboard)
        "flashlight-text",  # torchaudio's ctc_decoder (CTC beam search) needs it
    ],
    # transformers: only the tests' reference wav2vec 2.0 (built from a config, nothing downloaded);
    # import_pretrained reads Hugging Face folders without it.
    extras_require={"test": ["pytest", "transformers"]},
)
