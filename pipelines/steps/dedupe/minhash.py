"""Vectorised MinHash: words found and hashed in numpy, shingle keys, then fast similarity sketching.

Text → words: `\\w+` of the lowercased text. A batch's lowered texts are joined into one UTF-32 code point
array; a per-code-point table of `\\w` gives the word boundaries and each word is hashed by a polynomial over
its code points (prefix sums, no Python object per word). A shingle's key combines its `n` word hashes with
seeded odd multipliers. The signature has `bands * rows` bins filled by fast similarity sketching
(Dahlgaard, Knudsen & Thorup, FOCS 2017): each shingle is hashed once per round into one bin, round 0
being one-permutation hashing; about one hash per shingle in all instead of one per (shingle,
permutation), and a lower estimation variance than classic MinHash, most of all for short documents.
Documents with fewer words than a shingle have one shingle made of all their words; documents with no
word have no signature (only exact dedupe sees them).

`SIGNATURE_SCHEME` names the scheme; an index built by another one is refused by `dedupe.against`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import xxhash

from gristmill.pipelines.native import bind, extension
from gristmill.pipelines.steps.dedupe.nfc import nfc

SIGNATURE_SCHEME = "fss-v1"  # word polynomial hash, shingle keys, fast similarity sketching (2026-12)
_WORD = re.compile(r"\w+")
_P = np.uint64(0x9E37_79B9_7F4A_7C15)  # the word hash's polynomial base (odd)
_P_INVERSE = np.uint64(pow(int(_P), -1, 1 << 64))
_POWERS_CACHED = 1 << 20
_POWER_CACHE = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))
# Words hashed per block: the block's uint64 prefix sums (~8 bytes per character) stay in the L2 cache. A
# block spans at most _BLOCK_CHARS characters; a longer word is hashed window by window (`_long_word_hash`),
# so no array outgrows a block whatever the words.
_BLOCK_WORDS = 1 << 13
_BLOCK_CHARS = 1 << 16
# Characters of the texts processed at once by `signatures` (whole texts; bounds its scratch memory).
_GROUP_CHARS = 1 << 22
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFF_FFFF)
_MASK = (1 << 64) - 1
_EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # above every (round, value): a bin no shingle fell in yet
_ROUND_STEP = np.uint64(0x9E37_79B9_7F4A_7C15)  # added once per round to a shingle key before fmix64
# Shingle-rounds per numpy pass once only short documents are left (one round per pass before that).
_ROUND_HITS = 1 << 16


def fmix64(x: np.ndarray) -> np.ndarray:
    """Return MurmurHash3's 64-bit finaliser of `x` (uint64, elementwise; a bijection that mixes all bits)."""
    x = x ^ (x >> _S33)  # a new array: the rest is in place
    x *= _MIX1
    x ^= x >> _S33
    x *= _MIX2
    x ^= x >> _S33
    return x


