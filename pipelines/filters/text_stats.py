"""Text helpers shared by the rule sets: words as spaCy's English tokenizer cuts them, and their classes.

datatrove's English filters count words with spaCy (`spacy.blank("en")`), which is most of their cost. Our
`words` gives nearly the same tokens with one compiled regular expression over the whole document:

- whitespace separates chunks; leading punctuation (brackets, quotes, `#`, `*`, `_`, `$`…) splits off one
  character at a time, trailing punctuation likewise, a final `.` only after a lowercase letter, a digit or
  two capitals (so `U.S.`, `F.` and `e.g.` stay whole);
- inside a chunk it splits where spaCy's infixes do: `...`, hyphens and `:<>=/` between letters, commas
  between letters, `.` between a lowercase and a capital letter, arithmetic signs between digits;
- clitics split off the end: `'s`, `n't`, `'re`, `'ve`, `'ll`, `'m`, `'d`; a number loses a trailing unit,
  currency sign or `%` (`10km`, `5$`, `20%`); URLs stay whole.

- words spaCy splits though written without an apostrophe ("dont", "cannot") and the emoticons it merges
  ("):", "''") follow spaCy too.

What it leaves out (spaCy's other exception spellings, rarer emoticons, non-Latin rules) shifts a document's
counts by a token or two: on the reference documents 97% of documents get exactly spaCy's tokens and 35 of
144,138 tokens differ; docs/filters.md gives the measured agreement of the decisions.

The pattern is the definition; `_words.c` is the speed. A chunk's words never depend on its neighbours, so
the C half cuts the chunks of common ASCII shapes itself (a word with its brackets, quotes, trailing marks
and clitic; hyphenated words; numbers) and hands the rest to the pattern in one call per document, whose
words it puts back in place; `word_counts` classes the words for Gopher in the same module. Both give
exactly what the pattern and `word_classes` give (tests/pipelines/test_words_native.py); without a C
compiler at install the pattern does it all (the split alone 5-8.5 MB/s against 27-38 on the bench documents).
"""

from __future__ import annotations

import re
from functools import lru_cache
from types import ModuleType

import numpy as np
import regex

# spaCy's prefix and suffix punctuation (one character per token), and the ones only at the start.
_EDGE = r"""…,:;!?¿¡()\[\]{}<>_#*&'"”“`‘´’‚„»«。？！，、；：～·（）【】《》「」『』〈〉"""
_PREFIX = _EDGE + r"§%=—–$£€¥"
_SUFFIX = _EDGE + r".—–"
_CLITIC = r"(?:n['’]t|['’](?:[sS]|m|re|ve|ll|d))"
_UNIT = r"(?<=[0-9])(?:[$£€¥%+]|km|cm|mm|m|kg|mg|g|lb|oz|ft|yd|mph|kb|KB|MB|GB|TB|K|M|G|T)"
_LETTER = r"[^\W\d_]"
_INFIX = (
    rf"(?<=[0-9])[+\-*^](?=[0-9-])"
    rf"|(?<=[a-z'\"])\.(?=[A-Z'\"])"
    rf"|(?<={_LETTER}),(?={_LETTER})"
    rf"|(?<=[^\W_])(?:---|--|-|–|—|~)(?={_LETTER})"
    rf"|(?<=[^\W_])[:<>=/](?={_LETTER})"
    rf"|\.\.+|…"
)
# Where a chunk's core ends: before its trailing clitic, unit and punctuation, or before an infix.
# A final "." splits off unless it follows a lone capital ("I/O.", "F."), as spaCy's suffix rule has it.
_TRAIL = rf"(?:[{_EDGE}—–]|(?:(?<=[A-Z][A-Z])|(?<![A-Z]))\.)*"
_CORE_END = rf"(?:{_CLITIC}|{_UNIT})?{_TRAIL}(?:\s|$)|{_INFIX}"
_CHUNK_END = rf"(?=[{_SUFFIX}]*(?:\s|$))"
_CHUNK_START = rf"(?<![^\s{_PREFIX}])"
# Words spaCy splits though written without an apostrophe ("dont" -> "do", "nt"): word -> length of the first.
_SPLIT_WORDS = {
    "cannot": 3,
    "gonna": 3,
    "gotta": 3,
    "dont": 2,
    "doesnt": 4,
    "didnt": 3,
    "isnt": 2,
    "arent": 3,
    "wasnt": 3,
    "werent": 4,
    "cant": 2,
    "couldnt": 5,
    "wouldnt": 5,
    "shouldnt": 6,
    "wont": 2,
    "hasnt": 3,
    "havent": 4,
    "hadnt": 3,
    "aint": 2,
    "im": 1,
    "ive": 1,
    "id": 1,
    "hes": 2,
    "shes": 3,
    "whats": 4,
    "thats": 4,
    "theres": 5,
    "hows": 3,
    "youre": 3,
    "theyre": 4,
}
_SPLIT_WORD_SET = frozenset([*_SPLIT_WORDS, *map(str.capitalize, _SPLIT_WORDS)])
# Emoticons and quotes spaCy merges back into one token ("):" in "def f():", "''"); "8)" is left out, as
# it would cost every number a check.
_MERGED_FORMS = ("):", "(:", ":)", ":(", ";)", ":-)", ":]", "[:", ":*", "''")
_MERGED = "|".join(map(re.escape, _MERGED_FORMS))

