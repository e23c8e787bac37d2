"""Our rule sets against datatrove's own filter classes on the same documents: keep/drop agreement ≥ 99%."""

from __future__ import annotations

import functools

import pytest

from gristmill.pipelines.config.filters import GopherQualityConfig, GopherRepetitionConfig
from gristmill.pipelines.filters import C4Filter, FineWebFilter, GopherQualityFilter, GopherRepetitionFilter
from gristmill.sample.text import reference_documents

pytest.importorskip("spacy", reason="datatrove's English filters need spaCy: pip install spacy")

OURS = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4": C4Filter,
    "fineweb": FineWebFilter,
}


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return reference_documents(seed=0)


@pytest.fixture(scope="module")
def agreement(bench_module):
    """`agreement(rule_set, texts, config)`: (decision agreement, reason agreement, the disagreements)."""
    return functools.partial(_agreement, bench_module("datatrove_filters"))


def _agreement(reference, rule_set: str, texts: list[str], config=None) -> tuple[float, float, list]:
    ours = OURS[rule_set](config).check_batch(texts)
    theirs = reference.datatrove_verdicts(rule_set, texts, config)
    names = reference.DATATROVE_REASONS[rule_set]
    same_decision = [(a is None) == (b is None) for a, b in zip(ours, theirs)]
    same_reason = [a == b or (a is not None and names[a.split(":", 1)[1]] == b) for a, b in zip(ours, theirs)]
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if (a is None) != (b is None)]
    return sum(same_decision) / len(texts), sum(same_reason) / len(texts), differ


def test_reference_documents_mix_real_text_and_junk(documents):
    assert len(documents) >= 600
    assert sum(map(len, documents)) > 500_000
    assert "" in documents and any("lorem ipsum" in d.lower() for d in documents)


@pytest.mark.slow
@pytest.mark.parametrize("rule_set", list(OURS))
def test_decisions_agree_with_datatrove(documents, agreement, rule_set):
    decisions, reasons, differ = agreement(rule_set, documents)
    # both keep and drop must occur often, or agreement would say little
    kept = sum(v is None for v in OURS[rule_set]().check_batch(documents))
    assert 20 <= kept <= len(documents) - 20
    assert decisions >= 0.99, f"{rule_set}: {decisions:.4f}; differing (index, ours, datatrove): {differ}"
    assert reasons >= 0.99


@pytest.mark.slow
def test_agreement_holds_with_other_thresholds(documents, agreement):
    # thresholds moved so that other documents sit on the edges
    quality = GopherQualityConfig(min_doc_words=20, max_non_alpha_words_ratio=0.6, min_stop_words=1)
    repetition = GopherRepetitionConfig(
        dup_line_frac=0.1, top_n_grams=[(2, 0.1), (3, 0.08)], dup_n_grams=[(5, 0.05), (7, 0.03)]
    )
    sample = documents[::3]
    for rule_set, config in (("gopher_quality", quality), ("gopher_repetition", repetition)):
        decisions, _, differ = agreement(rule_set, sample, config)
        assert decisions >= 0.99, f"{rule_set}: {decisions:.4f}; {differ}"
