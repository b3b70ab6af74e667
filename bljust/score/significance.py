"""Significance of the difference between two recognisers on one test set.

Two tests, both paired (the same utterances, or the same seeds, on both sides):

- ``paired_bootstrap``: the paired bootstrap over test utterances of Bisani and Ney (2004),
  "Bootstrap estimates for confidence intervals in ASR performance evaluation" (ICASSP).
  The test utterances are drawn with replacement ``resamples`` times (numpy's PCG64 generator
  with a fixed seed, so the numbers are the same on every run); for each draw,
  Δ = (Σ system errors − Σ reference errors) / Σ reference length over the drawn utterances,
  in points (×100). Reported: the observed Δ (all utterances once), the 95 % *percentile*
  confidence interval (the 2.5th and 97.5th percentiles of the resampled Δ, numpy's linear
  interpolation), and a two-sided p-value
  ``p = min(1, 2 · #{b : Δ_b on the other side of 0 than the observed Δ, or Δ_b = 0} / B)``:
  twice the share of draws in which the sign does not agree with the observed one (a draw
  with Δ_b = 0 counts against the difference, so ties make p larger, not smaller); p = 1 when
  the observed Δ is exactly 0. Its resolution is 1/B: with no draw against, p = 0 is reported
  as "< 1/B". This is twice Bisani and Ney's "probability of improvement" tail.
- ``paired_t``: the two-sided paired t-test on per-seed differences (df = seeds − 1), its
  p-value from the Student t distribution through the regularized incomplete beta function
  (``t_pvalue``; scipy is not needed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class Bootstrap:
    delta: float     # observed system - reference, in points
    low: float       # 95 % percentile interval
    high: float
    p: float         # two-sided, see the module docstring
    resamples: int

    def p_text(self) -> str:
        return format_p(self.p, self.resamples)


def format_p(p: float, resamples: int | None = None) -> str:
    """A bootstrap p (``resamples`` given) to its resolution 1/B (4 decimals for B = 10 000), 0 as
    '< 1/B'; any other p with 4 decimals, or 3 significant digits below 0.001."""
    if resamples:
        if p == 0:
            return f"< {1 / resamples:g}"
        return f"{p:.{max(4, len(str(resamples)) - 1)}f}"
    if p >= 0.001 or p == 0:
        return f"{p:.4f}"
    return f"{p:.2e}"


def paired_bootstrap(sys_err, ref_err, ref_len, resamples: int = RESAMPLES, seed: int = SEED,
                     level: float = 0.95, chunk: int = 1000) -> list[Bootstrap]:
    """Paired bootstrap of Δ = system − reference error rate, for each column of the inputs.

    ``sys_err``, ``ref_err``, ``ref_len``: per-utterance counts, shape (utterances,) or
    (utterances, k) for k rates judged on the same draws (e.g. words and characters); the
    draws depend only on ``seed``, ``resamples`` and the number of utterances. Returns one
    ``Bootstrap`` per column.
    """
    sys_err, ref_err, ref_len = (np.asarray(a, dtype=np.float64) for a in (sys_err, ref_err, ref_len))
    if sys_err.ndim == 1:
        sys_err, ref_err, ref_len = sys_err[:, None], ref_err[:, None], ref_len[:, None]
    if not (sys_err.shape == ref_err.shape == ref_len.shape) or sys_err.shape[0] == 0:
        raise ValueError(f"paired bootstrap: counts of different shapes or no utterances "
                         f"({sys_err.shape}, {ref_err.shape}, {ref_len.shape})")
    if resamples < 1:
        raise ValueError(f"paired bootstrap: resamples must be >= 1, got {resamples}")
    n, k = sys_err.shape
    x = np.concatenate([sys_err - ref_err, ref_len], axis=1)  # (n, 2k): numerators, denominators
    rng = np.random.default_rng(seed)
    sums = np.empty((resamples, 2 * k))
    for start in range(0, resamples, chunk):  # chunks keep memory at chunk x n
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        # how often each utterance is drawn, then one matrix product for every sum
        counts = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        sums[start:start + b] = counts @ x
    deltas = 100.0 * sums[:, :k] / np.maximum(sums[:, k:], 1.0)
    observed = 100.0 * x[:, :k].sum(0) / np.maximum(x[:, k:].sum(0), 1.0)
    tail = (1.0 - level) / 2 * 100
    out = []
    for j in range(k):
        d, obs = deltas[:, j], float(observed[j])
        low, high = np.percentile(d, [tail, 100 - tail])
        if obs == 0:
            p = 1.0
        else:
            against = np.count_nonzero(d <= 0) if obs > 0 else np.count_nonzero(d >= 0)
            p = min(1.0, 2.0 * int(against) / resamples)
        out.append(Bootstrap(obs, float(low), float(high), p, resamples))
    return out


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_pvalue(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom: P(|T| >= |t|)."""
    if math.isnan(t):
        return 1.0
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


@dataclass(frozen=True)
class PairedT:
    mean: float   # of the differences
    std: float    # sample standard deviation of the differences
    t: float
    df: int
    p: float      # two-sided


def paired_t(differences) -> PairedT:
    """Two-sided paired t-test of ``differences`` (system − reference per pair, e.g. per seed)
    against 0: t = mean / (std / √n), df = n − 1. All differences equal: p = 1 when they are
    0, else p = 0 (t infinite)."""
    d = [float(v) for v in differences]
    n = len(d)
    if n < 2:
        raise ValueError(f"paired t-test: needs at least 2 pairs, got {n}")
    mean = math.fsum(d) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in d) / (n - 1))
    if std == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        return PairedT(mean, 0.0, t, n - 1, 1.0 if mean == 0 else 0.0)
    t = mean / (std / math.sqrt(n))
    return PairedT(mean, std, t, n - 1, t_pvalue(t, n - 1))