# Abbreviations that keep their final "." (alternatives in this order: "Sep" before "Sept").
_ABBREVIATIONS = (
    *("Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Rev", "Gen", "Gov", "Sen", "Rep", "Inc", "Ltd"),
    *("Co", "Corp", "Bros", "vs", "Mt", "Ph.D", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep"),
    *("Sept", "Oct", "Nov", "Dec"),
)

_COMMON = (
    # a plain word or number not followed by "." (most words), then lone punctuation: the common cases first
    rf"(?:{_LETTER}+|[0-9]+)(?=\s|$|[{_EDGE}][{_SUFFIX}]*(?:\s|$))"
    rf"|{_MERGED}|\.\.+|…"  # a merged emoticon or quote, an ellipsis
    rf"|(?!{_CLITIC})[{_PREFIX}]|\.(?=[{_SUFFIX}]*(?:\s|$))"
    rf"|(?:https?://|www\.)\S*?{_CHUNK_END}"  # a URL, less trailing punctuation
    rf"|(?<=\S){_CLITIC}{_CHUNK_END}"  # a clitic that ends a chunk
    rf"|{_UNIT}{_CHUNK_END}"  # a number's unit
    rf"|{_INFIX}"
    rf"|{_CHUNK_START}(?:[A-Za-z]\.)+{_CHUNK_END}"  # U.S., e.g., F., a.
    rf"|{_CHUNK_START}(?:{'|'.join(map(re.escape, _ABBREVIATIONS))})\.{_CHUNK_END}"  # abbreviations
    # a chunk's core ("+" starts one only before a digit)
    rf"|and/or|(?!\+[^0-9])[^\s{_PREFIX}]\S*?(?={_CORE_END})"
    rf"|\S"  # any other character at a chunk's edge
)
# "(?=\S)" lets the matcher skip whitespace without trying every alternative there (measured: 1.5x faster).
_FAST_WORDS = re.compile(rf"(?=\S)(?:{_COMMON})")
_FULL_WORDS = re.compile(
    r"(?=\S)(?:"
    + _CHUNK_START
    + "(?:"
    + "|".join(
        rf"{w[:k]}(?={w[k:]}{_CHUNK_END})"
        for word, k in _SPLIT_WORDS.items()
        for w in (word, word.capitalize())
    )
    + ")|"
    + _COMMON
    + ")"
)

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


def pattern_words(text: str) -> list[str]:
    """Return the words of `text` as the regular expressions above cut them (what `words` returns)."""
    tokens = _FAST_WORDS.findall(text)
    # The rare documents with a word like "dont" or "cannot" take the slower pattern that splits them.
    if not _SPLIT_WORD_SET.isdisjoint(tokens):
        return _FULL_WORDS.findall(text)
    return tokens


def _ascii_matching(char_class: str) -> str:
    """Return the ASCII characters in the regex character class `char_class`."""
    pattern = re.compile(f"[{char_class}]")
    return "".join(ch for ch in map(chr, range(128)) if pattern.match(ch))


def _configure_native() -> ModuleType | None:
    """Import the C chunk cutter (built with the package; absent when no compiler was found) and hand it the
    pattern's own constants, or return None to cut every chunk with the pattern."""
    try:
        from gristmill.pipelines.filters import _words
    except ImportError:
        return None
    _words.configure(
        _ascii_matching(_PREFIX).replace("'", ""),  # a leading ' may open a clitic: left to the pattern
        _ascii_matching(_SUFFIX),
        "".join(ch for ch in map(chr, range(128)) if _is_punctuation(ch)),
        [form for form in _MERGED_FORMS if form.isascii()],
        [word for word in (*_ABBREVIATIONS, "www") if word.isalpha()],
        sorted(_SPLIT_WORD_SET),
    )
    return _words


_native = _configure_native()
NATIVE = _native is not None  # whether `words` cuts the common chunks in C


# The words of chunks the C half leaves to the pattern (">>>", "e.g.", "object’s", table rules…): they recur
# across documents, so each is cut once. Bounded: cleared when full, and long chunks are not kept.
_CHUNK_CACHE_SIZE = 1 << 16
_CHUNK_CACHE_LONGEST = 64
_chunk_cache: dict[str, list[str]] = {}


def _chunk_words(chunks: list[str]) -> list[str]:
    """Return the words of `chunks` laid end to end (a chunk's words never depend on its neighbours)."""
    out: list[str] = []
    cache = _chunk_cache
    for chunk in chunks:
        tokens = cache.get(chunk)
        if tokens is None:
            tokens = pattern_words(chunk)
            if len(chunk) <= _CHUNK_CACHE_LONGEST:
                if len(cache) >= _CHUNK_CACHE_SIZE:
                    cache.clear()
                cache[chunk] = tokens
        out += tokens
    return out


def words(text: str) -> list[str]:
    """Return the words of `text` as datatrove's English `split_into_words` (spaCy) would, nearly."""
    if _native is not None:
        return _native.words(text, _chunk_words)
    return pattern_words(text)


# The words of the last batch, by id of the text (the text is held so its id cannot be reused): the rule sets
# run one after another on the same strings, so each document is cut into words once.
_batch_words: dict[int, tuple[str, list[str]]] = {}


def batch_words(texts: list[str]) -> list[list[str]]:
    """Return `words(text)` for each text, reusing those of the previous batch's texts (same objects)."""
    global _batch_words
    previous, current = _batch_words, {}
    out = []
    for text in texts:
        hit = previous.get(id(text))
        tokens = hit[1] if hit is not None and hit[0] is text else words(text)
        current[id(text)] = (text, tokens)
        out.append(tokens)
    _batch_words = current
    return out


def cached_words(text: str) -> list[str]:
    """Return `words(text)`, reusing those kept from the last `batch_words` call when it held this text."""
    hit = _batch_words.get(id(text))
    return hit[1] if hit is not None and hit[0] is text else words(text)


def clear_batch_words() -> None:
    """Forget the last batch's words and the cut chunks (for benchmarks: each round starts cold)."""
    global _batch_words
    _batch_words = {}
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


def word_classes(tokens: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (lengths, symbol, has_letter) per word of a non-empty list: its length; whether it is made only
    of punctuation (Gopher's "symbol" words); whether it holds a letter. Computed over the code points of
    the joined words with numpy, one segment per word."""
    joined = "".join(tokens)
    if joined.isascii():  # most documents: one byte per character, both flags by table
        points = np.frombuffer(joined.encode(), dtype=np.uint8)
        punctuation, letters = _ASCII_PUNCTUATION[points], _ASCII_LETTER[points]
    else:
        points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        punctuation = _char_flags(points, _ASCII_PUNCTUATION, _is_punctuation)
        letters = _char_flags(points, _ASCII_LETTER, _is_letter)
    sizes = lengths(tokens)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return sizes, np.logical_and.reduceat(punctuation, starts), np.logical_or.reduceat(letters, starts)


@lru_cache(maxsize=1 << 16)
def _classify_word(word: str) -> tuple[bool, bool]:
    """Return (made only of punctuation, holds a letter) for one word."""
    return all(map(_is_punctuation, word)), any(map(_is_letter, word))


def word_counts(tokens: list[str]) -> tuple[int, int, int]:
    """Return, over `tokens`, the words made only of punctuation (Gopher's "symbol" words), the words holding
    a letter, and the characters of the words that are not only punctuation."""
    if _native is not None:
        return _native.word_counts(tokens, _classify_word)
    if not tokens:
        return 0, 0, 0
    sizes, symbol, letter = word_classes(tokens)
    return int(symbol.sum()), int(letter.sum()), int(sizes[~symbol].sum())


def lengths(items: list) -> np.ndarray:
    """Return the lengths of `items` (strings or lists) as an int64 array."""
    if _native is not None and type(items) is list:  # a C loop, not a Python call per item (measured 10x)
        return np.frombuffer(_native.lengths(items), dtype=np.int64)
    return np.fromiter(map(len, items), dtype=np.int64, count=len(items))


def string_hashes(items: list[str]) -> np.ndarray:
    """Return Python's hash of each string of `items` as an int64 array (equal strings, equal hashes)."""
    if _native is not None:
        return np.frombuffer(_native.hashes(items), dtype=np.int64)
    return np.fromiter(map(hash, items), dtype=np.int64, count=len(items))
