"""How well scores separate real from junk: precision and recall at a threshold, ROC AUC."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Evaluation:
    """A classifier's figures on labelled documents, at one score threshold."""

    documents: int
    real: int
    junk: int
    threshold: float
    precision: float  # of the documents scoring ≥ threshold, the share that are real
    recall: float  # of the real documents, the share scoring ≥ threshold
    roc_auc: float  # the chance that a random real document outscores a random junk one (ties count half)

    def to_dict(self) -> dict[str, float | int]:
        """Return the figures as a plain dict (for --json)."""
        return asdict(self)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the ROC AUC of `scores` for binary `labels` (1 real, 0 junk), by the rank-sum (Mann-Whitney)
    statistic with tied scores given their average rank. Raises ValueError unless both labels occur."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_real = int(labels.sum())
    n_junk = len(labels) - n_real
    if not n_real or not n_junk:
        raise ValueError(f"ROC AUC needs both labels (got {n_real} real, {n_junk} junk)")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    average = (starts + ends + 1) / 2.0  # ranks are 1-based: a tie over [s, e) shares (s+1 + e) / 2
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[labels].sum() - n_real * (n_real + 1) / 2) / (n_real * n_junk))


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> Evaluation:
    """Return precision and recall at `threshold` and the ROC AUC of `scores` against `labels`."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    chosen = scores >= threshold
    true_pos = int((chosen & labels).sum())
    return Evaluation(
        documents=len(labels),
        real=int(labels.sum()),
        junk=int((~labels).sum()),
        threshold=threshold,
        precision=true_pos / int(chosen.sum()) if chosen.any() else 0.0,
        recall=true_pos / int(labels.sum()) if labels.any() else 0.0,
        roc_auc=roc_auc(labels, scores),
    )
