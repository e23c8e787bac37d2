"""Gopher's quality rules (Rae et al. 2021, appendix A) on whole documents, with datatrove's semantics."""

from __future__ import annotations

import re
from itertools import repeat

from gristmill.pipelines.config.filters import GopherQualityConfig
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.text_stats import batch_words, word_counts

STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
_BULLETS = ("•", "-")
_ELLIPSES = ("...", "…")
# A whitespace-separated chunk holding a letter: anchored at the chunk's start, so each counts once.
_LETTER_CHUNK = re.compile(r"(?<!\S)\S*?[^\W\d_]")


class GopherQualityFilter(DocumentFilter):
    """Drops documents with too few or too many words, odd mean word length, many hashes, ellipses or
    bullet lines, too few words with letters, or too few stop words. A threshold of 0 turns its rule off.

    Rules, in order: min_doc_words, max_doc_words (words that are not only punctuation),
    min_avg_word_length, max_avg_word_length (over those words), hash_ratio, ellipsis_ratio (per word),
    bullet_lines, ellipsis_lines (fraction of lines), alpha_words (fraction of words with a letter: of
    spaCy's tokens as datatrove counts them, or of whitespace-separated words with
    `alpha_words: whitespace`, as the Gopher paper defines it), stop_words (distinct stop words present,
    case-sensitive as datatrove).
    """

    name = "gopher_quality"

    def __init__(self, config: GopherQualityConfig | None = None) -> None:
        self.config = config or GopherQualityConfig()

    def check_batch(self, texts: list[str], paths: list[str | None] | None = None) -> list[str | None]:
        """Return None or "gopher_quality:<rule>" per text."""
        return [self._check(text, tokens) for text, tokens in zip(texts, batch_words(texts))]

    def _check(self, text: str, tokens: list[str]) -> str | None:
        c = self.config
        n_words = len(tokens)
        if n_words == 0:
            # datatrove drops it as too short, or divides by zero when that rule is off: we keep it then
            return self.reason("min_doc_words") if c.min_doc_words else None
        n_symbol, n_letter, content_chars = word_counts(tokens)
        n_content = n_words - n_symbol
        if c.min_doc_words and n_content < c.min_doc_words:
            return self.reason("min_doc_words")
        if c.max_doc_words and n_content > c.max_doc_words:
            return self.reason("max_doc_words")
        if n_content:  # no content words: datatrove's mean is NaN and both comparisons are false
            mean_length = content_chars / n_content
            if c.min_avg_word_length and mean_length < c.min_avg_word_length:
                return self.reason("min_avg_word_length")
            if c.max_avg_word_length and mean_length > c.max_avg_word_length:
                return self.reason("max_avg_word_length")
        if c.max_symbol_word_ratio:
            if text.count("#") / n_words > c.max_symbol_word_ratio:
                return self.reason("hash_ratio")
            if (text.count("...") + text.count("…")) / n_words > c.max_symbol_word_ratio:
                return self.reason("ellipsis_ratio")
        lines = text.splitlines()
        if c.max_bullet_lines_ratio:
            bullets = sum(map(str.startswith, map(str.lstrip, lines), repeat(_BULLETS)))
            if bullets / len(lines) > c.max_bullet_lines_ratio:
                return self.reason("bullet_lines")
        if c.max_ellipsis_lines_ratio:
            ellipses = sum(map(str.endswith, map(str.rstrip, lines), repeat(_ELLIPSES)))
            if ellipses / len(lines) > c.max_ellipsis_lines_ratio:
                return self.reason("ellipsis_lines")
        if (
            c.max_non_alpha_words_ratio
            and _alpha_share(text, n_letter, n_words, c.alpha_words) < c.max_non_alpha_words_ratio
        ):
            return self.reason("alpha_words")
        if c.min_stop_words and len(STOP_WORDS.intersection(tokens)) < c.min_stop_words:
            return self.reason("stop_words")
        return None


def _alpha_share(text: str, n_letter: int, n_words: int, definition: str) -> float:
    """Return the share of words holding a letter: of the tokens (`n_letter` of them do) or of the
    whitespace-separated words."""
    if definition == "whitespace":
        return len(_LETTER_CHUNK.findall(text)) / len(text.split())
    return n_letter / n_words
