"""An n-gram language model by interpolated modified Kneser-Ney smoothing, written as ARPA.

The estimate KenLM's ``lmplz`` makes (Chen & Goodman 1998; Heafield et al. 2013), for corpora
small enough to count in memory (a recipe's training transcripts):

Each sentence is ``<s> w_1 .. w_k </s>``. Counts a(g) of an n-gram g = w_1..w_n:
    the raw count c(g) for the highest order n = N, and for g starting with <s>;
    otherwise the number of distinct words v that precede it: |{v : c(v g) > 0}|.
Discounts per order n, from t_k, the number of n-grams with a(g) = k:
    Y = t_1 / (t_1 + 2 t_2),  D_k = k - (k + 1) Y t_{k+1} / t_k  (k = 1, 2, 3; D_3 serves counts >= 3).
    Where t_k = 0 makes this undefined or puts D_k outside (0, k), D_k = Y (or 0.5 without t_1, t_2):
    tiny corpora have such gaps; lmplz stops there, we say so in the log and go on.
For a context h and the words x seen after it, with S(h) = sum_x a(h x):
    u(x | h) = (a(h x) - D(a(h x))) / S(h)
    b(h)     = (D_1 N_1(h) + D_2 N_2(h) + D_3 N_3+(h)) / S(h)      N_k(h): words x with a(h x) = k (>= 3)
    p(x | h) = u(x | h) + b(h) p(x | h minus its first word)
    p(x)     = u(x) + b() / |V|      V: every word, </s> and <unk>, not <s>
So every conditional distribution sums to one over V. ARPA holds log10 p(x | h) for each seen
n-gram and log10 b(h) for each seen n-gram of order < N (0 where it is never a context); <s> is
never predicted (log10 p = -99), <unk> gets only the uniform share b() / |V|.
"""
from __future__ import annotations

import logging
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

from bljust.fileio import atomic_write_text

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NEVER = -99.0  # log10 probability ARPA files give <s>


@dataclass
class NgramLM:
    order: int
    logprob: list[dict[tuple[str, ...], float]]  # [n - 1]: n-gram -> log10 p(last word | the others)
    backoff: list[dict[tuple[str, ...], float]]  # [n - 1] for n < order: n-gram -> log10 b(n-gram)
    discounts: list[tuple[float, float, float]]  # [n - 1]: (D_1, D_2, D_3+)

    @property
    def vocabulary(self) -> list[str]:
        return [g[0] for g in self.logprob[0]]

    def score(self, word: str, context: tuple[str, ...] = ()) -> float:
        """log10 p(word | context) by ARPA's back-off rule (unknown words score as <unk>)."""
        if (word,) not in self.logprob[0]:
            word = UNK
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        total = 0.0
        while True:
            g = context + (word,)
            if g in self.logprob[len(g) - 1]:
                return total + self.logprob[len(g) - 1][g]
            total += self.backoff[len(context) - 1].get(context, 0.0) if context else 0.0
            context = context[1:]

    def to_arpa(self) -> str:
        lines = ["", "\\data\\"] + [f"ngram {n + 1}={len(self.logprob[n])}" for n in range(self.order)]
        for n in range(self.order):
            lines += ["", f"\\{n + 1}-grams:"]
            for g in sorted(self.logprob[n], key=lambda g: [w.encode() for w in g]):
                row = f"{self.logprob[n][g]:.6f}\t{' '.join(g)}"
                if n < self.order - 1:
                    row += f"\t{self.backoff[n].get(g, 0.0):.6f}"
                lines.append(row)
        return "\n".join(lines + ["", "\\end\\", ""])

    def write_arpa(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_arpa())


def _discounts(counts: Iterable[int], order: int) -> tuple[float, float, float]:
    t = Counter(c for c in counts if c <= 4)
    y = t[1] / (t[1] + 2 * t[2]) if t[1] and t[2] else 0.5
    out = []
    for k in (1, 2, 3):
        d = k - (k + 1) * y * t[k + 1] / t[k] if t[k] else float("nan")
        if not 0 < d < k:
            log.info("order %d: count-of-counts %s leave discount D_%d undefined; using %.3f", order,
                     [t[i] for i in (1, 2, 3, 4)], k, y)
            d = y
        out.append(d)
    return out[0], out[1], out[2]


