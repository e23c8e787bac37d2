"""Each C half and its Python twin: one signature, the same results and the same errors on the edge cases
(lone surrogates, NUL, empty words, tuples, buffers of another type or alignment), C functions that own
what they read (callbacks that change a list cannot reach freed memory), and no memory kept after a call.

The checks that would crash the interpreter on a C function that trusted its list run in a child process,
so that a regression fails one test instead of the session.
"""

from __future__ import annotations

import array
import inspect
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from gristmill.pipelines.filters import gopher_repetition, text_stats
from gristmill.pipelines.native import BOUND
from gristmill.pipelines.steps.dedupe import minhash

_words = text_stats._native
_ngrams = gopher_repetition._ngrams
needs_c = pytest.mark.skipif(_words is None or _ngrams is None, reason="the C halves were not built")

ODD_WORDS = ["", "a", "\ud800", "a\udfff", "\x00", "\x00a", "…", "–", "é", "日本", "🙂", "a.b", "", "!!"]


def test_every_c_half_was_built():
    # `make install` compiles them; without a compiler the twins do the work (slower)
    assert all(b.native is not None for b in BOUND), [b.name for b in BOUND if b.native is None]


def test_each_c_function_takes_its_twins_parameters():
    names = {b.name.rsplit(".", 1)[1] for b in BOUND}
    assert {"words", "word_counts", "lengths", "hashes", "top_ngram_chars", "squeeze"} <= names
    for binding in BOUND:
        if binding.native is None:
            continue
        native, twin = inspect.signature(binding.native), inspect.signature(binding.twin)
        assert [(p.name, p.kind) for p in native.parameters.values()] == [
            (p.name, p.kind) for p in twin.parameters.values()
        ], binding.name


def both(name: str, module=text_stats):
    """Return (C function, twin) of the kernel `name` bound in `module`."""
    (binding,) = [
        b for b in BOUND if b.name.rsplit(".", 1)[1] == name and b.twin.__module__ == module.__name__
    ]
    return binding.native, binding.twin


def same_outcome(calls, *args):
    """Assert every function in `calls` returns equal results, or raises the same exception type."""
    outcomes = []
    for fn in calls:
        try:
            outcomes.append(("ok", fn(*args)))
        except Exception as e:  # the point is to compare whatever each raises
            outcomes.append(("error", type(e)))
    assert all(o == outcomes[0] for o in outcomes), (args, outcomes)
    return outcomes[0]


@needs_c
def test_word_twins_agree_on_odd_words_and_containers():
    counts, lengths, hashes = both("word_counts"), both("lengths"), both("hashes")
    for tokens in (ODD_WORDS, tuple(ODD_WORDS), [""], [], ["", ""], ["\ud800\udc00"]):
        assert same_outcome(counts, tokens)[0] == "ok"  # lone surrogates are counted, not refused
        for fn in (lengths, hashes):
            assert same_outcome([lambda t, f=f: np.frombuffer(f(t), np.int64).tolist() for f in fn], tokens)[
                0
            ]
    # an empty word is made only of punctuation (datatrove: not a word with a non-punctuation character)
    assert counts[0](["", "a"]) == counts[1](["", "a"]) == (1, 1, 1)
    for bad in (iter(ODD_WORDS), "abc", None, {"a": 1}, [1], ["a", b"b"]):
        same_outcome(counts, bad)
        same_outcome(lengths, bad if bad != [1] else [object()])
    same_outcome(hashes, [[1]])  # unhashable: TypeError on both sides
    same_outcome(lengths, [[1, 2], (), "abc"])


@needs_c
def test_words_twins_agree_on_any_text():
    split = both("words")
    for text in ["", " ", "\x00", "a\x00b", "\ud800 x", "é\u0301", "a" + "," * 3000 + "x", "x\x1cy"]:
        assert same_outcome(split, text)[0] == "ok"
    for bad in (b"bytes", None, 3):
        same_outcome(split, bad)
    squeeze = both("squeeze", minhash)
    for text in ["", " a  b ", "\ud800\t\x00", "\u3000x\xa0"]:
        same_outcome(squeeze, text)
    same_outcome(squeeze, b" a ")


