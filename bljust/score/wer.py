"""Word and character error rates with per-utterance alignments (jiwer underneath)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import jiwer


@dataclass
class ErrorCounts:
    ref_len: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        return 100.0 * self.errors / max(self.ref_len, 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors, "rate": round(self.rate, 2)}


def _counts(out) -> ErrorCounts:
    return ErrorCounts(sum(len(r) for r in out.references), out.substitutions, out.deletions, out.insertions)


def align_lines(ref: list[str], hyp: list[str], chunks) -> tuple[str, str, str]:
    """Three column-aligned lines: REF, HYP and the edit (S, D, I, or blank for a match)."""
    cols: list[tuple[str, str, str]] = []
    for c in chunks:
        r, h = ref[c.ref_start_idx : c.ref_end_idx], hyp[c.hyp_start_idx : c.hyp_end_idx]
        if c.type == "equal":
            cols += [(w, w, "") for w in r]
        elif c.type == "substitute":
            cols += [(a.lower(), b.lower(), "S") for a, b in zip(r, h)]
        elif c.type == "delete":
            cols += [(a.lower(), "*" * len(a), "D") for a in r]
        else:
            cols += [("*" * len(b), b.lower(), "I") for b in h]
    widths = [max(len(a), len(b), len(e)) for a, b, e in cols]
    fmt = lambda i: " ".join(col[i].ljust(w) for col, w in zip(cols, widths)).rstrip()  # noqa: E731
    return fmt(0), fmt(1), fmt(2)


def score(refs: dict[str, str], hyps: dict[str, str]) -> tuple[dict, str]:
    """Score hypotheses against references (both utt -> text).

    Returns (summary dict with "wer", "cer" counts and utterance numbers, readable
    per-utterance alignment text). An utterance without a hypothesis counts as an
    empty hypothesis (all deletions) and is reported in ``missing``.
    """
    utts = sorted(refs, key=str.encode)
    missing = [u for u in utts if u not in hyps]
    extra = sorted(set(hyps) - set(refs))
    ref_list = [refs[u] for u in utts]
    hyp_list = [hyps.get(u, "") for u in utts]
    words = jiwer.process_words(ref_list, hyp_list)
    chars = jiwer.process_characters(ref_list, hyp_list)
    lines = []
    for i, utt in enumerate(utts):
        r, h, e = align_lines(words.references[i], words.hypotheses[i], words.alignments[i])
        n_err = sum(1 for x in e.split() if x)
        lines.append(f"utt: {utt}  errors: {n_err} / {len(words.references[i])} words\nREF: {r}\nHYP: {h}\nEDT: {e}\n")
    summary = {
        "num_utts": len(utts), "wer": _counts(words).as_dict(), "cer": _counts(chars).as_dict(),
        "missing_hypotheses": missing, "extra_hypotheses": extra,
    }
    return summary, "\n".join(lines)
