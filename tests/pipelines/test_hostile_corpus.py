"""Issue 22's hostile corpus (bench/hostile_corpus.py) through every rule set, the exact key and MinHash:
the verdicts equal those the word pattern's definition gives where it finishes (runs of 1,500 characters),
the exact key is its plain definition, and at a larger scale (runs of 100,000 characters, which the
definition takes hours over) everything finishes and nothing raises."""

from __future__ import annotations

import unicodedata

import pytest

from gristmill.pipelines.config.filters import RULE_SETS, FiltersConfig
from gristmill.pipelines.filters import c4, make_rule_set, text_stats
from gristmill.pipelines.filters.text_stats import clear_batch_words, pattern_words
from gristmill.pipelines.steps.dedupe.minhash import _WORD, MinHasher, exact_key


def verdicts(documents: dict[str, str]) -> dict[str, list[str | None]]:
    """Return each document's verdict from every rule set, each judging it alone."""
    config = FiltersConfig()
    rule_sets = [rules for name in RULE_SETS if (rules := make_rule_set(config, name)) is not None]
    clear_batch_words()
    return {name: [rules.check_batch([text])[0] for rules in rule_sets] for name, text in documents.items()}


def test_verdicts_equal_the_word_patterns_definition(bench_module, monkeypatch):
    documents = bench_module("hostile_corpus").hostile_documents(run=1_500, huge=3_000, words=20_000)
    ours = verdicts(documents)
    for module in (text_stats, c4):  # every place the rule sets split words (fineweb through the memo)
        monkeypatch.setattr(module, "words", pattern_words)
    assert verdicts(documents) == ours
    clear_batch_words()


def test_exact_keys_are_the_plain_definition(bench_module):
    documents = bench_module("hostile_corpus").hostile_documents(run=1_500, huge=3_000, words=20_000)
    for name, text in documents.items():
        assert exact_key(text) == " ".join(unicodedata.normalize("NFC", text).lower().split()), name


@pytest.mark.slow
def test_the_corpus_at_runs_of_100000_characters_goes_through(bench_module):
    documents = bench_module("hostile_corpus").hostile_documents(run=100_000, huge=400_000, words=200_000)
    judged = verdicts(documents)
    assert all(len(v) == len(RULE_SETS) for v in judged.values())
    sig, has = MinHasher().signatures(list(documents.values()))
    assert sig.shape == (len(documents), 112)
    assert has.tolist() == [bool(_WORD.search(text)) for text in documents.values()]  # "[[[…]]]" has no word
    assert all(isinstance(exact_key(text), str) for text in documents.values())
    clear_batch_words()
