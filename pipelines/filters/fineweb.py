"""FineWeb's extra quality rules (Penedo et al. 2024), with datatrove's semantics."""

from __future__ import annotations

from itertools import compress
from operator import itemgetter

import numpy as np

from gristmill.pipelines.config.filters import FineWebConfig
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.gopher_repetition import duplicate_stats
from gristmill.pipelines.filters.text_stats import SENTENCE_TERMINAL, batch_words, lengths

_last_char = itemgetter(-1)


class FineWebFilter(DocumentFilter):
    """Drops documents with few lines ending in punctuation, mostly short lines, repeated lines, or many
    line breaks per word (lists).

    Rules, in order (over the lines that are not blank): empty; line_punct_ratio (lines ending in a sentence
    terminal); short_line_ratio (lines of at most `short_line_length` characters); char_dup_ratio
    (characters in repeated lines over the text's non-newline characters); new_line_ratio (newlines per
    word).
    """

    name = "fineweb"

    def __init__(self, config: FineWebConfig | None = None) -> None:
        self.config = config or FineWebConfig()

    def check_batch(self, texts: list[str], paths: list[str | None] | None = None) -> list[str | None]:
        """Return None or "fineweb:<rule>" per text."""
        return [self._check(text) for text in texts]

    def _check(self, text: str) -> str | None:
        c = self.config
        all_lines = text.split("\n")
        lines = list(compress(all_lines, map(str.strip, all_lines)))
        if not lines:
            return self.reason("empty")
        # lines are not blank, so each has a last character; datatrove's stop characters are the sentence
        # terminals (its own list: it differs from Unicode's Sentence_Terminal in 19 rare characters)
        ending = len(SENTENCE_TERMINAL.findall("".join(map(_last_char, lines)))) / len(lines)
        if ending < c.line_punct_thr and not (ending == 0 and c.line_punct_exclude_zero):
            return self.reason("line_punct_ratio")
        if np.count_nonzero(lengths(lines) <= c.short_line_length) / len(lines) > c.short_line_thr:
            return self.reason("short_line_ratio")
        newlines = text.count("\n")
        if duplicate_stats(lines)[1] / (len(text) - newlines) > c.char_duplicates_ratio:
            return self.reason("char_dup_ratio")
        # Words are the costly part, so they are counted only when needed: every whitespace-separated chunk
        # gives at least one word, so a ratio within bounds over chunks is within bounds over words. The memo
        # has them when a rule set before this one split the text.
        if (
            newlines / len(text.split()) > c.new_line_ratio
            and newlines / len(batch_words([text])[0]) > c.new_line_ratio
        ):
            return self.reason("new_line_ratio")
        return None