def estimate(sentences: Iterable[list[str]], order: int = 3) -> NgramLM:
    """sentences: lists of words (without <s> and </s>) -> the interpolated modified Kneser-Ney model."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    raw: list[Counter] = [Counter() for _ in range(order)]
    num_sentences = 0
    for words in sentences:
        for w in words:
            if w in (BOS, EOS):
                raise ValueError(f"a sentence contains the reserved word {w}: {' '.join(words)}")
        seq = [BOS, *words, EOS]
        num_sentences += 1
        for i in range(len(seq)):
            for n in range(1, min(order, len(seq) - i) + 1):
                raw[n - 1][tuple(seq[i:i + n])] += 1
    if not num_sentences:
        raise ValueError("no sentences to estimate a language model from")

    # Adjusted counts: distinct left extensions below the highest order (raw after <s>).
    adjusted: list[dict] = [dict() for _ in range(order)]
    adjusted[order - 1] = dict(raw[order - 1])
    for n in range(order - 1, 0, -1):
        extensions = Counter(g[1:] for g in raw[n])
        adjusted[n - 1] = {g: (c if g[0] == BOS else extensions[g]) for g, c in raw[n - 1].items()}
    adjusted[0].pop((BOS,), None)  # <s> is never predicted
    adjusted[0].setdefault((UNK,), 0)

    discounts = [_discounts(adjusted[n].values(), n + 1) for n in range(order)]
    prob: list[dict] = [dict() for _ in range(order)]  # interpolated probabilities (not logs yet)
    gamma: list[dict] = [dict() for _ in range(order)]  # b(context) per context of order n + 1
    for n in range(order):
        d1, d2, d3 = discounts[n]
        by_context: dict[tuple, list] = defaultdict(list)
        for g, a in adjusted[n].items():
            by_context[g[:-1]].append((g, a))
        for h, grams in by_context.items():
            total = sum(a for _, a in grams)
            nk = [sum(1 for _, a in grams if a == 1), sum(1 for _, a in grams if a == 2),
                  sum(1 for _, a in grams if a >= 3)]
            gamma[n][h] = (d1 * nk[0] + d2 * nk[1] + d3 * nk[2]) / total
            for g, a in grams:
                u = max(a - (d1, d2, d3)[min(a, 3) - 1], 0.0) / total if a > 0 else 0.0
                lower = 1.0 / len(adjusted[0]) if n == 0 else prob[n - 1][g[1:]]
                prob[n][g] = u + gamma[n][h] * lower
    logprob = [{g: math.log10(p) for g, p in level.items()} for level in prob]
    logprob[0][(BOS,)] = NEVER
    backoff = [{h: math.log10(b) if b > 0 else NEVER for h, b in gamma[n + 1].items() if h}
               for n in range(order - 1)]
    return NgramLM(order, logprob, backoff, discounts)


def read_arpa(path: str | os.PathLike) -> NgramLM:
    """The model an ARPA file holds (any ARPA file, not only ours), for scoring and tests."""
    logprob: list[dict] = []
    backoff: list[dict] = []
    order = 0
    section = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line == "\\end\\":
                continue
            if line == "\\data\\":
                section = "data"
            elif line.startswith("ngram ") and section == "data":
                order = max(order, int(line.split()[1].split("=")[0]))
            elif line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:].split("-")[0])
                logprob += [dict() for _ in range(section - len(logprob))]
                backoff += [dict() for _ in range(section - len(backoff))]
            elif isinstance(section, int):
                parts = line.split()
                n = section
                if len(parts) not in (n + 1, n + 2):
                    raise ValueError(f"{path}:{lineno}: expected {n} words, a log-probability and an optional back-off")
                g = tuple(parts[1:n + 1])
                logprob[n - 1][g] = float(parts[0])
                if len(parts) == n + 2:
                    backoff[n - 1][g] = float(parts[-1])
    if not order or len(logprob) != order:
        raise ValueError(f"{path}: not an ARPA file (no \\data\\ section or missing n-gram sections)")
    return NgramLM(order, logprob, backoff[:order - 1], [])
