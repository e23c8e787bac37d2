"""Score percentiles over a whole source: fine score bins, their histogram, and the floor a top fraction
draws from.

A stage that draws a source's top-scored fraction needs one threshold for the whole source, but the plan is
computed in slices that each hold a part of it. So every token file counts its documents (and tokens) per
fine score bin, the counts are summed per source, and the threshold is read off the sum: the *floor*, the
lowest bin the stage draws from. A slice then compares each document's bin with the floor, exactly as every
other slice does.

Bins are equal in logit(score), not in score: a classifier's scores crowd near 0 and 1, where equal bins of
[0, 1] would lump most of a corpus's best documents together. `SCORE_BINS` bins of `LOGIT_RANGE` are each
0.0024 wide in logit (0.06% of a score near 0.5, a relative 0.24% of 1 − score near 1). Documents tied in
one bin are drawn together, so a top fraction draws at least the fraction asked for, and at most one bin's
documents more; the plan records the share drawn.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SCORE_BINS = 16384
LOGIT_RANGE = (-20.0, 20.0)
UNSCORED = -1  # the bin of a document without a score


def score_bins(scores: np.ndarray) -> np.ndarray:
    """Return each score's bin (int32; `UNSCORED` for NaN), bins equal in logit over `LOGIT_RANGE`."""
    s = np.asarray(scores, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logit = np.log(s) - np.log1p(-s)
    lo, hi = LOGIT_RANGE
    position = np.floor((np.clip(logit, lo, hi) - lo) * (SCORE_BINS / (hi - lo)))
    bins = np.minimum(position, SCORE_BINS - 1)
    return np.where(np.isnan(s), UNSCORED, bins).astype(np.int32)


def bin_score(b: int) -> float:
    """Return the lowest score of bin `b` (0 for the first bin)."""
    if b <= 0:
        return 0.0
    lo, hi = LOGIT_RANGE
    return float(1.0 / (1.0 + np.exp(-(lo + b * (hi - lo) / SCORE_BINS))))


def bin_counts(bins: np.ndarray, weights: np.ndarray | None = None) -> dict[str, list[int]]:
    """Return a sparse histogram of scored documents over the fine bins: `{"bin": [...], "count": [...]}`,
    counting documents, or summing `weights` (tokens) when given."""
    scored = bins >= 0
    counts = np.bincount(
        bins[scored], weights=None if weights is None else weights[scored], minlength=SCORE_BINS
    )
    return sparse(counts.astype(np.int64))


def sparse(counts: np.ndarray) -> dict[str, list[int]]:
    """Return dense counts per fine bin as a sparse histogram (`{"bin": [...], "count": [...]}`)."""
    nonzero = np.flatnonzero(counts)
    return {"bin": nonzero.tolist(), "count": np.asarray(counts)[nonzero].tolist()}


def dense(histograms: Iterable[dict[str, list[int]]]) -> np.ndarray:
    """Return the sum of sparse histograms as one dense int64[SCORE_BINS]."""
    total = np.zeros(SCORE_BINS, np.int64)
    for h in histograms:
        np.add.at(total, np.asarray(h["bin"], np.int64), np.asarray(h["count"], np.int64))
    return total


def floor_for_top(documents: np.ndarray, fraction: float) -> int:
    """Return the highest bin whose documents and those above it are at least `fraction` of the scored
    documents (`documents`: dense counts per bin), so drawing from that bin up draws the top `fraction`."""
    total = int(documents.sum())
    if not total:
        return SCORE_BINS  # nothing scored: nothing is drawn
    at_or_above = np.cumsum(documents[::-1])[::-1]
    need = fraction * total
    reaching = np.flatnonzero(at_or_above >= need - 1e-9 * total)
    return int(reaching[-1])
