"""Gopher's repetition rules: repeated paragraphs, lines and word n-grams, with datatrove's semantics.

N-grams are never built as strings. Where `_ngrams.c` was built, each document's counts are taken there,
in a hash table over the word ids (`_check_ngrams_native`); otherwise in numpy for the whole batch: the
words of a batch's documents are laid end to end, each word gets an integer id (its Python string hash),
each n-gram a 64-bit polynomial hash of its ids computed for all positions at once, its character length
a difference of cumulative word lengths, and one sort per n over the whole batch groups equal n-grams of a
document (2x faster than numpy calls per document, whose overhead dominated on small documents). When no
n-gram of some length repeats in a document, no longer one can, and those are skipped (most documents: from
n = 5 on).
Two different words or n-grams sharing a hash (odds about n²/2⁶⁴ per document) would count as repeats;
datatrove joins the words of its repeated-n-gram rule without a space, so ("ab", "c") and ("a", "bc")
collide there and not here."""

from __future__ import annotations

import re
from bisect import bisect_left
from itertools import chain

import numpy as np

from gristmill.pipelines.config.filters import GopherRepetitionConfig
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.text_stats import batch_words, lengths, string_hashes

try:  # the same counts per document in C (measured 4.3x the numpy batch on the scale corpus's Dolma file)
    from gristmill.pipelines.filters import _ngrams
except ImportError:
    _ngrams = None

_PARAGRAPHS = re.compile(r"\n{2,}")
_MIX = np.uint64(0x9E3779B97F4A7C15)
_BASE = np.uint64(0xD6E8FEB86659FD93)
_MAX_POSITION_BITS = 32  # a batch of more words takes the stable argsort


def _split_lines(text: str) -> list[str]:
    """Return `re.split(r"\n+", text)`: the pieces between runs of newlines (an empty first or last piece
    where the text starts or ends with one), with `str.split` (measured 2x faster)."""
    parts = text.split("\n")
    if len(parts) < 3:
        return parts
    return [parts[0], *filter(None, parts[1:-1]), parts[-1]]


def duplicate_stats(items: list[str]) -> tuple[int, int]:
    """Return (repeats, characters in repeats): every occurrence of an item after its first counts."""
    unique = set(items)
    return len(items) - len(unique), sum(map(len, items)) - sum(map(len, unique))


