"""Synthetic documents with planted near-duplicate pairs of known Jaccard similarity (for tests and bench).

A pair is a random document and a copy with some words replaced by fresh random words; its true similarity is
the Jaccard index of the two documents' word-shingle sets, computed exactly with the same word split as the
MinHash (lowercase `\\w+`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\w+")


def shingle_set(text: str, n: int) -> set[tuple[str, ...]]:
    """Return the set of word n-grams of `text` (one shingle of all words when there are fewer than n)."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str, n: int) -> float:
    """Return the true Jaccard similarity of two texts' word n-gram sets."""
    sa, sb = shingle_set(a, n), shingle_set(b, n)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


@dataclass(frozen=True)
class PlantedPair:
    """An original text, its edited copy, and their true shingle Jaccard similarity."""

    original: str
    copy: str
    similarity: float


class TextMaker:
    """Makes random word documents from a fixed vocabulary of pronounceable-ish words, seeded."""

    def __init__(self, seed: int = 0, vocabulary: int = 50_000) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lengths = self.rng.integers(3, 10, size=vocabulary)
        self.vocabulary = ["".join(self.rng.choice(letters, size=k)) for k in lengths]

    def words(self, count: int) -> list[str]:
        """Return `count` random words."""
        return [self.vocabulary[i] for i in self.rng.integers(0, len(self.vocabulary), size=count)]

    def document(self, words: int) -> str:
        """Return a random document of `words` words in lines of about 12 words."""
        w = self.words(words)
        return "\n".join(" ".join(w[i : i + 12]) for i in range(0, len(w), 12))

    def edited(self, text: str, edits: int) -> str:
        """Return `text` with `edits` words (at distinct random places) replaced by fresh random words."""
        words = text.split()
        places = self.rng.choice(len(words), size=min(edits, len(words)), replace=False)
        for place, word in zip(places, self.words(len(places))):
            words[place] = word
        return " ".join(words)

    def pair(self, words: int, edits: int, shingle_size: int) -> PlantedPair:
        """Return a planted pair made with `edits` word replacements."""
        original = self.document(words)
        copy = self.edited(original, edits)
        return PlantedPair(original, copy, jaccard(original, copy, shingle_size))

    def pairs(self, count: int, words: int, edits: tuple[int, int], shingle_size: int) -> list[PlantedPair]:
        """Return `count` pairs whose edit counts are spread uniformly over the inclusive range `edits`."""
        return [
            self.pair(words, int(e), shingle_size)
            for e in self.rng.integers(edits[0], edits[1] + 1, size=count)
        ]
