"""Text helpers shared by the rule sets: words as spaCy's English tokenizer cuts them, their classes, and
lengths and hashes of many strings at once.

The words are defined by a pattern (`word_pattern.py`, with its linear-time form); `_words.c` is the
speed. A chunk's words never depend on its neighbours, so the C half cuts the chunks of common ASCII shapes
itself (a word with its brackets, quotes, trailing marks and clitic; hyphenated words; numbers) and hands
the rest back in one call per document (`_chunk_words`), whose words it puts back in place; `word_counts`
classes the words for Gopher in the same module. Each C function is bound once to a Python twin with the
same signature (`gristmill.pipelines.native`), which gives the same result or raises the same error: where
no C compiler was found at install, the twins do it all (the split alone 5-8.5 MB/s against 27-38 on the
bench documents). tests/pipelines/test_words_native.py holds the two halves to each other and to the pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import regex

from gristmill.pipelines.filters.word_pattern import (
    _ABBREVIATIONS,
    _LETTER,
    _LONG_RUN,
    _MERGED_FORMS,
    _PREFIX,
    _SHORT_RUN,
    _SPLIT_WORD_SET,
    _SUFFIX,
    pattern_words,
    twin_words,
)
from gristmill.pipelines.native import bind, extension

__all__ = [
    "SENTENCE_TERMINAL",
    "batch_words",
    "clear_batch_words",
    "lengths",
    "pattern_words",
    "string_hashes",
    "word_classes",
    "word_counts",
    "words",
]

# Characters datatrove counts as punctuation: ASCII and typographic punctuation, control characters and
# sentence terminals; a word made only of these is a "symbol" word for Gopher's rules.
_PUNCTUATION_CHARS = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "—–“”‘’„«»´…►∶━"
    "、。，；：？！（）【】「」《》〈〉％．～"
    + "".join(map(chr, [*range(0, 9), *range(11, 13), *range(14, 32), *range(127, 160)]))
)
SENTENCE_TERMINAL = regex.compile(r"\p{Sentence_Terminal}")
_HAS_LETTER = re.compile(_LETTER)


def _is_punctuation(ch: str) -> bool:
    return ch in _PUNCTUATION_SET or SENTENCE_TERMINAL.match(ch) is not None


def _is_letter(ch: str) -> bool:
    return _HAS_LETTER.match(ch) is not None


_PUNCTUATION_SET = frozenset(_PUNCTUATION_CHARS)
_ASCII_PUNCTUATION = np.array([_is_punctuation(chr(i)) for i in range(128)])
_ASCII_LETTER = np.array([_is_letter(chr(i)) for i in range(128)])


def _ascii_matching(char_class: str) -> str:
    """Return the ASCII characters in the regex character class `char_class`."""
    pattern = re.compile(f"[{char_class}]")
    return "".join(ch for ch in map(chr, range(128)) if pattern.match(ch))


# The words of chunks the C half leaves to the pattern (">>>", "e.g.", "object’s", table rules…): they recur
# across documents, so each is cut once. Bounded: cleared when full, and long chunks are not kept.
_CHUNK_CACHE_SIZE = 1 << 16
_CHUNK_CACHE_LONGEST = 64
_chunk_cache: dict[str, list[str]] = {}


def _chunk_words(chunks: list[str] | tuple[str, ...]) -> list[str]:
    """Return the words of `chunks` laid end to end (a chunk's words never depend on its neighbours)."""
    out: list[str] = []
    cache = _chunk_cache
    for chunk in chunks:
        tokens = cache.get(chunk)
        if tokens is None:
            # `chunk_words`, inlined (a call less per chunk): the definition where it is linear
            short = len(chunk) <= _SHORT_RUN or _LONG_RUN.search(chunk) is None
            tokens = pattern_words(chunk) if short else twin_words(chunk)
            if len(chunk) <= _CHUNK_CACHE_LONGEST:
                if len(cache) >= _CHUNK_CACHE_SIZE:
                    cache.clear()
                cache[chunk] = tokens
        out += tokens
    return out


def _owned(items: list | tuple, function: str) -> list | tuple:
    """Return `items`, or raise the TypeError the C half raises for anything but a list or tuple."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"{function}() expected a list or tuple, not {type(items).__name__}")
    return items


# The Python twins of the C functions: same parameters, same results, same errors.


def _split_words(text: str, /) -> list[str]:
    """Twin of `_words.words`: the pattern's words of `text`, chunk by chunk."""
    if not isinstance(text, str):
        raise TypeError(f"words() takes a str, not {type(text).__name__}")
    return _chunk_words(text.split())


def _count_words(tokens: list[str] | tuple[str, ...], /) -> tuple[int, int, int]:
    """Twin of `_words.word_counts`, from `word_classes`."""
    tokens = _owned(tokens, "word_counts")
    if not tokens:
        return 0, 0, 0
    sizes, symbol, letter = word_classes(tokens)
    return int(symbol.sum()), int(letter.sum()), int(sizes[~symbol].sum())


def _item_lengths(items: list | tuple, /) -> bytearray:
    """Twin of `_words.lengths`: len() of each item as native int64s."""
    items = _owned(items, "lengths")
    return bytearray(np.fromiter(map(len, items), dtype=np.int64, count=len(items)))


def _item_hashes(items: list | tuple, /) -> bytearray:
    """Twin of `_words.hashes`: hash() of each item as native int64s."""
    items = _owned(items, "hashes")
    return bytearray(np.fromiter(map(hash, items), dtype=np.int64, count=len(items)))


@lru_cache(maxsize=1 << 16)
def _classify_short(word: str) -> tuple[bool, bool]:
    return all(map(_is_punctuation, word)), any(map(_is_letter, word))


_CLASSIFY_CACHE_LONGEST = 64  # longer words are classed each time: a cache must not keep a document alive


def _classify_word(word: str) -> tuple[bool, bool]:
    """Return (made only of punctuation, holds a letter) for one word."""
    if len(word) <= _CLASSIFY_CACHE_LONGEST:
        return _classify_short(word)
    return all(map(_is_punctuation, word)), any(map(_is_letter, word))


def _configuration() -> dict[str, object]:
    """Return the C half's configuration, by `configure`'s parameter names: the pattern's own constants,
    the fallback for the chunks it leaves, and the classifier of non-ASCII words."""
    return {
        # a leading ' may open a clitic: left to the pattern
        "open": _ascii_matching(_PREFIX).replace("'", ""),
        "trail": _ascii_matching(_SUFFIX),
        "punctuation": "".join(ch for ch in map(chr, range(128)) if _is_punctuation(ch)),
        "merged": [form for form in _MERGED_FORMS if form.isascii()],
        "kept_dot": [word for word in (*_ABBREVIATIONS, "www") if word.isalpha()],
        "split": sorted(_SPLIT_WORD_SET),
        "fallback": _chunk_words,
        "classify": _classify_word,
    }


def _configure(module):
    """Configure the C half (when it was built) with `_configuration()`; return it."""
    if module is not None:
        module.configure(*_configuration().values())
    return module


_native = _configure(extension("gristmill.pipelines.filters._words"))
NATIVE = _native is not None  # whether `words` cuts the common chunks in C

words = bind(_native, "words", _split_words)
word_counts = bind(_native, "word_counts", _count_words)
_lengths = bind(_native, "lengths", _item_lengths)
_hashes = bind(_native, "hashes", _item_hashes)


def lengths(items: list | tuple) -> np.ndarray:
    """Return the lengths of `items` (strings or lists) as a writable int64 array."""
    return np.frombuffer(_lengths(items), dtype=np.int64)


def string_hashes(items: list[str] | tuple[str, ...]) -> np.ndarray:
    """Return Python's hash of each string of `items` as an int64 array (equal strings, equal hashes)."""
    return np.frombuffer(_hashes(items), dtype=np.int64)


class _WordMemo:
    """The words of the texts split last, by identity of the text (held, so that its id cannot be reused):
    the rule sets of a chain judge the same strings one after another, so each is split once. Bounded in
    texts and characters, oldest out first; a text over an eighth of the bound is never kept."""

    def __init__(self, max_texts: int, max_chars: int) -> None:
        self.max_texts, self.max_chars = max_texts, max_chars
        self._entries: dict[int, tuple[str, list[str]]] = {}
        self._chars = 0

    def words(self, texts: list[str]) -> list[list[str]]:
        """Return `words(text)` for each text, from the memo where it holds the text."""
        out = []
        for text in texts:
            hit = self._entries.get(id(text))
            if hit is not None and hit[0] is text:
                out.append(hit[1])
                continue
            tokens = words(text)
            out.append(tokens)
            if len(text) <= self.max_chars // 8:
                self._keep(text, tokens)
        return out

    def _keep(self, text: str, tokens: list[str]) -> None:
        # Counted before inserting and after removing: interrupted anywhere (the time guard raises where it
        # likes), the count errs high, which only makes the memo keep less.
        entries = self._entries
        self._chars += len(text)
        entries[id(text)] = (text, tokens)
        while len(entries) > self.max_texts or self._chars > self.max_chars:
            oldest = next(iter(entries))
            removed = entries.pop(oldest)[0]
            self._chars -= len(removed)

    def clear(self) -> None:
        """Forget every text."""
        self._entries = {}
        self._chars = 0


# Four batches of 256 documents; 8M characters (about 8-30 MB of text and its words held at most).
_memo = _WordMemo(max_texts=1024, max_chars=1 << 23)


def batch_words(texts: list[str]) -> list[list[str]]:
    """Return `words(text)` for each text, reusing the words of texts (the same objects) split lately."""
    return _memo.words(texts)


def clear_batch_words() -> None:
    """Forget the memo of split texts and the cut chunks (a task's end; benchmarks' rounds start cold)."""
    _memo.clear()
    _chunk_cache.clear()


def _char_flags(points: np.ndarray, ascii_table: np.ndarray, predicate) -> np.ndarray:
    """Return predicate(chr(p)) for each code point: ASCII by table, others once per distinct character."""
    flags = np.zeros(len(points), dtype=bool)
    ascii_mask = points < 128
    flags[ascii_mask] = ascii_table[points[ascii_mask]]
    if not ascii_mask.all():
        others = points[~ascii_mask]
        distinct, inverse = np.unique(others, return_inverse=True)
        answers = np.fromiter(map(predicate, map(chr, distinct.tolist())), dtype=bool, count=len(distinct))
        flags[~ascii_mask] = answers[inverse]
    return flags


def word_classes(tokens: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (lengths, symbol, has_letter) per word of a non-empty list: its length; whether it is made only
    of punctuation (Gopher's "symbol" words; an empty word is); whether it holds a letter. Computed over the
    code points of the joined words with numpy, one segment per word."""
    try:
        joined = "".join(tokens)
    except TypeError:
        raise TypeError("words must be str") from None
    if joined.isascii():  # most documents: one byte per character, both flags by table
        points = np.frombuffer(joined.encode(), dtype=np.uint8)
        punctuation, letters = _ASCII_PUNCTUATION[points], _ASCII_LETTER[points]
    else:  # lone surrogates are characters too
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        punctuation = _char_flags(points, _ASCII_PUNCTUATION, _is_punctuation)
        letters = _char_flags(points, _ASCII_LETTER, _is_letter)
    sizes = lengths(tokens)
    symbol, letter = np.ones(len(sizes), dtype=bool), np.zeros(len(sizes), dtype=bool)
    filled = sizes > 0
    if filled.any():
        starts = (np.cumsum(sizes) - sizes)[filled]
        symbol[filled] = np.logical_and.reduceat(punctuation, starts)
        letter[filled] = np.logical_or.reduceat(letters, starts)
    return sizes, symbol, letter
