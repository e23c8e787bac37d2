"""The C half of the filters' word split gives exactly the pattern's words, and Gopher's word counts.

`words` cuts the common chunks in C and hands the rest to the regular expressions (`pattern_words`); these
tests hold the two to the same tokens on edge cases, fuzzed chunks, real prose and real source code, and
check the property the split relies on: a chunk's words never depend on its neighbours.
"""

from __future__ import annotations

import random
import sysconfig
from contextlib import contextmanager
from pathlib import Path

import pytest

from gristmill.pipelines.filters import text_stats
from gristmill.pipelines.filters.text_stats import pattern_words, word_classes, word_counts, words
from gristmill.sample.text import bench_documents

_words = text_stats._native

# Pieces the fuzzer strings together: every class of character the pattern treats apart, and the words and
# marks with rules of their own (split words, abbreviations, clitics, merged emoticons, units, URLs).
_PIECES = [
    *"aAbBsSmdtnrevlxXyZ0123456789",
    *".,:;!?()[]{}<>_#*&'\"`-~=$%+/@^|\\",
    *("www", "Mr", "Sept", "Ph.D", "dont", "Dont", "cannot", "Im", "n't", "'s", "'re", "'ll", "...", "…"),
    *("–", "—", "’", "“", "é", "ß", "½", "²", "\u0301", "🙂", "。", "km", "http://", "e.g.", "U.S."),
    *(" ", "\t", "\n", "\r\n", "\u00a0", "\u2009", "\x1c"),
]

EDGE_CASES = [
    "",
    "   \t\n ",
    "(Hello) world, it's Mr. X. and xA. or xA.. then AB. done",
    "well-known a--b a---b a----b x-Mr. x-www. 32-bit",
    "__init__ ((a)) :) word): (:x ;)y ''quoted'' \"quoted,\" `code`",
    "don't. IT'S. it's' we're, I'll) I'd? can't cann't n't 'tis",
    "dont cannot Cannot (dont dont. x-dont gonna Im Ive",
    "1999. 3.14 1,000 10km 20% $5 #1 (1) 5* a..b a... Mr... www... www.example.com",
    "tab\tseparated\r\nCRLF\u00a0NBSP\u2009thin\x1cfile-separator",
    "café naïve e\u0301 Straße ½ x² 🙂 emoji. “quoted” — dash… 。日本語",
    "Don’t it’s http://x.com/a). and/or I/O e.g. i.e., U.S.",
]


def _fuzzed(seed: int, count: int, longest: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, longest))) for _ in range(count)]


def _python_sources(limit_chars: int) -> list[str]:
    """Real source code and docs: the standard library's own modules."""
    texts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total += len(text)
        if total > limit_chars:
            break
    return texts


def test_the_c_half_is_built():
    # `make install` compiles it; without a compiler the pattern alone cuts every chunk, several times slower
    assert text_stats.NATIVE, "gristmill.pipelines.filters._words was not built: install with a C compiler"


needs_native = pytest.mark.skipif(not text_stats.NATIVE, reason="the C half was not built")


@needs_native
@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_match_the_pattern(text):
    assert words(text) == pattern_words(text)


@needs_native
def test_fuzzed_chunks_match_the_pattern():
    for text in _fuzzed(seed=0, count=20_000, longest=10) + _fuzzed(seed=1, count=3_000, longest=40):
        assert words(text) == pattern_words(text), repr(text)
        framed = f"x {text} y"
        assert words(framed) == pattern_words(framed), repr(framed)


@needs_native
def test_prose_and_source_code_match_the_pattern():
    for text in bench_documents(1_500_000) + _python_sources(1_500_000):
        assert words(text) == pattern_words(text)


def test_a_chunks_words_never_depend_on_its_neighbours():
    # what lets the C half cut chunks one by one and hand the rest over in one call
    for text in EDGE_CASES + _fuzzed(seed=2, count=5_000, longest=30):
        assert pattern_words(text) == [w for chunk in text.split() for w in pattern_words(chunk)], repr(text)


@contextmanager
def configured(**changes):
    """Configure the C half with some of its arguments changed; put the real configuration back after."""
    try:
        _words.configure(*{**text_stats._configuration(), **changes}.values())
        yield
    finally:
        text_stats._configure(_words)


