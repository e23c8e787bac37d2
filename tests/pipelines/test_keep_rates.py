"""Keep rates of each filter profile on real text: curated prose, hand-written code, and plain junk.

The corpus is `gristmill.sample.keep_corpus` (Python's documentation and sources, Debian's docs, C headers),
thinned for test time; bench/keep_rates.py measures the whole of it. `none` runs no rule set, so it keeps
everything, junk included, by definition: it is checked to do exactly that, and left out of the junk bound.
"""

from __future__ import annotations

import pytest

from gristmill.pipelines.config.filters import FiltersConfig
from gristmill.pipelines.filters import make_filters
from gristmill.sample import keep_corpus


def keep_rate(profile: str, texts: list[str]) -> float:
    """Return the share of `texts` every rule set of `profile` keeps."""
    kept = texts
    for rules in make_filters(FiltersConfig(), profile):
        kept = [t for t, reason in zip(kept, rules.check_batch(kept)) if reason is None]
    return len(kept) / len(texts)


@pytest.fixture(scope="module")
def prose() -> list[str]:
    return keep_corpus.prose_documents(every=2, max_debian=150)


@pytest.fixture(scope="module")
def code() -> list[str]:
    return [text for _, text in keep_corpus.code_documents(every=9)]


@pytest.fixture(scope="module")
def junk() -> list[str]:
    return [text for _, text in keep_corpus.junk_documents(seed=1, per_kind=20)]


def test_corpus_is_real_and_large_enough(prose, code, junk):
    assert len(prose) >= 300 and len(code) >= 300 and len(junk) >= 150
    assert any("class" in t and "def " in t for t in code)
    assert len(set(prose)) == len(prose)
    assert not any(keep_corpus._is_generated(t) for t in code)


def test_curated_keeps_prose(prose):
    assert keep_rate("curated", prose) >= 0.99


def test_code_keeps_code(code):
    assert keep_rate("code", code) >= 0.98


@pytest.mark.parametrize("profile", ["web", "code", "curated"])
def test_every_profile_drops_junk(profile, junk):
    assert keep_rate(profile, junk) <= 0.05


def test_none_keeps_everything(junk):
    assert make_filters(FiltersConfig(), "none") == []
    assert keep_rate("none", junk) == 1.0


def test_web_rules_drop_the_prose_curated_keeps(prose):
    # the reason for profiles: Gopher's alpha_words and C4's sentences drop clean reference prose
    assert keep_rate("web", prose) < 0.5 < keep_rate("curated", prose)
