"""`unicodedata.normalize("NFC", text)`, exactly, in time linear in the text.

CPython puts combining marks in canonical order with an insertion sort: a long run of marks out of order
takes time quadratic in the run (`"a" + "\\u0301\\u0316" * 16_000` takes 0.8 s, 100,000 pairs about 30 s;
U+0F73 repeated, whose decomposition is two marks, alike), while a run already in order takes linear time.
So text already in NFC (CPython's quick check, linear: it stops at the first mark out of order, and only
fully normalises text whose marks are all in order) is returned as it is; in other text, runs of more
than `_RUN` characters whose decompositions hold a mark are decomposed and put in canonical order here
first (a stable sort by combining class, which is what canonical ordering is), and `unicodedata.normalize`
then does the whole text, finding those runs in order. Decomposing a decomposed
run changes nothing and a stable sort of a sorted run changes nothing, so the result is the same string.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import numpy as np

_RUN = 32  # longer runs are ordered here: below this, CPython's sort costs at most a few thousand steps


@cache
def _tables() -> tuple[dict[int, str], np.ndarray, re.Pattern]:
    """Return (the full canonical decomposition of every character whose decomposition holds a combining
    mark, a bool per code point: is it a mark or does it decompose to one, a pattern of two or more marks
    in a row). Built once per process (a tenth of a second: one pass over the code points)."""
    decompositions: dict[int, str] = {}
    holding = np.zeros(0x110000, dtype=bool)
    marks: list[int] = []
    for point in range(0x110000):
        ch = chr(point)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            full = unicodedata.normalize("NFD", ch)
            if any(map(unicodedata.combining, full)):
                decompositions[point] = full
                holding[point] = True
        if unicodedata.combining(ch):
            holding[point] = True
            marks.append(point)
    return decompositions, holding, re.compile(f"[{_ranges(marks)}]{{2,}}")


def _ranges(points: list[int]) -> str:
    """Return a character class body for the sorted code points `points`."""
    ranges, start = [], points[0]
    for previous, point in zip(points, [*points[1:], -1]):
        if point != previous + 1:
            ranges.append(
                f"{re.escape(chr(start))}-{re.escape(chr(previous))}" if previous > start else chr(start)
            )
            start = point
    return "".join(ranges)


def _long_runs(text: str, holding: np.ndarray) -> list[tuple[int, int]]:
    """Return the [start, end) of each run of more than `_RUN` characters of `text` that hold a mark."""
    flags = np.zeros(len(text) + 2, dtype=bool)
    flags[1:-1] = holding[np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
    edges = np.flatnonzero(flags[1:] != flags[:-1])
    starts, ends = edges[0::2], edges[1::2]
    long = ends - starts > _RUN
    return list(zip(starts[long].tolist(), ends[long].tolist()))


def _sorted_marks(match: re.Match) -> str:
    return "".join(sorted(match.group(), key=unicodedata.combining))


def nfc(text: str) -> str:
    """Return `unicodedata.normalize("NFC", text)`, in time linear in `text`."""
    if text.isascii() or unicodedata.is_normalized("NFC", text):  # CPython's quick check: linear here
        return text
    decompositions, holding, marks = _tables()
    pieces, at = [], 0
    for start, end in _long_runs(text, holding):
        run = text[start:end].translate(decompositions)
        if not unicodedata.is_normalized("NFD", run):  # a linear check here: some marks are out of order
            run = marks.sub(_sorted_marks, run)  # each stretch stably sorted by class: canonical order
        pieces += (text[at:start], run)
        at = end
    if pieces:
        text = "".join(pieces) + text[at:]
    return unicodedata.normalize("NFC", text)
