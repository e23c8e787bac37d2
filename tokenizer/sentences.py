"""What sentencepiece trains on: lines (one sentence each) or pre-token counts, with newline/tab escapes.

sentencepiece reads one line as one sentence, so a newline can never be inside a piece. To give `\\n` and
`\\t` pieces we train on whole documents with them replaced by two characters that do not occur in the
sample (escapes), then rename the escapes back in the trained model (train_sentencepiece). The TSV input
(`piece<TAB>count`) cannot hold a tab either, so tabs are escaped too.

Lines longer than `max_bytes` would be skipped by sentencepiece without a word; they are split at a space
(or anywhere, for one long word) and counted instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Private-use characters tried, in order, as the newline and tab escapes.
_ESCAPE_CANDIDATES = [chr(c) for c in range(0xE000, 0xF8FF)]
# A sentencepiece word (split_by_whitespace with whitespace-only pieces allowed): a run of spaces followed by
# non-spaces, or trailing spaces. sentencepiece prefixes every TSV entry with one `▁` (the dummy prefix), so a
# counted pre-token is its word minus the one space that `▁` stands for; the first word of a sentence gets
# that `▁` from the sentence's own dummy prefix and keeps all its spaces.
_WORD = re.compile(r" *[^ ]+| +")


@dataclass(frozen=True)
class Escapes:
    """The characters standing for newline and tab while training (None: not escaped)."""

    newline: str | None
    tab: str | None

    def apply(self, text: str) -> str:
        """Return `text` with newline and tab replaced by their escapes."""
        if self.newline:
            text = text.replace("\n", self.newline)
        if self.tab:
            text = text.replace("\t", self.tab)
        return text

    def restore(self, piece: str) -> str:
        """Return a trained piece with the escapes turned back into newline and tab."""
        if self.newline:
            piece = piece.replace(self.newline, "\n")
        if self.tab:
            piece = piece.replace(self.tab, "\t")
        return piece


def choose_escapes(texts: Iterable[str], newline: bool, tab: bool) -> Escapes:
    """Return escapes for newline/tab (when asked) that occur in none of `texts`."""
    if not (newline or tab):
        return Escapes(None, None)
    seen: set[str] = set()
    for text in texts:
        seen.update(ch for ch in set(text) if "\ue000" <= ch <= "\uf8ff")
    free = (c for c in _ESCAPE_CANDIDATES if c not in seen)
    return Escapes(next(free) if newline else None, next(free) if tab else None)


@dataclass
class SplitCount:
    """How many over-long lines were split and into how many parts (reported, never silent)."""

    lines: int = 0
    parts: int = 0


def split_long(line: str, max_bytes: int, counts: SplitCount) -> list[str]:
    """Return `line` cut into parts of at most `max_bytes` UTF-8 bytes, preferably before a space."""
    if len(line.encode("utf-8", "surrogatepass")) <= max_bytes:
        return [line]
    parts: list[str] = []
    rest = line
    while len(rest.encode("utf-8", "surrogatepass")) > max_bytes:
        cut = max_bytes // 4  # characters: never more than max_bytes bytes whatever their width
        while cut < len(rest) and len(rest[: cut * 2].encode("utf-8", "surrogatepass")) <= max_bytes:
            cut *= 2
        while len(rest[:cut].encode("utf-8", "surrogatepass")) > max_bytes:
            cut -= max(1, cut // 16)
        space = rest.rfind(" ", 1, cut)
        cut = space if space > cut // 2 else cut
        parts.append(rest[:cut])
        rest = rest[cut:]
    parts.append(rest)
    counts.lines += 1
    counts.parts += len(parts)
    return parts


def sentences(texts: Iterable[str], escapes: Escapes, max_bytes: int, counts: SplitCount) -> Iterator[str]:
    """Yield the training sentences: whole escaped documents, or lines when newline is not escaped."""
    for text in texts:
        lines = [escapes.apply(text)] if escapes.newline else escapes.apply(text).split("\n")
        for line in lines:
            if line:
                yield from split_long(line, max_bytes, counts)


def count_pretokens(texts: Iterable[str], escapes: Escapes, max_bytes: int) -> tuple[Counter, SplitCount]:
    """Return how often each pre-token (a word minus its first space) occurs, and the split count."""
    counts: Counter = Counter()
    split = SplitCount()
    for sentence in sentences(texts, escapes, max_bytes, split):
        words = _WORD.findall(sentence)
        counts[words[0]] += 1  # the dummy prefix is this word's extra space: keep its own spaces
        for word in words[1:]:
            counts[word[1:]] += 1
    return counts, split


def count_pretokens_parallel(
    texts: list[str], escapes: Escapes, max_bytes: int, chunks: int
) -> tuple[Counter, SplitCount]:
    """Count pre-tokens in `chunks` Ray tasks (Ray is started locally when not running) and add them up."""
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    task = ray.remote(count_pretokens)
    step = max(1, -(-len(texts) // chunks))
    refs = [task.remote(texts[i : i + step], escapes, max_bytes) for i in range(0, len(texts), step)]
    total: Counter = Counter()
    split = SplitCount()
    for part, part_split in ray.get(refs):
        total.update(part)
        split.lines += part_split.lines
        split.parts += part_split.parts
    return total, split
