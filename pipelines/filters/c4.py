"""C4's rules (Raffel et al. 2020) as a document-level decision: drop, never rewrite.

datatrove's `C4QualityFilter` deletes the lines that fail a line rule (no terminal punctuation, fewer than 3
words, a word over 1000 characters, "javascript", cookie or terms-of-use phrases) and keeps the rest; it drops
the whole document only for "lorem ipsum" or "{" on a line it would keep, or fewer than 5 sentences left.
We take exactly those three document decisions and leave the text as it is: rewriting documents belongs
to no filter of ours, and a document that loses lines is still counted as kept (docs/filters.md, "C4").
"""

from __future__ import annotations

import re
import unicodedata
from itertools import compress, repeat
from operator import contains

import numpy as np

from gristmill.pipelines.config.filters import C4Config
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.text_stats import SENTENCE_TERMINAL, words

_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_END_PUNCTUATION = (".", "?", "!", '"', "'")
_POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_POLICY = re.compile("|".join(_POLICY_PHRASES))
_WHITESPACE = re.compile(r"\s")


def count_sentences(line: str) -> int:
    """Return the sentences in `line` as spaCy's sentencizer counts them: a new one starts at the first
    word after a sentence-ending mark (quotes and brackets in between do not count as words)."""
    tokens = words(line)
    if not tokens:
        return 0
    terminal = np.fromiter(map(bool, map(SENTENCE_TERMINAL.fullmatch, tokens)), dtype=bool, count=len(tokens))
    punct = np.fromiter(map(_is_punct, tokens), dtype=bool, count=len(tokens))
    kinds = terminal[terminal | ~punct]  # True: an ending mark, False: a word; other punctuation is skipped
    return 1 + int(np.count_nonzero(kinds[:-1] & ~kinds[1:]))


def _may_hold_run(text: str, size: int) -> bool:
    """Return False when `text` cannot hold `size` characters without whitespace: such a run would cover a
    whole aligned window of (size + 1) // 2 characters, and every window holds whitespace. A few string
    searches per document instead of the regex trying every position (measured 30x faster on prose)."""
    step = (size + 1) // 2
    return any(
        _WHITESPACE.search(text, start, start + step) is None
        for start in range(0, len(text) - step + 1, step)
    )


def _is_punct(token: str) -> bool:
    return all(unicodedata.category(ch).startswith("P") for ch in token)


class C4Filter(DocumentFilter):
    """Drops documents that mention "lorem ipsum" or hold "{" on a line C4 keeps, or that keep fewer than
    `min_num_sentences` sentences once C4's line rules have removed lines.

    Rules: lorem_ipsum, curly_bracket (whichever line comes first), min_num_sentences.
    """

    name = "c4"

    def __init__(self, config: C4Config | None = None) -> None:
        self.config = config or C4Config()
        length = self.config.max_word_length
        # tried only where a run of non-space characters starts: a search for `\S{n}` alone would scan up to n
        # characters from every position of every run shorter than n (quadratic in the limit)
        self._long_word = re.compile(rf"(?<!\S)\S{{{length + 1}}}") if length != -1 else None

    def check_batch(self, texts: list[str], paths: list[str | None] | None = None) -> list[str | None]:
        """Return None or "c4:<rule>" per text."""
        return list(map(self._check, texts))

    def _check(self, text: str) -> str | None:
        c = self.config
        stripped = list(map(str.strip, text.splitlines()))
        joined = "\n".join(stripped)
        # datatrove removes citations after stripping a line and does not strip again: same here, in one pass
        lines = _CITATION.sub("", joined).split("\n") if "[" in joined else stripped
        keep = np.ones(len(lines), dtype=bool)
        if (
            self._long_word is not None
            and _may_hold_run(joined, c.max_word_length + 1)
            and self._long_word.search(joined)
        ):
            keep &= [max(map(len, line.split()), default=0) <= c.max_word_length for line in stripped]
        if c.filter_no_terminal_punct:
            keep &= np.fromiter(
                map(str.endswith, lines, repeat(_END_PUNCTUATION)), dtype=bool, count=len(lines)
            )
            keep &= ~np.fromiter(map(str.endswith, lines, repeat("...")), dtype=bool, count=len(lines))
        if c.min_words_per_line > 0:
            # at most min_words_per_line pieces: enough to tell, without a string per word of long lines
            pieces = map(str.split, stripped, repeat(None), repeat(c.min_words_per_line - 1))
            keep &= np.fromiter(map(len, pieces), dtype=np.int64, count=len(lines)) >= c.min_words_per_line
        kept = list(compress(lines, keep))
        lowered_text = "\n".join(kept).lower()
        lowered = lowered_text.split("\n") if kept else []
        drop = self._document_rule(kept, lowered, lowered_text)
        if drop is not None:
            return drop
        removed = np.zeros(len(kept), dtype=bool)
        if c.filter_javascript and "javascript" in lowered_text:
            removed |= np.fromiter(map(contains, lowered, repeat("javascript")), dtype=bool, count=len(kept))
        # a phrase found by str search first (4x the regex), then the lines that hold one
        if c.filter_policy and any(map(lowered_text.__contains__, _POLICY_PHRASES)):
            removed |= np.fromiter(map(bool, map(_POLICY.search, lowered)), dtype=bool, count=len(kept))
        kept = list(compress(kept, ~removed))
        if c.min_num_sentences == -1 or len(kept) >= c.min_num_sentences:
            return None  # every kept line holds at least one sentence
        if sum(map(count_sentences, kept)) < c.min_num_sentences:
            return self.reason("min_num_sentences")
        return None

    def _document_rule(self, kept: list[str], lowered: list[str], lowered_text: str) -> str | None:
        """Return the reason of the first kept line with "lorem ipsum" or (unless it mentions javascript,
        which removes the line first) "{"; None if there is none."""
        c = self.config
        lorem = c.filter_lorem_ipsum and "lorem ipsum" in lowered_text
        curly = c.filter_curly_bracket and "{" in lowered_text
        if not (lorem or curly):
            return None
        for line, low in zip(kept, lowered):
            if c.filter_lorem_ipsum and "lorem ipsum" in low:
                return self.reason("lorem_ipsum")
            if c.filter_javascript and "javascript" in low:
                continue
            if c.filter_curly_bracket and "{" in line:
                return self.reason("curly_bracket")
        return None
