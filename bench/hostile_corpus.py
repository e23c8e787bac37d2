"""Hostile documents: what a crawl can hold and a backtracking pattern, a table or a sort can choke on.

Issue 22's corpus, made by code at a chosen scale (1.0 is the issue's: runs of 100,000 characters, a
10M-word document, 50M-character words): runs of trailing punctuation followed by another character
(`"a" + "," * n + "x"`, `"e.g." …`, `"http://" + "." * n + "x"`, mixed marks), the same runs ending a chunk,
a document of tiny words, single huge words (ASCII letters, a non-ASCII word, a run of marks inside one
word), every Unicode whitespace between words, every code point of every plane (lone surrogates included),
long runs of combining marks out of canonical order, NUL and control characters, and a JSON nest deeper
than the parser goes. Loaded by bench/hostile_bench.py and, at a small scale, by the tests.
"""

from __future__ import annotations

import numpy as np

PROSE = (
    "The river rose in the night, and by morning the lower fields were under water. The farmers moved "
    "their animals to the high pasture and waited; nobody could remember a flood like it since the war.\n"
)
WHITESPACE = "".join(ch for ch in map(chr, range(0x110000)) if ch.isspace())


def _framed(core: str) -> str:
    """Return `core` as the middle of an otherwise ordinary document."""
    return PROSE * 3 + core + "\n" + PROSE * 3


def _tiny_words(count: int, seed: int = 0) -> str:
    """Return `count` words of one to three letters from a small alphabet, space separated."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghij", dtype=np.uint8)
    sizes = rng.integers(1, 4, size=count)
    chars = np.full(int(sizes.sum()) + count, ord(" "), dtype=np.uint8)
    ends = np.cumsum(sizes + 1) - 1  # the space after each word
    is_letter = np.ones(chars.size, dtype=bool)
    is_letter[ends] = False
    chars[is_letter] = letters[rng.integers(0, letters.size, size=int(is_letter.sum()))]
    return chars.tobytes().decode("ascii")


def hostile_documents(
    scale: float = 1.0, run: int | None = None, huge: int | None = None, words: int | None = None
) -> dict[str, str]:
    """Return name -> document. `scale` 1.0: runs of `run` = 100,000 characters, `words` = 10M tiny words,
    `huge` = 50M-character words; each may be given apart (the tests give sizes the word pattern's
    definition finishes on)."""
    run = run or max(int(100_000 * scale), 10)
    huge = huge or max(int(50_000_000 * scale), 100)
    words = words or max(int(10_000_000 * scale), 100)
    every_point = "".join(map(chr, range(0x110000)))  # every plane, lone surrogates included
    marks = "…,:;!?()[]{}<>_#*&'\"`.—–’”«»。，"
    return {
        "run: a,,,x": _framed("a" + "," * run + "x"),
        "run: e.g.,,,x": _framed("e.g." + "," * run + "x"),
        "run: http://...x": _framed("http://" + "." * run + "x"),
        "run: (.… repeated": _framed("(.…" * (run // 3) + "x"),
        "run: mixed marks then x": _framed("w" + "".join(marks[i % len(marks)] for i in range(run)) + "x"),
        "run: marks ending a chunk": _framed("x " + ".," * (run // 2)),
        "run: ',' ending a word": _framed("word" + "," * run),
        "run: combining marks out of order": _framed("a" + "\u0301\u0316" * (run // 2)),
        "run: U+0F73 (two marks each)": _framed("\u0f73" * run),
        "run: spaces then x (config line)": "\n".join([" " * run + "x"] * 10),
        # one key per line, so that the code rules' line, character and data checks reach the JSON parser
        "json nested past the parser": '{"abc":\n' * run + "1\n" + "}\n" * run,
        "10M tiny words": _tiny_words(words),
        "50M-char word: letters": "x" * huge,
        "50M-char word: non-ASCII": "é" * huge,
        "50M-char word: marks inside": "a" + "".join(marks[i % len(marks)] for i in range(huge)) + "x",
        "every whitespace between words": WHITESPACE.join(f"word{i}" for i in range(max(run // 10, 50))),
        "every code point of every plane": every_point,
        "NUL and control characters": "".join(map(chr, range(32))) * max(run // 32, 4) + PROSE,
    }
