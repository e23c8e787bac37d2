"""One document against the index, in one pass: which items it holds, where, and what to do about it.

`Decontaminator.check(text)` cuts the text into words once (words.py), looks every window of the index's
lengths up (the n-grams, and the short texts matched whole), and returns a `Verdict`: each item found with
its matched spans, and the action. `drop` drops a document that holds any item; `cut` removes each matched
span widened by `margin` characters on each side (on to the next whitespace, so no word is split), joins what
is left with line breaks, and drops the document instead when fewer than `min_chars_left` characters remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gristmill.pipelines.config.decontam import DecontamConfig
from gristmill.pipelines.decontam.index import DecontamIndex
from gristmill.pipelines.decontam.words import probe, words

MATCHED_TEXT_CHARS = 2000  # of a match's text kept in its record
SNAP_CHARS = 100  # a cut goes on this far at most to reach whitespace


@dataclass
class Found:
    """An item found in a document: its set and id, and the character spans its keys matched (merged)."""

    benchmark: str
    item_id: str
    spans: list[tuple[int, int]]

    def matched_text(self, text: str) -> str:
        """The matched spans of `text`, joined by " … ", cut to `MATCHED_TEXT_CHARS`."""
        return " … ".join(text[a:b] for a, b in self.spans)[:MATCHED_TEXT_CHARS]


@dataclass
class Verdict:
    """What decontamination does with one document: keep it as it is, drop it, or keep it cut."""

    found: list[Found] = field(default_factory=list)
    action: str = "keep"  # keep | drop | cut
    text: str | None = None  # the text left after a cut
    removed: list[tuple[int, int]] = field(default_factory=list)  # character spans taken out

    @property
    def benchmark(self) -> str | None:
        """The set the document is counted under: the one with the most items found (first on a tie)."""
        if not self.found:
            return None
        counts: dict[str, int] = {}
        for f in self.found:
            counts[f.benchmark] = counts.get(f.benchmark, 0) + 1
        return max(counts, key=counts.__getitem__)

    @property
    def removed_chars(self) -> int:
        """Characters taken out of the document (all of them when it is dropped)."""
        return sum(b - a for a, b in self.removed)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class Decontaminator:
    """Checks documents against one index with one recipe's settings."""

    def __init__(self, index: DecontamIndex, config: DecontamConfig) -> None:
        self.index = index
        self.config = config
        self.names = [s.name for s in index.sets]

    def find(self, text: str) -> list[Found]:
        """Return every item whose keys occur in `text`, in the order the items were first seen."""
        hashes, starts, ends = words(text)
        idx = self.index
        slots, positions, lengths = probe(hashes, idx.lengths, idx.table, idx.long_bloom, idx.short_bloom)
        if not len(slots):
            return []
        begin = starts[positions]
        finish = ends[positions + lengths - 1]
        spans: dict[int, list[tuple[int, int]]] = {}
        for items, a, b in zip(idx.items_of(slots), begin.tolist(), finish.tolist()):
            for item in items.tolist():
                spans.setdefault(item, []).append((a, b))
        return [
            Found(self.names[int(idx.item_sets[item])], idx.item_ids[item], _merged(found))
            for item, found in spans.items()
        ]

    def check(self, text: str) -> Verdict:
        """Return what to do with `text`: keep, drop, or cut (with the text left)."""
        found = self.find(text)
        if not found:
            return Verdict()
        if self.config.action == "drop":
            return Verdict(found, "drop", removed=[(0, len(text))])
        removed = _merged([self._widened(text, a, b) for f in found for a, b in f.spans])
        pieces, at = [], 0
        for a, b in removed:
            pieces.append(text[at:a].strip())
            at = b
        pieces.append(text[at:].strip())
        left = "\n".join(p for p in pieces if p)
        if len(left) < self.config.min_chars_left:
            return Verdict(found, "drop", removed=[(0, len(text))])
        return Verdict(found, "cut", left, removed)

    def _widened(self, text: str, start: int, end: int) -> tuple[int, int]:
        """`[start, end)` widened by the margin on each side, then out to whitespace (no word is split)."""
        margin = self.config.margin
        a, b = max(0, start - margin), min(len(text), end + margin)
        floor, ceiling = max(0, a - SNAP_CHARS), min(len(text), b + SNAP_CHARS)
        while a > floor and not text[a - 1].isspace():
            a -= 1
        while b < ceiling and not text[b].isspace():
            b += 1
        return a, b


def unique_items(found: list[Found]) -> dict[str, set[str]]:
    """Return benchmark → the ids of its items in `found`."""
    out: dict[str, set[str]] = {}
    for f in found:
        out.setdefault(f.benchmark, set()).add(f.item_id)
    return out
