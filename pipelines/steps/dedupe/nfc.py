"""`unicodedata.normalize("NFC", text)`, exactly, in time linear in the text.

CPython puts combining marks in canonical order with an insertion sort: a long run of marks out of order
takes time quadratic in the run (`"a" + "\\u0301\\u0316" * 16_000` takes 0.8 s, 100,000 pairs about 30 s;
U+0F73 repeated, whose decomposition is two marks, alike), while a run already in order takes linear time.
So runs of more than `_RUN` characters whose decompositions hold a mark are decomposed and put in canonical
order here first (a stable sort by combining class, which is what canonical ordering is), and
`unicodedata.normalize` then does the whole text, finding those runs in order. Decomposing a decomposed
run changes nothing and a stable sort of a sorted run changes nothing, so the result is the same string.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

_RUN = 32  # longer runs are ordered here: below this, CPython's sort costs at most a few thousand steps


@cache
def _tables() -> tuple[dict[int, str], re.Pattern, re.Pattern]:
    """Return (the full canonical decomposition of every character whose decomposition holds a combining
    mark, a pattern of runs of more than `_RUN` characters that hold a mark once decomposed, a pattern of
    two or more marks in a row). Built once per process (a tenth of a second: one pass over the code
    points)."""
    decompositions: dict[int, str] = {}
    holding: list[int] = []  # characters that are marks or decompose to some, in order
    marks: list[int] = []
    for point in range(0x110000):
        ch = chr(point)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            full = unicodedata.normalize("NFD", ch)
            if any(map(unicodedata.combining, full)):
                decompositions[point] = full
                holding.append(point)
                continue
        if unicodedata.combining(ch):
            holding.append(point)
        if unicodedata.combining(ch):
            marks.append(point)
    return (
        decompositions,
        re.compile(f"[{_ranges(holding)}]{{{_RUN + 1},}}"),
        re.compile(f"[{_ranges(marks)}]{{2,}}"),
    )


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


def _sorted_marks(match: re.Match) -> str:
    return "".join(sorted(match.group(), key=unicodedata.combining))


def nfc(text: str) -> str:
    """Return `unicodedata.normalize("NFC", text)`, in time linear in `text`."""
    if text.isascii():
        return text
    decompositions, long_run, marks = _tables()
    pieces, start = [], 0
    for match in long_run.finditer(text):
        run = match.group().translate(decompositions)
        if not unicodedata.is_normalized("NFD", run):  # a linear check here: some marks are out of order
            run = marks.sub(_sorted_marks, run)  # each stretch stably sorted by class: canonical order
        pieces += (text[start : match.start()], run)
        start = match.end()
    if pieces:
        text = "".join(pieces) + text[start:]
    return unicodedata.normalize("NFC", text)
