"""Fuzz the C halves against their Python twins (and the word pattern's linear form against its
definition), for a build of the extensions under AddressSanitizer and UndefinedBehaviorSanitizer.

Each input picks a kernel and arguments from the fuzzer's bytes (texts drawn from every character class
the pattern treats apart, lone surrogates, NUL, whitespace of every kind, long runs of marks; word lists
with empty and non-str items, lists and tuples; int64 arrays and ranges, and buffers of other types,
shapes and alignments), runs the C function and its twin, and fails unless both return the same value or
raise the same exception type. With `atheris` installed it drives the inputs (libFuzzer); without it, or
with `--random`, a seeded random stream does (atheris gets no coverage in a process with gcc's ASan runtime,
so there it mutates blind: the random stream, which draws from the classes above, finds more). A second
pass (`--leaks`) repeats every error path 20,000 times and fails if traced memory grows.

Build and run (a copy of the tree with sanitized extensions; the interpreter is not sanitized, so the
runtimes are preloaded and Python allocates with malloc, where ASan sees every block):

    CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g" \\
      LDFLAGS="-fsanitize=address,undefined" python setup.py build_ext --inplace
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \\
      PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 python bench/fuzz_twins.py -runs=200000
"""

from __future__ import annotations

import contextlib
import gc
import random
import sys
import tracemalloc

import numpy as np

try:
    import atheris
except ImportError:
    atheris = None

from gristmill.pipelines.filters import gopher_repetition, text_stats
from gristmill.pipelines.filters.word_pattern import MARKS, chunk_words, pattern_words, twin_words
from gristmill.pipelines.native import BOUND
from gristmill.pipelines.steps.dedupe import minhash  # noqa: F401  (binds squeeze)

PIECES = [
    *"aAbBsSmdtnrevlxXyZ0123456789",
    *".,:;!?()[]{}<>_#*&'\"`-~=$%+/@^|\\",
    *(
        "www",
        "Mr",
        "Ph.D",
        "dont",
        "cannot",
        "n't",
        "'s",
        "'re",
        "...",
        "…",
        "http://",
        "e.g.",
        "U.S.",
        "10km",
    ),
    *(
        "–",
        "—",
        "’",
        "“",
        "é",
        "ß",
        "½",
        "\u0301",
        "🙂",
        "。",
        "\ue000",
        "\ue009",
        "\ud800",
        "\udfff",
        "\x00",
    ),
    *(" ", "\t", "\n", "\r\n", "\u00a0", "\u2009", "\u3000", "\x1c", "\x85", "\u2028"),
    *MARKS,
]
TWINS = {b.name.rsplit(".", 1)[1]: (b.native, b.twin) for b in BOUND if b.native is not None}


class Draw:
    """Draws values from the fuzzer's bytes (atheris) or from a seeded generator."""

    def __init__(self, data: bytes | None = None, rng: random.Random | None = None) -> None:
        self.fdp = atheris.FuzzedDataProvider(data) if data is not None else None
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.fdp.ConsumeIntInRange(lo, hi) if self.fdp else self.rng.randint(lo, hi)

    def pick(self, items):
        return items[self.int(0, len(items) - 1)]

    def text(self, longest: int) -> str:
        parts = []
        for _ in range(self.int(0, longest)):
            kind = self.int(0, 9)
            if kind == 0:
                parts.append(self.pick(PIECES) * self.int(1, 300))  # a run
            elif kind == 1 and self.fdp:
                parts.append(self.fdp.ConsumeUnicode(8))
            elif kind == 1:
                parts.append(chr(self.int(0, 0x10FFFF)))
            else:
                parts.append(self.pick(PIECES))
        return "".join(parts)


def same(name: str, *args) -> None:
    """Assert the C function `name` and its twin give equal results or raise the same exception type."""
    outcomes = []
    for fn in TWINS[name]:
        try:
            result = fn(*args)
            outcomes.append(("ok", bytes(result) if isinstance(result, bytearray) else result))
        except Exception as e:
            outcomes.append(("error", type(e).__name__))
    assert outcomes[0] == outcomes[1], (name, [ascii(a)[:200] for a in args], outcomes)


