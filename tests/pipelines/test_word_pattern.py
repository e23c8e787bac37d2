"""The word pattern's linear-time form cuts exactly the definition's words, and in linear time: runs of
100,000 trailing marks followed by another character (which took the definition about 20 minutes) are cut
in a blink, by `chunk_words` and by the whole split (`words`: the C walk and its fallback)."""

from __future__ import annotations

import random

import pytest

from gristmill.pipelines.filters.text_stats import words
from gristmill.pipelines.filters.word_pattern import _TWINS, MARKS, chunk_words, pattern_words, twin_words

# Every class of character the pattern treats apart, the words and marks with rules of their own, the marks'
# twins and the character they are neutralised to (text may hold them), a lone surrogate and NUL.
PIECES = [
    *"aAbBsSmdtnrevlxXyZ0123456789",
    *".,:;!?()[]{}<>_#*&'\"`-~=$%+/@^|\\",
    *("www", "Mr", "Sept", "Ph.D", "dont", "Dont", "cannot", "Im", "n't", "'s", "'re", "'ll", "...", "…"),
    *("–", "—", "’", "“", "é", "ß", "½", "²", "\u0301", "🙂", "。", "km", "http://", "e.g.", "U.S.", "10"),
    *(_TWINS["."], _TWINS[","], "\ue0ff", "\ud800", "\x00"),
    *MARKS,
]


def test_fuzzed_chunks_cut_as_the_definition():
    rng = random.Random(0)
    for _ in range(30_000):
        chunk = "".join("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14))).split()) or "x"
        assert twin_words(chunk) == pattern_words(chunk), ascii(chunk)  # the twin form on any chunk
        assert chunk_words(chunk) == pattern_words(chunk), ascii(chunk)


def test_runs_of_marks_cut_as_the_definition():
    """Mixed runs of marks (what the definition scans over and over) between every kind of head and tail."""
    rng = random.Random(1)
    heads = ["a", "e.g.", "http://", "www.", "A", "xA", "1", "10km", "U.S.", "Mr", "(", "'", "don", "a'", "…"]
    heads += ["", "..", "ab'", "x.", "a-", "1+", "dont"]
    tails = ["x", "", "s", "'s", "A", "1", ".", "a", "é", "(", "...", "nt", _TWINS["."]]
    for _ in range(1_500):
        run = "".join(
            rng.choice(MARKS + "aA") if rng.random() < 0.1 else rng.choice(MARKS[:8] + ".,'…")
            for _ in range(rng.randint(1, 300))
        )
        chunk = rng.choice(heads) + run + rng.choice(tails)
        assert twin_words(chunk) == pattern_words(chunk), ascii(chunk)
        assert chunk_words(chunk) == pattern_words(chunk), ascii(chunk)


# The shapes of issue 22 and their words at length n (checked against the definition where it finishes).
SHAPES = {
    "a{run,}x": (lambda n: "a" + "," * n + "x", lambda n: ["a" + "," * n + "x"]),
    "e.g.{run,}x": (lambda n: "e.g." + "," * n + "x", lambda n: ["e.g." + "," * n + "x"]),
    "http://{run.}x": (lambda n: "http://" + "." * n + "x", lambda n: ["http://" + "." * n + "x"]),
    "a{run,}": (lambda n: "a" + "," * n, lambda n: ["a"] + [","] * n),
    "A{run.}x": (lambda n: "A" + "." * n + "x", lambda n: ["A", "." * n, "x"]),
    "(.…": (lambda n: "(.…" * (n // 3) + "x", lambda n: ["(", ".", "…"] * (n // 3) + ["x"]),
    "x {run.,}": (lambda n: "x " + ".," * (n // 2), lambda n: ["x"] + [".", ","] * (n // 2)),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_issues_shapes_are_cut_in_linear_time(shape):
    make, expected = SHAPES[shape]
    for n in (30, 1_500):
        assert pattern_words(make(n)) == expected(n)  # the definition, where it finishes quickly
    for n in (30, 1_500, 100_000):
        text = make(n)
        assert chunk_words(text.split()[-1]) == expected(n)[-len(chunk_words(text.split()[-1])) :]
        assert words(text) == expected(n)
        assert words(f"it was {text} then") == ["it", "was", *expected(n), "then"]