@cache
def _word_characters() -> np.ndarray:
    """Return a bool per code point: does `\\w` match it (built once per process by the regex itself)."""
    everything = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(0x110000, dtype=bool)
    for match in _WORD.finditer(everything):
        table[match.start() : match.end()] = True
    return table


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (P^i, P^-i) mod 2^64 for i < n (at least), cached up to `_POWERS_CACHED` terms."""
    global _POWER_CACHE
    if _POWER_CACHE[0].size >= n:
        return _POWER_CACHE
    size = max(n, min(2 * _POWER_CACHE[0].size, _POWERS_CACHED))
    out = []
    for base in (_P, _P_INVERSE):
        terms = np.full(size, base, dtype=np.uint64)
        terms[0] = 1
        out.append(np.cumprod(terms, out=terms))
    if size <= _POWERS_CACHED:
        _POWER_CACHE = (out[0], out[1])
    return out[0], out[1]


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (a 64-bit hash per word of all texts, in order; the word count of each text).

    Words are the `\\w+` of the lowercased text, found and hashed in numpy with no Python object per word:
    the lowered texts are joined by newlines into one UTF-32 code point array, a table of `\\w` says which
    code points are word characters, and a word c_0…c_{m-1} hashes to fmix64(Σ c_j·P^j mod 2^64), taken
    from prefix sums of c_i·P^i over a block of words times P^-start (P odd, so invertible mod 2^64).
    """
    lowered = [text.lower() for text in texts]
    lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered))
    joined = "\n" + "\n".join(lowered) + "\n"
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    # Separators at both ends: word characters start and end in turn.
    is_word = np.take(_word_characters(), points, mode="clip")  # every code point is < 0x110000
    edges = np.nonzero(is_word[1:] != is_word[:-1])[0] + 1
    starts, ends = edges[0::2], edges[1::2]
    text_start = np.ones(len(lowered) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=text_start[1:])
    text_start[1:] += 1
    counts = np.diff(np.searchsorted(starts, text_start))
    hashes = np.empty(starts.size, dtype=np.uint64)
    first = 0
    while first < starts.size:
        lo = starts[first]
        last = min(first + _BLOCK_WORDS, int(np.searchsorted(ends, lo + _BLOCK_CHARS, "right")))
        if last == first:  # a word longer than a block
            hashes[first] = _long_word_hash(points[lo : ends[first]])
            first += 1
            continue
        s, e = starts[first:last], ends[first:last]
        powers, inverse = _powers(int(e[-1] - lo))
        prefix = np.empty(int(e[-1] - lo) + 1, dtype=np.uint64)
        prefix[0] = 0
        np.multiply(points[lo : e[-1]], powers[: prefix.size - 1], out=prefix[1:])
        np.cumsum(prefix, out=prefix)
        s = s - lo
        hashes[first:last] = (prefix[e - lo] - prefix[s]) * inverse[s]
        first = last
    return fmix64(hashes), counts


def _long_word_hash(points: np.ndarray) -> int:
    """Return Σ c_j·P^j mod 2^64 over the code points of one word, `_BLOCK_CHARS` of them at a time."""
    powers, _ = _powers(_BLOCK_CHARS + 1)
    step = int(powers[_BLOCK_CHARS])  # P^_BLOCK_CHARS: the weight of the next window's first character
    total, scale = 0, 1
    for at in range(0, points.size, _BLOCK_CHARS):
        window = points[at : at + _BLOCK_CHARS].astype(np.uint64)
        total = (total + scale * int(np.dot(window, powers[: window.size]))) & _MASK
        scale = scale * step & _MASK
    return total


def _squeeze(text: str, /) -> str:
    """Twin of `_spaces.squeeze`: `" ".join(text.split())`."""
    if not isinstance(text, str):
        raise TypeError(f"squeeze() takes a str, not {type(text).__name__}")
    return " ".join(text.split())


# the same in C, copying the characters once (the exact key measured 3.3x faster: 50 -> 165 MB/s)
squeeze_spaces = bind(extension("gristmill.pipelines.steps.dedupe._spaces"), "squeeze", _squeeze)


def exact_key(text: str) -> str:
    """Return the text as exact dedupe compares it: NFC, lowercase, whitespace runs made one space (in time
    linear in the text: `nfc`)."""
    return squeeze_spaces(nfc(text).lower())


def exact_hashes(texts: Sequence[str]) -> np.ndarray:
    """Return the xxh3-128 of each text's exact key as a (n, 2) uint64 array (high, low)."""
    out = np.empty((len(texts), 2), dtype=np.uint64)
    for i, text in enumerate(texts):
        # the key's UTF-8 (what xxhash hashes of a str), lone surrogates passed through rather than refused
        digest = xxhash.xxh3_128_intdigest(exact_key(text).encode("utf-8", "surrogatepass"))
        out[i, 0] = digest >> 64
        out[i, 1] = digest & 0xFFFF_FFFF_FFFF_FFFF
    return out


