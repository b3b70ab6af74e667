"""A small ctypes wrapper around the espeak-ng speech synthesiser.

The shared library and its voice data come from the ``espeakng-loader`` package,
so nothing has to be installed system-wide.

Determinism: espeak-ng keeps wave-generator state (flutter phase, echo buffer,
gain control, random state) in C statics that carry over from one utterance to the
next, and its API has no call that resets them. To make every ``synthesize`` call a
pure function of its arguments, the library is loaded only while ``synthesize`` runs
and unloaded after it, so each utterance starts from fresh state (about 1 ms).
This needs no other code in the process to hold libespeak-ng open. Variants that add
breath noise (f2, whisper, ...) stay random even so; the corpus generator leaves them out.
"""
from __future__ import annotations

import _ctypes
import ctypes
import os
from pathlib import Path

import numpy as np

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit()
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_EE_NOT_FOUND = 2
_PARAM_RATE = 1
_PARAM_PITCH = 3
_BUFFER_MS = 1000  # audio handed to the callback per call; larger means fewer calls

RATE_MIN, RATE_MAX = 80, 450  # words per minute accepted by espeak-ng
PITCH_MIN, PITCH_MAX = 0, 99

try:
    _srand = ctypes.CDLL(None).srand
except (OSError, AttributeError):  # no C library symbols in this process: nothing to seed
    def _srand(seed: int) -> None:
        pass

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng failed or was asked for something it does not have."""


class EspeakSynthesizer:
    """Synthesise text to float32 mono audio at ``sample_rate`` (22050 Hz for espeak-ng).

    Voices are espeak names with an optional variant: ``"en-us"``, ``"en-us+m3"``.
    Not thread-safe: espeak-ng is a process-global C library.
    """

    def __init__(self, library_path: str | os.PathLike | None = None, data_path: str | os.PathLike | None = None):
        if library_path is None or data_path is None:
            import espeakng_loader

            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        self.library_path = str(library_path)
        self.data_path = Path(data_path)
        if not (self.data_path / "phontab").is_file():
            raise EspeakError(f"{self.data_path} is not an espeak-ng data folder (no 'phontab')")
        self._chunks: list[bytes] = []
        # Keep a reference to the ctypes callback: if it were garbage-collected, C would call freed memory.
        self._callback = _CALLBACK(self._on_audio)
        self._lib: ctypes.CDLL | None = None
        self.sample_rate = self._load()
        self._unload()

    def _on_audio(self, wav, num_samples: int, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        return 0  # 0 = continue synthesis

    def _load(self) -> int:
        """Load the library with fresh C state and initialise it; return its sample rate."""
        lib = ctypes.CDLL(self.library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(self.data_path).encode(),
                                     _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data folder {self.data_path}")
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        return rate

    def _unload(self) -> None:
        if self._lib is not None:
            self._lib.espeak_Terminate()
            _ctypes.dlclose(self._lib._handle)
            self._lib = None

    def variants(self) -> list[str]:
        """Names of the voice variants available after ``+`` (``m3``, ``f1``, ``klatt`` ...)."""
        return sorted(p.name for p in (self.data_path / "voices" / "!v").iterdir() if p.is_file())

    def _check_variant(self, voice: str) -> None:
        # espeak-ng silently ignores an unknown variant, so check the variant file exists.
        if "+" in voice:
            variant = voice.split("+", 1)[1]
            if not variant or not (self.data_path / "voices" / "!v" / variant).is_file():
                raise EspeakError(f"unknown espeak voice variant {variant!r} in voice {voice!r}")

    def synthesize(self, text: str, voice: str, rate: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text`` with ``voice`` at ``rate`` words/min and base ``pitch`` (0-99).

        Returns float32 samples in [-1, 1) at ``self.sample_rate``. The same arguments
        always give the same samples.
        """
        if not RATE_MIN <= rate <= RATE_MAX:
            raise ValueError(f"rate {rate} outside espeak's range {RATE_MIN}-{RATE_MAX} words/min")
        if not PITCH_MIN <= pitch <= PITCH_MAX:
            raise ValueError(f"pitch {pitch} outside {PITCH_MIN}-{PITCH_MAX}")
        self._check_variant(voice)
        self._load()  # fresh C state for every utterance, see the module docstring
        try:
            return self._synthesize(text, voice, rate, pitch)
        finally:
            self._unload()

    def _synthesize(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        lib = self._lib
        _srand(0)  # some code paths draw from the C library's rand()
        status = lib.espeak_SetVoiceByName(voice.encode())
        if status == _EE_NOT_FOUND:
            raise EspeakError(f"unknown espeak voice {voice!r}")
        if status != _EE_OK:
            raise EspeakError(f"espeak_SetVoiceByName({voice!r}) failed with status {status}")
        lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with status {status} for text {text!r}")
        samples = np.frombuffer(b"".join(self._chunks), dtype=np.int16)
        self._chunks = []
        return samples.astype(np.float32) / 32768.0