@needs_native
def test_a_fallback_that_loses_tokens_is_refused():
    for answer, error, message in [
        (["e.g"], RuntimeError, "do not cover"),
        (("e.g.",), TypeError, "list of str"),
        ([1], TypeError, "list of str"),
        (["e.g.", "x"], RuntimeError, "do not cover"),
    ]:
        with configured(fallback=lambda chunks, answer=answer: answer), pytest.raises(error, match=message):
            _words.words("a e.g. b")


@needs_native
def test_the_fallback_gets_the_chunks_as_a_tuple_it_cannot_change():
    seen = []

    def fallback(chunks):
        seen.append(chunks)
        return text_stats._chunk_words(chunks)

    with configured(fallback=fallback):
        assert _words.words("(a) e.g. b ...x") == pattern_words("(a) e.g. b ...x")
    assert seen == [("e.g.", "...x")]


@needs_native
def test_configure_refuses_what_its_tables_cannot_hold_and_keeps_what_it_had():
    text = "(dont) Mr. Smith's x-ray, www.x"
    for changes, error, message in [
        ({"kept_dot": [f"w{i}" for i in range(65)]}, ValueError, "too many"),
        ({"kept_dot": ["café"]}, ValueError, "ASCII"),
        ({"split": ["a" * 20]}, ValueError, "ASCII"),
        ({"merged": [":)", "x" * 4]}, ValueError, "ASCII"),
        ({"classify": None}, TypeError, "callable"),
        ({"fallback": "not callable"}, TypeError, "callable"),
        ({"trail": b"."}, ValueError, "ASCII str"),
        ({"split": 3}, TypeError, "list or tuple"),
    ]:
        with pytest.raises(error, match=message):
            _words.configure(*{**text_stats._configuration(), **changes}.values())
        # all or nothing: the failed call changed nothing, so the real tables still cut as the pattern does
        assert words(text) == pattern_words(text), changes


def test_word_counts_match_the_word_classes():
    texts = EDGE_CASES[1:] + bench_documents(300_000) + _fuzzed(seed=3, count=2_000, longest=20)
    for text in texts:
        tokens = words(text)
        if not tokens:
            assert word_counts(tokens) == (0, 0, 0)
            continue
        sizes, symbol, letter = word_classes(tokens)
        assert word_counts(tokens) == (int(symbol.sum()), int(letter.sum()), int(sizes[~symbol].sum()))


def test_the_chunk_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(text_stats, "_CHUNK_CACHE_SIZE", 4)
    text_stats.clear_batch_words()
    chunks = [f"e.g.{i}" for i in range(10)] + ["+" + "-" * 100 + "+"]
    assert text_stats._chunk_words(chunks) == pattern_words(" ".join(chunks))
    assert 0 < len(text_stats._chunk_cache) <= 4
    assert all(len(chunk) <= text_stats._CHUNK_CACHE_LONGEST for chunk in text_stats._chunk_cache)
    # cached words come back equal, and are not the caller's to change
    first = text_stats._chunk_words(["e.g.9"])
    first.append("x")
    assert text_stats._chunk_words(["e.g.9"]) == pattern_words("e.g.9")


def test_lengths_and_string_hashes_are_those_of_len_and_hash():
    items = ["", "a", "ab", "é" * 3, "🙂", "x" * 1000]
    assert text_stats.lengths(items).tolist() == list(map(len, items))
    assert text_stats.lengths([[1], [], [1, 2]]).tolist() == [1, 0, 2]
    assert text_stats.lengths([]).tolist() == []
    assert text_stats.string_hashes(items).tolist() == list(map(hash, items))
    writable = text_stats.lengths(items)
    writable[0] = 7  # callers may change the array in place
    assert writable[0] == 7


def test_the_word_memo_is_bounded_and_keeps_no_large_text():
    memo = text_stats._WordMemo(max_texts=3, max_chars=800)
    texts = [f"text number {i} " * 5 for i in range(6)]  # 75-76 characters each
    first = memo.words(texts[:2])
    assert memo.words(texts[1:2])[0] is first[1]  # the same text: its words, not a new split
    memo.words(texts[2:])
    assert len(memo._entries) == 3 and memo._chars <= 800
    assert all(hit[0] is text for hit, text in zip(memo._entries.values(), texts[3:]))
    big = "word " * 40  # over an eighth of the bound: split, never kept
    assert memo.words([big]) == [words(big)] and id(big) not in memo._entries
    memo.clear()
    assert not memo._entries and memo._chars == 0