class _NGramBatch:
    """Hashes and character lengths of the word n-grams of a batch's documents laid end to end; an n-gram
    never crosses from one document into the next."""

    def __init__(self, docs: list[list[str]]) -> None:
        tokens = list(chain.from_iterable(docs))
        self.size = len(tokens)
        # a word's id is its string hash (no dictionary of the batch's words: measured 1.5-2x faster)
        word_ids = string_hashes(tokens).view(np.uint64)
        with np.errstate(over="ignore"):
            self._hashes = [(word_ids + np.uint64(1)) * _MIX]
        self.offsets = np.concatenate(([0], np.cumsum(lengths(tokens))))  # chars before word i
        self.words = lengths(docs)  # words per document
        ends = np.cumsum(self.words)
        self.doc_of = np.repeat(np.arange(len(docs)), self.words)  # document of each word
        self._left = np.repeat(ends, self.words) - np.arange(self.size)  # words from each to its doc's end
        self.doc_starts = ends - self.words

    def hashes(self, n: int) -> np.ndarray:
        """Return the hash of the n-gram starting at each position (length words - n + 1)."""
        with np.errstate(over="ignore"):
            while len(self._hashes) < n:
                shorter = self._hashes[-1]
                self._hashes.append(shorter[:-1] * _BASE + self._hashes[0][len(self._hashes) :])
        return self._hashes[n - 1]

    def chars(self, n: int) -> np.ndarray:
        """Return the summed word lengths of the n-gram starting at each position."""
        return self.offsets[n:] - self.offsets[:-n]

    def groups(self, n: int, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the starting positions of the n-grams of the `active` documents, ordered by (n-gram,
        position), and whether each opens a new group of equal n-grams of one document."""
        whole = self._left >= n
        positions = np.flatnonzero(whole if active.all() else whole & active[self.doc_of])
        hashes = self.hashes(n)
        bits = max(self.size.bit_length(), 1)
        if bits <= _MAX_POSITION_BITS:
            # A position in a hash's low bits makes one key that `np.sort` orders by (hash's high bits,
            # position) with no argsort (measured 14x faster than a stable argsort). Exact unless two
            # different n-grams share the high bits: then the stable argsort below decides.
            low = np.uint64((1 << bits) - 1)
            keys = np.sort((hashes[positions] & ~low) | positions.view(np.uint64))
            ordered = (keys & low).view(np.int64)
            full = hashes[ordered]
            differ = full[1:] != full[:-1]
            if not (differ & ((keys[1:] ^ keys[:-1]) <= low)).any():
                return ordered, self._opens(ordered, differ)
        order = np.argsort(hashes[positions], kind="stable")  # stable: equal n-grams by position
        ordered = positions[order]
        full = hashes[ordered]
        return ordered, self._opens(ordered, full[1:] != full[:-1])

    def _opens(self, ordered: np.ndarray, differ: np.ndarray) -> np.ndarray:
        """Return where a group starts in n-grams ordered by (n-gram, position): at a new n-gram or a new
        document (equal n-grams come by position, so by document)."""
        docs = self.doc_of[ordered]
        opens = np.ones(len(ordered), dtype=bool)
        opens[1:] = differ | (docs[1:] != docs[:-1])
        return opens


def top_ngram_chars_batch(grams: _NGramBatch, n: int, active: np.ndarray) -> np.ndarray:
    """Return, per document (0 where not `active` or too short), count × length (words joined by spaces) of
    its most frequent n-gram; ties go to the one seen first, as datatrove's `Counter.most_common(1)`."""
    positions, opens = grams.groups(n, active)
    top = np.zeros(len(grams.words), dtype=np.int64)
    if not len(positions):
        return top
    starts = np.flatnonzero(opens)
    counts = np.diff(np.append(starts, len(positions)))
    first = positions[starts]
    # one key per group, largest for the highest count and then the earliest first position (int64 holds
    # count × (words + 1) for any batch under 3·10⁹ words)
    scale = grams.size + 1
    best = np.zeros(len(grams.words), dtype=np.int64)
    np.maximum.at(best, grams.doc_of[first], counts * scale + (grams.size - first))
    has = np.flatnonzero(best)
    first = grams.size - best[has] % scale
    top[has] = best[has] // scale * (grams.offsets[first + n] - grams.offsets[first] + n - 1)
    return top


def repeated_ngram_chars_batch(
    grams: _NGramBatch, n: int, active: np.ndarray, stop_above: np.ndarray
) -> np.ndarray:
    """Return, per document (0 where not `active`), the characters in repeated n-grams as datatrove counts
    them, or a value over its `stop_above` as soon as the count passes it.

    datatrove walks the positions: an n-gram seen before counts and the walk jumps n words ahead (the
    n-grams it jumps over are never added to the seen set), otherwise it is added and the walk moves on by
    one. Only positions whose n-gram occurs earlier can count, so the walk visits just those (found with
    numpy for the whole batch at once), checking that an earlier copy was not jumped over: work grows with
    the repeats, not the words.
    """
    repeated = np.zeros(len(grams.words), dtype=np.int64)
    positions, opens = grams.groups(n, active)
    same = ~opens[1:]
    later = positions[1:][same]
    if not len(later):
        return repeated
    order = np.argsort(later)
    candidates = later[order]  # positions whose n-gram occurs earlier in their document
    earlier = positions[:-1][same][order]  # the previous position holding the same n-gram
    previous = dict(zip(candidates.tolist(), earlier.tolist()))
    chars = grams.chars(n)[candidates].tolist()
    bounds = [*np.searchsorted(candidates, grams.doc_starts).tolist(), len(candidates)]
    candidates_list, earlier_list = candidates.tolist(), earlier.tolist()
    for doc in np.unique(grams.doc_of[candidates]).tolist():
        a, b = bounds[doc], bounds[doc + 1]
        repeated[doc] = _walk(
            candidates_list[a:b], earlier_list[a:b], chars[a:b], previous, n, float(stop_above[doc])
        )
    return repeated


class _NGrams(_NGramBatch):
    """The n-grams of one document (a batch of one)."""

    def __init__(self, tokens: list[str]) -> None:
        super().__init__([tokens])


def top_ngram_chars(grams: _NGrams, n: int) -> int:
    """Return `top_ngram_chars_batch` for a one-document batch."""
    return int(top_ngram_chars_batch(grams, n, np.ones(1, dtype=bool))[0])


def repeated_ngram_chars(grams: _NGrams, n: int, stop_above: float) -> int:
    """Return `repeated_ngram_chars_batch` for a one-document batch."""
    return int(repeated_ngram_chars_batch(grams, n, np.ones(1, dtype=bool), np.array([stop_above]))[0])


def _walk(
    candidates: list[int],
    earlier: list[int],
    chars: list[int],
    previous: dict[int, int],
    n: int,
    stop_above: float,
) -> int:
    """Replay datatrove's walk over one document's candidate positions (see `repeated_ngram_chars_batch`)."""
    counted: list[int] = []  # positions that counted; the n - 1 after each were jumped over
    repeated, position = 0, 0
    for p, copy, size in zip(candidates, earlier, chars):
        if p < position:
            continue
        while copy >= 0:
            i = bisect_left(counted, copy)
            if i == 0 or copy - counted[i - 1] >= n:  # not jumped over: the walk saw it
                break
            copy = previous.get(copy, -1)
        if copy < 0:
            continue
        repeated += size
        if repeated > stop_above:
            return repeated
        counted.append(p)
        position = p + n
    return repeated


class GopherRepetitionFilter(DocumentFilter):
    """Drops documents whose paragraphs, lines or word n-grams repeat too much. A threshold of 0 turns its
    rule off.

    Rules, in order: empty; dup_para_frac, dup_para_char_frac (paragraphs split on blank lines),
    dup_line_frac, dup_line_char_frac; top_<n>_gram (characters in the most frequent n-gram over the
    document's characters); dup_<n>_gram (characters in repeated n-grams over the document's characters).
    """

    name = "gopher_repetition"

    def __init__(self, config: GopherRepetitionConfig | None = None) -> None:
        self.config = config or GopherRepetitionConfig()

    def check_batch(self, texts: list[str], paths: list[str | None] | None = None) -> list[str | None]:
        """Return None or "gopher_repetition:<rule>" per text."""
        verdicts = [self._check_lines(text) for text in texts]
        pending = [i for i, verdict in enumerate(verdicts) if verdict is None]
        if pending:
            for i, verdict in zip(pending, self._check_ngrams([texts[i] for i in pending])):
                verdicts[i] = verdict
        return verdicts

    def _check_lines(self, text: str) -> str | None:
        """Return the paragraph and line rules' verdict on one text."""
        c = self.config
        if not text:
            return self.reason("empty")
        size = len(text)
        paragraphs = _PARAGRAPHS.split(text.strip())
        repeats, chars = duplicate_stats(paragraphs)
        if c.dup_para_frac and repeats / len(paragraphs) > c.dup_para_frac:
            return self.reason("dup_para_frac")
        if c.dup_para_char_frac and chars / size > c.dup_para_char_frac:
            return self.reason("dup_para_char_frac")
        lines = _split_lines(text)
        repeats, chars = duplicate_stats(lines)
        if c.dup_line_frac and repeats / len(lines) > c.dup_line_frac:
            return self.reason("dup_line_frac")
        if c.dup_line_char_frac and chars / size > c.dup_line_char_frac:
            return self.reason("dup_line_char_frac")
        return None

    def _check_ngrams(self, texts: list[str]) -> list[str | None]:
        """Return the n-gram rules' verdicts on non-empty texts: counted per document in C where it was
        built, else for all of them at once in numpy (the same counts)."""
        c = self.config
        verdicts: list[str | None] = [None] * len(texts)
        if not c.top_n_grams and not c.dup_n_grams:
            return verdicts
        if _ngrams is not None:
            return self._check_ngrams_native(texts, batch_words(texts))
        grams = _NGramBatch(batch_words(texts))
        sizes = lengths(texts)
        undecided = np.ones(len(texts), dtype=bool)
        for n, fraction in c.top_n_grams:
            active = undecided & (grams.words >= n)
            drop = active & (top_ngram_chars_batch(grams, n, active) / sizes > fraction)
            for i in np.flatnonzero(drop).tolist():
                verdicts[i] = self.reason(f"top_{n}_gram")
            undecided &= ~drop
        # an n with no repeated n-gram in a document: then no longer n-gram repeats there either
        shortest_clean = np.full(len(texts), np.iinfo(np.int64).max)
        for n, fraction in c.dup_n_grams:
            active = undecided & (grams.words >= n) & (n < shortest_clean)
            if not active.any():
                continue
            repeated = repeated_ngram_chars_batch(grams, n, active, fraction * sizes)
            drop = active & (repeated / sizes > fraction)
            for i in np.flatnonzero(drop).tolist():
                verdicts[i] = self.reason(f"dup_{n}_gram")
            undecided &= ~drop
            # nothing counted, so nothing jumped over: no n-gram repeats at all
            clean = active & (repeated == 0)
            shortest_clean[clean] = np.minimum(shortest_clean[clean], n)
        return verdicts

    def _check_ngrams_native(self, texts: list[str], docs: list[list[str]]) -> list[str | None]:
        """`_check_ngrams` with the counts taken per document by `_ngrams`, in the same rule order."""
        c = self.config
        tokens = list(chain.from_iterable(docs))
        hashes, sizes = string_hashes(tokens), lengths(tokens)
        bounds = [0, *np.cumsum(lengths(docs)).tolist()]
        verdicts: list[str | None] = []
        for i, text in enumerate(texts):
            start, end, size = bounds[i], bounds[i + 1], len(text)
            verdict = next(
                (
                    self.reason(f"top_{n}_gram")
                    for n, fraction in c.top_n_grams
                    if end - start >= n
                    and _ngrams.top_ngram_chars(hashes, sizes, start, end, n) / size > fraction
                ),
                None,
            )
            shortest_clean = end - start + 1  # no n-gram of this length repeats, so no longer one does
            for n, fraction in c.dup_n_grams if verdict is None else ():
                if end - start < n or n >= shortest_clean:
                    continue
                repeated = _ngrams.repeated_ngram_chars(hashes, sizes, start, end, n, fraction * size)
                if repeated / size > fraction:
                    verdict = self.reason(f"dup_{n}_gram")
                    break
                if repeated == 0:
                    shortest_clean = n
            verdicts.append(verdict)
        return verdicts