def int64_buffers():
    """(buffer, accepted) pairs: int64 arrays pass; other types, shapes and alignments are refused."""
    good = np.arange(6, dtype=np.int64)
    raw = np.zeros(7 * 8 + 1, dtype=np.uint8)
    return [
        (good, True),
        (array.array("q", range(6)), True),
        (memoryview(good), True),
        (good.astype(np.float64), False),
        (good.astype(np.int32), False),
        (good.astype(np.uint64), False),
        (good.tobytes(), False),
        (bytearray(good.tobytes()), False),
        (raw[1:].view(np.int64)[:6], False),  # misaligned
        (np.arange(12, dtype=np.int64)[::2], False),  # strided
        (good.reshape(2, 3), False),
        ([0, 1, 2, 3, 4, 5], False),
    ]


@needs_c
@pytest.mark.parametrize("counter", ["top_ngram_chars", "repeated_ngram_chars"])
def test_ngram_counters_check_their_buffers_alike(counter):
    calls = both(counter, gopher_repetition)
    extra = (5.0,) if counter == "repeated_ngram_chars" else ()
    sizes = np.ones(6, dtype=np.int64)
    for buffer, accepted in int64_buffers():
        for args in (
            (buffer, sizes, 0, 6, 2, *extra),
            (np.arange(6, dtype=np.int64), buffer, 0, 6, 2, *extra),
        ):
            outcome = same_outcome(calls, *args)
            assert (outcome[0] == "ok") == accepted, (buffer, outcome)


@needs_c
def test_an_ngram_table_does_not_outlive_its_document():
    # one document of 300K words needs a table of 2^20 slots; only a small one (1 MiB) may stay
    ids = np.arange(300_000, dtype=np.int64) % 1000
    sizes = np.ones_like(ids)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _ngrams.top_ngram_chars(ids, sizes, 0, ids.size, 2)
        _ngrams.repeated_ngram_chars(ids, sizes, 0, ids.size, 5, np.inf)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept <= 1 << 20, kept


def run_isolated(code: str) -> str:
    """Run `code` in a child interpreter; return its stdout, failing on any error or crash (a signal)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


PRELUDE = """
from gristmill.pipelines.filters import text_stats
_words = text_stats._native
"""


@needs_c
def test_a_fallback_that_empties_the_chunk_list_cannot_make_words_read_freed_memory():
    out = run_isolated(
        PRELUDE
        + """
def greedy(chunks):
    words = text_stats._chunk_words(chunks)
    if isinstance(chunks, list):
        chunks.clear()  # what a careless fallback could do to a list it was handed
    return words
_words.configure(*{**text_stats._configuration(), "fallback": greedy}.values())
text = " ".join(["e.g.", ">>>", "x"] * 1000)
print(_words.words(text) == text_stats.pattern_words(text))
"""
    )
    assert out.strip() == "True"


@needs_c
def test_callbacks_that_shrink_a_list_cannot_make_the_c_loops_read_past_it():
    out = run_isolated(
        PRELUDE
        + """
tokens = ["é%d" % i for i in range(2000)]
def shrinking(word):
    del tokens[:]  # classify is called for non-ASCII words: empty the list being counted
    return text_stats._classify_word(word)
_words.configure(*{**text_stats._configuration(), "classify": shrinking}.values())
print(_words.word_counts(tokens))

items = list(range(3000))
class Shrinking(list):
    def __len__(self):
        items.clear()
        return 2
items[:] = [Shrinking() for _ in range(3000)]
print(len(_words.lengths(items)) // 8)

class Hash(str):
    def __hash__(self):
        keys.clear()
        return 7
keys = [Hash("k") for _ in range(3000)]
print(len(_words.hashes(keys)) // 8)
"""
    )
    content = sum(len(f"é{i}") for i in range(2000))  # each word read once, none after the list emptied
    assert out.split() == ["(0,", "2000,", f"{content})", "3000", "3000"]
