"""Pack a trained model with the decoding it was scored with: one file that transcribes as stage 6 decoded.

    python -m bljust.bin.pack --exp_dir exp/asr_train_bljust_train_labeled_fbank_char \\
        --config conf/decode_lm.yaml --out exp/asr_train_bljust_train_labeled_fbank_char/packed/decode_lm.pt [--key value ...]

Takes the model the decode config decodes (``checkpoint: best`` / ``last``, or the mean of
``average.n`` checkpoints) with its token list, CMVN statistics and front end, and adds the config's
search settings as the package's default decoding and the bytes of its lexicon and LM files
(``bljust.decode.packing``). ``python -m bljust.bin.transcribe <out> a.wav`` and
``Speech2Text.from_package(<out>)`` then decode with them, and no other file. asr.sh stage 8 packs
every experiment with each of its decode configs, as ``exp/<tag>/packed/<decode name>.pt``. The
packed model is loaded (lexicon and LM included) before it is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bljust.bin import cli
from bljust.bin.help_format import HelpFormatter
from bljust.decode.config import chosen_package, load_decode_config
from bljust.decode.packing import describe, pack
from bljust.decode.speech2text import Speech2Text
from bljust.train import checkpoint


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bljust.bin.pack", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--exp_dir", required=True, help="experiment folder holding model_best.pt / model_last.pt")
    p.add_argument("--config", help="decoding YAML (as for bljust.bin.decode); any key can also be given as --key "
                   "value after the options (default: greedy search with model_best.pt)")
    p.add_argument("--out", required=True, help="the packed model file to write")
    args, rest = p.parse_known_args(argv)
    config = load_decode_config(args.config, rest)
    package, source, _ = chosen_package(args.exp_dir, config)
    try:
        packed = pack(package, config)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    out = Path(args.out)
    Speech2Text.from_loaded(packed, out)  # builds the search: the lexicon and LM load from the package
    checkpoint.save(packed, out)  # atomic: a failure leaves what was at --out as it was
    print(f"pack: {source} (step {packed['steps']}) with {describe(packed)} -> {out} "
          f"({out.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
