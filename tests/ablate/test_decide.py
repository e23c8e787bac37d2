"""The decision rule: Welch's t-test over seeds, by hand and against scipy's own; ranking by direction."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from gristmill.ablate.decide import Spread, higher_is_better, pairwise, rank, welch


def test_welch_by_hand():
    a, b = [2.0, 2.2, 2.4], [3.0, 3.4]
    # means 2.2 and 3.2; sample variances 0.04 and 0.08; squared standard errors 0.04/3 and 0.08/2
    va, vb = 0.04 / 3, 0.08 / 2
    t = (2.2 - 3.2) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    decision = welch(a, b)
    assert decision.difference == pytest.approx(-1.0)
    assert decision.t == pytest.approx(t) and decision.df == pytest.approx(df)
    assert decision.p == pytest.approx(2 * stats.t.sf(abs(t), df))
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert decision.t == pytest.approx(reference.statistic) and decision.p == pytest.approx(reference.pvalue)
    assert decision.decided == (decision.p < 0.05)


@pytest.mark.parametrize(
    ("a", "b", "decided"),
    [
        ([1.00, 1.01], [1.50, 1.51], True),  # gap 50× the spread: t ≈ 70 at 2 df
        ([1.00, 1.10], [1.05, 1.15], False),  # gap half the spread
        ([1.00, 1.02], [1.05, 1.07], False),  # t ≈ 3.5 at 2 df: p ≈ 0.07, not below 0.05 with 2 seeds …
        ([1.00, 1.02, 1.01], [1.05, 1.07, 1.06], True),  # … but the same gap with 3 seeds is (t ≈ 6.1, 4 df)
        ([1.0, 1.0], [1.0, 1.0], False),  # every seed the same, no gap
        ([1.0, 1.0], [2.0, 2.0], True),  # every seed the same, a gap: beyond the (zero) noise
    ],
)
def test_a_pair_is_decided_only_beyond_the_seed_noise(a, b, decided):
    assert welch(a, b).decided is decided
    assert welch(b, a).decided is decided  # symmetric


def test_one_seed_has_no_noise_to_compare_with():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        welch([1.0], [2.0, 2.1])


def test_ranking_follows_the_metrics_direction_and_pairs_are_better_first():
    values = {"a": [1.2, 1.3], "b": [1.0, 1.1], "c": [1.5, 1.4]}
    assert [r.candidate for r in rank(values, higher_is_better=False)] == ["b", "a", "c"]
    assert [r.candidate for r in rank(values, higher_is_better=True)] == ["c", "a", "b"]
    assert [(x, y) for x, y, _ in pairwise(values, False)] == [("b", "a"), ("b", "c"), ("a", "c")]
    assert rank(values, False)[0].spread == Spread(2, 1.05, pytest.approx(0.0707107), 1.0, 1.1)
    assert higher_is_better("task_acc/arc_easy:rc_0shot") and not higher_is_better("text_bpb/clean")