@dataclass(frozen=True)
class MinHasher:
    """MinHash signatures (fast similarity sketching) of `bands * rows` bins over word `shingle_size`-grams,
    seeded."""

    shingle_size: int = 5
    bands: int = 14
    rows: int = 8
    seed: int = 1

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)

        def odd(size: int) -> np.ndarray:
            return rng.integers(1, 1 << 63, size=size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)

        object.__setattr__(self, "_mult", odd(self.shingle_size))
        object.__setattr__(self, "_offset", odd(1)[0])
        object.__setattr__(self, "_band_mult", odd(self.rows))

    @property
    def num_perm(self) -> int:
        """Signature length (bins)."""
        return self.bands * self.rows

    def shingles(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return (64-bit shingle keys, per-document start offsets of length n+1).

        A shingle's key is Σ_k mult_k·(hash of its k-th word) + offset mod 2^64 (seeded odd multipliers);
        `signatures_from_shingles` hashes it further with fmix64.
        """
        words, counts = word_hashes(texts)
        total = words.size
        n = self.shingle_size
        word_start = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(counts, out=word_start[1:])
        # Full shingles: position i starts one when i + n <= its document's end.
        per_doc = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1))
        sh_start = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(per_doc, out=sh_start[1:])
        combined = np.zeros(max(total - n + 1, 0), dtype=np.uint64)
        for k in range(n if total >= n else 0):  # a batch with fewer than n words has no full shingle
            combined += words[k : total - n + 1 + k] * self._mult[k]
        long_docs = counts >= n
        long_counts = per_doc[long_docs]
        # Index of each full shingle's first word: its document's first word + its place in the document.
        firsts = np.repeat(word_start[:-1][long_docs], long_counts)
        firsts += np.arange(firsts.size, dtype=np.int64) - np.repeat(
            np.cumsum(long_counts) - long_counts, long_counts
        )
        out = np.empty(int(sh_start[-1]), dtype=np.uint64)
        is_long_shingle = np.repeat(long_docs, per_doc)
        out[is_long_shingle] = combined[firsts]
        short_docs = (counts > 0) & (counts < n)
        if short_docs.any():
            place = np.arange(total, dtype=np.int64) - np.repeat(word_start[:-1], counts)
            in_short = np.repeat(short_docs, counts)
            weighted = words[in_short] * self._mult[place[in_short]]
            seg = np.cumsum(counts[short_docs]) - counts[short_docs]
            out[~is_long_shingle] = np.add.reduceat(weighted, seg)
        out += self._offset
        return out, sh_start

    def signatures(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return (signatures (n, num_perm) uint32, has_signature (n,) bool) for a batch of texts."""
        sigs, has, group, chars = [], [], [], 0
        for text in [*texts, None]:
            if text is None or (group and chars + len(text) > _GROUP_CHARS):
                sig, ok = self.signatures_from_shingles(*self.shingles(group))
                sigs.append(sig)
                has.append(ok)
                group, chars = [], 0
            if text is not None:
                group.append(text)
                chars += len(text)
        return np.concatenate(sigs), np.concatenate(has)

    def signatures_from_shingles(self, keys: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (signatures, has_signature) from shingle keys grouped by document start offsets.

        Fast similarity sketching (Dahlgaard, Knudsen & Thorup 2017): in round r = 0, 1, 2, … a shingle
        key x has the hash g = fmix64(x + r·STEP), which puts it in bin (top 32 bits of g)·bins >> 32 with
        the value (r, low 32 bits of g); a bin keeps its smallest value (earliest round first) and the
        signature is the low 32 bits of each bin's. Round 0 alone is one-permutation hashing, and a
        document with enough shingles has filled every bin after a round or two; a short one takes more
        rounds, so every document gets a full signature, each bin a MinHash of the document's (shingle,
        round) pairs: a pair of documents agrees in a bin with probability equal to their Jaccard
        similarity. Later rounds cannot change a filled bin, so a document stops once all are filled;
        documents with few shingles run many rounds in one numpy pass.
        """
        n_docs, bins = starts.size - 1, self.num_perm
        lengths = np.diff(starts)
        has = lengths > 0
        flat = np.full(n_docs * bins, _EMPTY, dtype=np.uint64)
        sig = flat.reshape(n_docs, bins)
        base = np.repeat(np.arange(0, n_docs * bins, bins, dtype=np.int64), lengths)  # each key's row
        open_docs, open_lengths = np.flatnonzero(has), lengths[has]
        first, distinct = 0, False
        while open_docs.size:
            rounds = max(1, _ROUND_HITS // keys.size) if first else 1
            r = np.arange(first, first + rounds, dtype=np.uint64)
            g = fmix64((keys[None, :] + (r * _ROUND_STEP)[:, None]).ravel())
            cell = ((g >> _S32) * np.uint64(bins)) >> _S32
            cell = cell.view(np.int64)
            cell += np.tile(base, rounds)
            g &= _LOW32
            g |= np.repeat(r << _S32, keys.size)
            np.minimum.at(flat, cell, g)
            first += rounds
            still = (sig[open_docs] == _EMPTY).any(axis=1)
            keep = np.repeat(still, open_lengths)
            keys, base = keys[keep], base[keep]
            open_docs, open_lengths = open_docs[still], open_lengths[still]
            if not distinct and first >= 2:
                # A document of more than 4·bins distinct shingles has filled every bin in two rounds but
                # for about bins·e^-8 of them; one still open with that many has them repeated, maybe
                # millions of times ("a b c d e " * 2M): a signature is a function of the set, so each such
                # document goes on with its distinct shingles only (moved after the others).
                repeated = open_lengths > 4 * bins
                if repeated.any():
                    in_repeated = np.repeat(repeated, open_lengths)
                    unique_keys, unique_base, counts = _distinct(keys[in_repeated], base[in_repeated])
                    keys = np.concatenate((keys[~in_repeated], unique_keys))
                    base = np.concatenate((base[~in_repeated], unique_base))
                    open_docs = np.concatenate((open_docs[~repeated], open_docs[repeated]))
                    open_lengths = np.concatenate((open_lengths[~repeated], counts))
                distinct = True
        out = (sig & _LOW32).astype(np.uint32)
        out[~has] = np.iinfo(np.uint32).max
        return out, has

    def band_hashes(self, sig: np.ndarray) -> np.ndarray:
        """Return one uint64 hash per (document, band) from a signature array: shape (n, bands)."""
        banded = sig.reshape(sig.shape[0], self.bands, self.rows).astype(np.uint64)
        combined = (banded * self._band_mult[None, None, :]).sum(axis=2, dtype=np.uint64)
        return fmix64(combined + np.arange(self.bands, dtype=np.uint64)[None, :])


def _distinct(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the distinct (row, key) pairs of shingle keys grouped by row, still grouped by row in order, and
    the count per row."""
    order = np.lexsort((keys, rows))
    keys, rows = keys[order], rows[order]
    new = np.ones(keys.size, dtype=bool)
    new[1:] = (keys[1:] != keys[:-1]) | (rows[1:] != rows[:-1])
    keys, rows = keys[new], rows[new]
    return keys, rows, np.unique(rows, return_counts=True)[1]


def sketch_bytes(sig: np.ndarray) -> np.ndarray:
    """Return the low 8 bits of every MinHash (b-bit minwise hashing) as uint8: enough to estimate Jaccard."""
    return (sig & 0xFF).astype(np.uint8)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the Jaccard similarity estimated from 8-bit sketches, row by row (chance matches removed)."""
    matches = (a == b).mean(axis=-1)
    return np.clip((matches - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)
