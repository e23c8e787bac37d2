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
def _tables() -> tuple[dict[int, str], re.Pattern]:
    """Return (the full canonical decomposition of every character whose decomposition holds a combining
    mark, a pattern of runs of more than `_RUN` characters that hold a mark once decomposed). Built once per
    process (a tenth of a second: one pass over the code points)."""
    decompositions: dict[int, str] = {}
    marks: list[int] = []
    for point in range(0x110000):
        ch = chr(point)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            full = unicodedata.normalize("NFD", ch)
            if any(map(unicodedata.combining, full)):
                decompositions[point] = full
                marks.append(point)
        elif unicodedata.combining(ch):
            marks.append(point)
    ranges, start = [], marks[0]
    for previous, point in zip(marks, [*marks[1:], -1]):
        if point != previous + 1:
            ranges.append(
                f"{re.escape(chr(start))}-{re.escape(chr(previous))}" if previous > start else chr(start)
            )
            start = point
    return decompositions, re.compile(f"[{''.join(ranges)}]{{{_RUN + 1},}}")


def _ordered(run: str, decompositions: dict[int, str]) -> str:
    """Return the canonical decomposition of `run` with each stretch of marks stably sorted by class."""
    out: list[str] = []
    marks: list[str] = []
    for ch in run.translate(decompositions):
        if unicodedata.combining(ch):
            marks.append(ch)
            continue
        if marks:
            out += sorted(marks, key=unicodedata.combining)
            marks = []
        out.append(ch)
    out += sorted(marks, key=unicodedata.combining)
    return "".join(out)


def nfc(text: str) -> str:
    """Return `unicodedata.normalize("NFC", text)`, in time linear in `text`."""
    if text.isascii():
        return text
    decompositions, long_run = _tables()
    pieces, start = [], 0
    for match in long_run.finditer(text):
        pieces += (text[start : match.start()], _ordered(match.group(), decompositions))
        start = match.end()
    if pieces:
        text = "".join(pieces) + text[start:]
    return unicodedata.normalize("NFC", text)
