"""Rank candidates on a metric and decide each pair only beyond the seed noise: pure functions.

The rule (tested): a pair of candidates is *decided* when Welch's two-sided t-test rejects equal means at
level `alpha` (default 0.05), treating each seed's final metric as one sample. Welch's test does not assume
the candidates' seed variances are equal; its degrees of freedom (Welch–Satterthwaite) are small with few
seeds, so the gap it asks for grows as seeds get fewer: with equal spreads, the difference of means must
exceed about 4.3 standard errors of the difference with 2 seeds per candidate (t at 2 degrees of freedom),
2.8 with 3 seeds, 2.3 with 5; up to 12.7 with 2 seeds when one candidate's seeds agree and the other's do
not (1 degree of freedom). The standard error of the difference is √(s_a²/n_a + s_b²/n_b), s the seeds'
sample standard deviation. A pair whose seeds all agree exactly is decided by any gap and not by none.
Fewer than 2 seeds per candidate give no estimate of the noise, so an ablation needs at least 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Spread:
    """A candidate's values of one metric over its seeds: mean, sample standard deviation, range."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Return the spread of `values` (std 0 for a single value)."""
        n = len(values)
        mean = math.fsum(values) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        return cls(n, mean, std, min(values), max(values))


@dataclass(frozen=True)
class Decision:
    """One pair: the difference of means (first − second), Welch's t, degrees of freedom and p-value, and
    whether the difference is beyond the seed noise at the level asked."""

    difference: float
    t: float
    df: float
    p: float
    decided: bool


def welch(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> Decision:
    """Return Welch's two-sided t-test of mean(a) = mean(b) as a Decision at level `alpha`.

    Raises ValueError when either side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each candidate needs at least 2 seeds to estimate the seed noise")
    sa, sb = Spread.of(a), Spread.of(b)
    difference = sa.mean - sb.mean
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    if va + vb == 0:  # every seed of both gave the same value: any gap is beyond the (zero) noise
        decided = difference != 0
        return Decision(
            difference,
            math.copysign(math.inf, difference) if decided else 0.0,
            math.inf,
            0.0 if decided else 1.0,
            decided,
        )
    t = difference / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    p = float(2 * stats.t.sf(abs(t), df))
    return Decision(difference, t, df, p, p < alpha)


@dataclass(frozen=True)
class Ranked:
    """A candidate's place on one metric."""

    rank: int
    candidate: str
    spread: Spread


def rank(values: dict[str, Sequence[float]], higher_is_better: bool) -> list[Ranked]:
    """Return the candidates ordered best first by their mean (ties keep the given order)."""
    spreads = {name: Spread.of(v) for name, v in values.items()}
    order = sorted(spreads, key=lambda name: -spreads[name].mean if higher_is_better else spreads[name].mean)
    return [Ranked(i + 1, name, spreads[name]) for i, name in enumerate(order)]


def pairwise(
    values: dict[str, Sequence[float]], higher_is_better: bool, alpha: float = 0.05
) -> list[tuple[str, str, Decision]]:
    """Return, for every pair in rank order (better first), Welch's decision on their difference."""
    order = [r.candidate for r in rank(values, higher_is_better)]
    return [(a, b, welch(values[a], values[b], alpha)) for i, a in enumerate(order) for b in order[i + 1 :]]


def higher_is_better(metric: str) -> bool:
    """Return True for accuracies, False for bits per byte and losses."""
    return metric.startswith(("task_acc/", "task_acc_norm/"))
