"""Normalised words and the keys of word windows: what the index holds and what a document is looked up by.

A word is a maximal run of characters that are alphanumeric (`str.isalnum`) once lower-cased; everything else
(punctuation, whitespace, `_`) only separates words, so case, spacing, line breaks and punctuation never
change a word sequence. Case is folded per character by its simple lower-case mapping (`"İ"` → `"i"`, `"Σ"`
→ `"σ"` anywhere), so each word keeps its character offsets in the original text.

A word's hash is FNV-1a over its first 64 lower-cased code points, finished with its full length and a
64-bit mix. The key of a window of `k` words w_i … w_{i+k-1} is mix(Σ_t hash(w_{i+t})·B^t ⊕ k·C), never 0.
`_keys.c` computes the same in C (`words`, and `probe`, which rolls every window's key and looks it up);
this module falls back to Python and numpy where it was not built, with the same results.
"""

from __future__ import annotations

import re

import numpy as np

try:
    from gristmill.pipelines.decontam import _keys
except ImportError:  # no compiler where gristmill was installed: the same results, slower
    _keys = None

NATIVE = _keys is not None
NORMALISATION = 1  # the version of the words and keys defined here; an index records it

_MASK = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_LENGTH_MIX = 0x9E3779B97F4A7C15
_BASE = 0x9E3779B97F4A7C15
_WINDOW_MIX = np.uint64(0xD6E8FEB86659FD93)
_HASHED_CHARS = 64
# str.lower() differs from the per-character simple mapping only here: "İ" (full mapping "i̇", two
# characters) and a final "Σ" ("ς"); a test checks every code point against the C module.
_SIMPLE_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})
_WORD = re.compile(r"[^\W_]+")
_cache: dict[str, int] = {}
_CACHE_LIMIT = 1 << 20


def _fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK
    return h ^ (h >> 33)


def _word_hash(word: str) -> int:
    h = _FNV_OFFSET
    for ch in word[:_HASHED_CHARS]:
        h = ((h ^ ord(ch)) * _FNV_PRIME) & _MASK
    return _fmix64(h ^ ((len(word) * _LENGTH_MIX) & _MASK))


def _words_python(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lowered = text.translate(_SIMPLE_LOWER).lower()
    spans = [m.span() for m in _WORD.finditer(lowered)]
    if len(_cache) > _CACHE_LIMIT:
        _cache.clear()
    hashes = []
    for start, end in spans:
        word = lowered[start:end]
        h = _cache.get(word)
        if h is None:
            h = _cache[word] = _word_hash(word)
        hashes.append(h)
    bounds = np.array(spans, dtype=np.int64).reshape(-1, 2)
    return np.array(hashes, dtype=np.uint64), bounds[:, 0].copy(), bounds[:, 1].copy()


def words(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the normalised words of `text`: their uint64 hashes, and int64 start and end offsets."""
    if _keys is None:
        return _words_python(text)
    hashes, starts, ends = _keys.words(text)
    return (
        np.frombuffer(hashes, dtype=np.uint64),
        np.frombuffer(starts, dtype=np.int64),
        np.frombuffer(ends, dtype=np.int64),
    )


def word_list(text: str) -> list[str]:
    """Return the normalised words of `text` as strings (for people and tests; the index uses hashes)."""
    return _WORD.findall(text.translate(_SIMPLE_LOWER).lower())


def _powers(base: int, count: int) -> np.ndarray:
    factors = np.full(count, base, dtype=np.uint64)
    if count:
        factors[0] = 1
    with np.errstate(over="ignore"):
        return np.multiply.accumulate(factors, dtype=np.uint64)


def _inverse(base: int) -> int:
    x = base
    for _ in range(6):  # Newton's iteration modulo 2^64: each step doubles the correct low bits
        x = (x * (2 - base * x)) & _MASK
    return x


def _fmix64_array(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xFF51AFD7ED558CCD)
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xC4CEB9FE1A85EC53)
        return h ^ (h >> np.uint64(33))


def span_keys(hashes: np.ndarray, starts: np.ndarray, lengths: np.ndarray | int) -> np.ndarray:
    """Return the uint64 key of each window `hashes[start : start + length]` (all inside `hashes`)."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.broadcast_to(np.asarray(lengths, dtype=np.int64), starts.shape)
    if not len(starts):
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(hashes) + 1, dtype=np.uint64)
        np.cumsum(hashes * _powers(_BASE, len(hashes)), dtype=np.uint64, out=prefix[1:])
        sums = (prefix[starts + lengths] - prefix[starts]) * _powers(_inverse(_BASE), len(hashes) + 1)[starts]
        keys = _fmix64_array(sums ^ (lengths.astype(np.uint64) * _WINDOW_MIX))
    keys[keys == 0] = 1
    return keys


def window_keys(hashes: np.ndarray, length: int) -> np.ndarray:
    """Return the uint64 key of every window of `length` words over word `hashes` (one per start word)."""
    return span_keys(hashes, np.arange(max(len(hashes) - length + 1, 0)), length)


def lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Return the slot of each key in the open-addressing `table` (linear probing), or -1 where absent."""
    mask = np.uint64(len(table) - 1)
    slots = keys & mask
    found = np.full(len(keys), -1, dtype=np.int64)
    pending = np.arange(len(keys))
    while pending.size:
        at = table[slots[pending]]
        hit = at == keys[pending]
        found[pending[hit]] = slots[pending[hit]].astype(np.int64)
        pending = pending[~hit & (at != 0)]
        slots[pending] = (slots[pending] + np.uint64(1)) & mask
    return found


def probe(
    hashes: np.ndarray, lengths: list[int], table: np.ndarray, long_bloom: np.ndarray, short_bloom: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (slot, first word, word count) of every window of `lengths` words (ascending; the last is the
    n-gram length, the others those of whole short texts) whose key is in `table`, by position then length.

    The Bloom filters only spare table lookups in C; the Python path looks every key up and finds the same."""
    lengths_array = np.asarray(lengths, dtype=np.int64)
    if _keys is not None:
        slots, positions, counts = _keys.probe(
            np.ascontiguousarray(hashes, dtype=np.uint64), lengths_array, table, long_bloom, short_bloom
        )
        return (
            np.frombuffer(slots, dtype=np.int64),
            np.frombuffer(positions, dtype=np.int64),
            np.frombuffer(counts, dtype=np.int64),
        )
    found_slots, found_positions, found_lengths = [], [], []
    for length in lengths_array:
        slots = lookup(table, window_keys(hashes, int(length)))
        where = np.flatnonzero(slots >= 0)
        found_slots.append(slots[where])
        found_positions.append(where.astype(np.int64))
        found_lengths.append(np.full(len(where), length, dtype=np.int64))
    slots, positions, counts = (np.concatenate(a) for a in (found_slots, found_positions, found_lengths))
    order = np.lexsort((counts, positions))
    return slots[order], positions[order], counts[order]
