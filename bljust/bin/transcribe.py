"""Transcribe audio files with a trained model package, nothing else needed.

    python -m bljust.bin.transcribe exp/asr_train_bljust_train_labeled_fbank_char a.wav b.flac c.mp3
    python -m bljust.bin.transcribe exp/asr_train_bljust_train_labeled_fbank_char/model_last.pt --wav_scp data/test/wav.scp \\
        [--beam_size 10 [--lexicon data/lang/char/lexicon.txt --lm data/lang/char/lm_word.arpa]] [--ngpu 1]
    python -m bljust.bin.transcribe exp/asr_train_bljust_train_labeled_fbank_char/packed/decode_lm.pt a.wav

prints "<name> <text>" per input on stdout, in the order given: the name is the file's stem
(``a`` for ``a.wav``), or the wav.scp key (entries are file paths or Kaldi pipes ``cmd |``).
PACKAGE is a model package (``model_best.pt``, ``model_last.pt``, ``model_avg*.pt``, ``packed/*.pt``) or an
experiment folder (its ``model_best.pt``); it carries the token list, the CMVN statistics and the
front-end settings of its training. Audio in any format soundfile reads is downmixed to mono,
resampled down to the package's rate (a lower rate is an error), turned into the features the model
was trained on and decoded in batches of similar length, the package's way unless options say
otherwise: greedily for ``model_best.pt``; for a packed model (``exp/<tag>/packed/decode_lm.pt``,
asr.sh stage 8) with the beam search, lexicon and LM it was scored with. ``--beam_size`` asks for
CTC beam search (optionally with ``--lexicon`` and ``--lm``) or an RNN-T model's own beam search.
Audio that cannot be read stops the command, naming the file, before anything is printed; audio too
short for the model gets an empty transcript and a warning. The Python API is
``bljust.decode.speech2text.Speech2Text`` (docs/inference.md).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.decode.speech2text import AudioInputError, Speech2Text, read_audio_file


def read_wav_scp(path: str) -> list[tuple[str, str, str]]:
    """(key, entry, "<path>:<line>") per line of a wav.scp; a line without an entry, or a key given
    twice, is a ValueError naming the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    out, seen = [], {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise ValueError(f"{path}:{n}: expected '<key> <audio file or command |>', got '{line}'")
        if fields[0] in seen:
            raise ValueError(f"{path}:{n}: key '{fields[0]}' again (first on line {seen[fields[0]]})")
        seen[fields[0]] = n
        out.append((fields[0], fields[1], f"{path}:{n}: '{fields[0]}'"))
    if not out:
        raise ValueError(f"{path}: no entries")
    return out


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.transcribe", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("package", help="model package (.pt) or experiment folder (its model_best.pt)")
    p.add_argument("audio", nargs="*", default=None, help="audio files (default: none; then --wav_scp)")
    p.add_argument("--wav_scp", help="Kaldi wav.scp of the audio to transcribe ('<key> <file or command |>' per line)")
    p.add_argument("--method", choices=("greedy", "beam"), help="search (default: the package's own: greedy for "
                   "model_best.pt, what a packed model was scored with for exp/<tag>/packed/<decode>.pt)")
    p.add_argument("--beam_size", type=int, help="beam search with this many hypotheses (default: the package's, "
                   "else 10 with --method beam)")
    p.add_argument("--lexicon", help="CTC beam search: word lexicon ('WORD t o k e n s' per line); none: without "
                   "the package's (default: the package's, if it carries one)")
    p.add_argument("--lm", help="CTC beam search: KenLM n-gram (ARPA or binary), over words with a lexicon, else "
                   "over tokens; none: without the package's (default: the package's, if it carries one)")
    p.add_argument("--lm_weight", type=float, help="weight of the LM score (default: the package's, else 1.0)")
    p.add_argument("--word_score", type=float, help="added per word, without a lexicon per word-boundary token "
                   "(default: the package's, else 0.0)")
    p.add_argument("--max_frames", type=int, default=40000, help="padded audio per batch in 10 ms frames")
    p.add_argument("--token_dir", help="token list folder, for a package that carries none (given, it must "
                   "equal the package's)")
    p.add_argument("--cmvn", help="CMVN statistics, for a package that carries none (given, they must equal "
                   "the package's)")
    p.add_argument("--ngpu", type=int, default=0, help="0: CPU; N > 0: decode on a CUDA device")
    args = p.parse_args(argv)

    if not args.audio and not args.wav_scp:
        p.error("give audio files or --wav_scp")
    if args.ngpu > 0 and not torch.cuda.is_available():
        raise ValueError("--ngpu > 0 but no CUDA device is visible")
    inputs = [(Path(f).stem, f, f) for f in args.audio or []] + (read_wav_scp(args.wav_scp) if args.wav_scp else [])
    names: dict[str, str] = {}
    for name, _, where in inputs:
        if name in names:
            raise ValueError(f"{where} and {names[name]} have the same name '{name}': rename one, or list them "
                             "in a wav.scp with keys of their own")
        names[name] = where
    s2t = Speech2Text.from_package(args.package, device="cuda" if args.ngpu > 0 else "cpu", token_dir=args.token_dir,
                                   cmvn=args.cmvn, method=args.method, beam_size=args.beam_size, lexicon=args.lexicon,
                                   lm=args.lm, lm_weight=args.lm_weight, word_score=args.word_score,
                                   max_frames=args.max_frames)

    # Every input is read before anything is printed, so bad audio stops the command with nothing half done.
    feats, audio_s = [], 0.0
    for name, entry, where in inputs:
        try:
            wave, rate = read_audio_file(entry)
            feats.append(s2t.features(wave, rate, where))
        except AudioInputError as e:
            message = str(e)
            raise AudioInputError(message if message.startswith(where) else f"{where}: {message}") from None
        audio_s += len(wave) / rate
        if feats[-1] is None:
            print(f"WARNING: {where}: too short for the model ({len(wave) / rate:.3f} s): empty transcript",
                  file=sys.stderr)
    start = time.perf_counter()
    texts = s2t.decode(feats)
    elapsed = time.perf_counter() - start
    for (name, _, _), text in zip(inputs, texts):
        print(f"{name} {text}".rstrip(" "))
    config = s2t.config
    method = "greedy" if config.method == "greedy" else (f"beam {config.beam_size}" + " + lexicon" * bool(config.lexicon)
                                                         + " + LM" * bool(config.lm))
    print(f"transcribe: {len(inputs)} inputs ({audio_s:.1f} s of audio), {method}, real-time factor "
          f"{elapsed / max(audio_s, 1e-9):.4f} ({torch.get_num_threads()} threads, {s2t.device})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
