"""Speed perturbation (Ko et al., 2015): resample so the audio plays ``factor`` times faster.

A factor of 1.1 shortens the recording by 1/1.1 and raises its pitch, as sox's
``speed`` effect does.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
import torchaudio.functional as AF


def perturb_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """samples float32 [N] -> float32 [about N / factor]."""
    if factor == 1.0:
        return samples
    # Resampling from sr*factor to sr is the same as playing factor times faster;
    # a small rational approximation keeps the polyphase filter short.
    ratio = Fraction(factor).limit_denominator(100)
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), ratio.numerator, ratio.denominator)
    return out.numpy()