def buffers(draw: Draw, size: int) -> object:
    """Return an int64 array of `size`, or now and then a buffer of another type, shape or alignment."""
    values = np.array([draw.int(-(2**63), 2**63 - 1) for _ in range(size)], dtype=np.int64)
    kind = draw.int(0, 12)
    if kind == 1:
        return values.astype(np.float64)
    if kind == 2:
        return values.astype(np.int32)
    if kind == 3:
        raw = np.zeros(size * 8 + 1, dtype=np.uint8)
        return raw[1:].view(np.int64)
    if kind == 4:
        return values.tobytes()
    if kind == 5:
        return np.repeat(values, 2)[::2]
    return values


def one_input(draw: Draw) -> None:
    """Check one kernel on one drawn input."""
    kernel = draw.int(0, 5)
    if kernel == 0:
        text = draw.text(40)
        same("words", text)
        for chunk in text.split()[:20]:
            if len(chunk) <= 400:  # the definition is quadratic in a run: keep it short
                assert twin_words(chunk) == chunk_words(chunk) == pattern_words(chunk), ascii(chunk)
    elif kernel == 1:
        tokens = [draw.text(4) for _ in range(draw.int(0, 30))]
        if draw.int(0, 20) == 0:
            tokens.append(draw.pick([1, None, b"x", ["a"]]))
        container = tuple(tokens) if draw.int(0, 1) else tokens
        same("word_counts", container)
        same("lengths", container)
        same("hashes", container)
    elif kernel == 2:
        same("squeeze", draw.text(30))
    else:
        size = draw.int(0, 60)
        words, sizes = buffers(draw, size), buffers(draw, size if draw.int(0, 10) else size + 1)
        if draw.int(0, 3) == 0:
            vocabulary = [draw.int(-5, 5) for _ in range(draw.int(1, 4))]
            words = np.array([draw.pick(vocabulary) for _ in range(size)], dtype=np.int64)
        start, end, n = draw.int(-2, size + 2), draw.int(-2, size + 2), draw.int(-1, 12)
        same("top_ngram_chars", words, sizes, start, end, n)
        same("repeated_ngram_chars", words, sizes, start, end, n, float(draw.int(0, 400)))


def leaks() -> None:
    """Repeat every error path and check traced memory does not grow (a missing decref would)."""
    bad = np.arange(8, dtype=np.float64)
    good = np.arange(8, dtype=np.int64)
    calls = [
        lambda: text_stats._native.words(3),
        lambda: text_stats._native.word_counts(["a", 1]),
        lambda: text_stats._native.word_counts("abc"),
        lambda: text_stats._native.lengths([1]),
        lambda: text_stats._native.hashes([[1]]),
        lambda: gopher_repetition._ngrams.top_ngram_chars(bad, good, 0, 8, 2),
        lambda: gopher_repetition._ngrams.top_ngram_chars(good, bad, 0, 8, 2),
        lambda: gopher_repetition._ngrams.repeated_ngram_chars(good, good[:4], 0, 8, 2, 1.0),
        lambda: gopher_repetition._ngrams.repeated_ngram_chars(good, good, 0, 9, 2, 1.0),
        lambda: text_stats._native.configure(*{**text_stats._configuration(), "kept_dot": ["é"]}.values()),
        lambda: text_stats._native.words("e.g. x " * 20),
        lambda: text_stats._native.word_counts(("é", "a", "")),
    ]
    for call in calls:
        for _ in range(200):  # warm caches
            with contextlib.suppress(Exception):
                call()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            with contextlib.suppress(Exception):
                call()
        gc.collect()  # what a collection frees was not leaked
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert grown < 64 << 10, (call, grown)
    print(f"leaks: {len(calls)} paths x 20,000 calls, no growth")


def main() -> None:
    if "--leaks" in sys.argv:
        leaks()
        return
    if atheris is not None and "--random" not in sys.argv:
        atheris.Setup(sys.argv, lambda data: one_input(Draw(data=data)))
        atheris.Fuzz()
    runs = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("-runs=")), 100_000)
    seed = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("-seed=")), 0)
    rng = random.Random(seed)
    for _ in range(runs):
        one_input(Draw(rng=rng))
    print(f"{runs} inputs: C halves and twins agree")


if __name__ == "__main__":
    main()
