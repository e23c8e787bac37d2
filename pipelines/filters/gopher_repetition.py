"""Gopher's repetition rules: repeated paragraphs, lines and word n-grams, with datatrove's semantics.

N-grams are never built as strings. The words of a batch's documents get an id each (their Python string
hash, taken for the whole batch at once) and a length; per document and n, two counters take the n-gram
rules' figures over that document's range of ids: `top_ngram_chars` (the most frequent n-gram) and
`repeated_ngram_chars` (datatrove's walk over repeated n-grams). Each is bound once to its C half
(`_ngrams.c`: rolling 64-bit hashes counted in a hash table) or, where that was not built, to its numpy twin
below (the same arguments, answers and errors: polynomial hashes of all positions at once, grouped by a
sort). When no n-gram of some length repeats in a document, no longer one can, and those are skipped (most
documents: from n = 5 on).
Two different words or n-grams sharing a hash (odds about n²/2⁶⁴ per document) would count as repeats;
datatrove joins the words of its repeated-n-gram rule without a space, so ("ab", "c") and ("a", "bc")
collide there and not here."""

from __future__ import annotations

import operator
import re
from bisect import bisect_left
from itertools import chain

import numpy as np

from gristmill.pipelines.config.filters import GopherRepetitionConfig
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.text_stats import batch_words, lengths, string_hashes
from gristmill.pipelines.native import bind, extension

_PARAGRAPHS = re.compile(r"\n{2,}")
_MIX = np.uint64(0x9E3779B97F4A7C15)
_BASE = np.uint64(0xD6E8FEB86659FD93)
_INT64_MAX = (1 << 63) - 1
_INT64_FORMATS = frozenset(["q", "@q", "=q", "<q", "l", "@l", "=l", "<l"])  # native little-endian int64


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


def _int64s(buffer: object, what: str) -> np.ndarray:
    """Return `buffer` as an int64 array if it is a one-dimensional, C-contiguous, 8-byte-aligned int64
    buffer; raise what `_ngrams.c` raises otherwise."""
    view = memoryview(buffer)
    if view.itemsize != 8 or view.format not in _INT64_FORMATS:
        raise TypeError(f"{what} must be an int64 array, not format '{view.format}'")
    if view.ndim != 1 or not view.c_contiguous:
        raise ValueError(f"{what} must be one-dimensional and C-contiguous")
    array = np.frombuffer(view, dtype=np.int64)
    if len(array) and array.ctypes.data % 8:
        raise ValueError(f"{what} is not 8-byte aligned")
    return array


def _document(words, sizes, start, end, n) -> tuple[np.ndarray, np.ndarray, int]:
    """Check the arguments as `_ngrams.c` does; return the document's word ids and lengths, and n."""
    ids, chars = _int64s(words, "words"), _int64s(sizes, "sizes")
    start, end, n = operator.index(start), operator.index(end), operator.index(n)
    if len(ids) != len(chars):
        raise ValueError("words and sizes must be int64 arrays of one length")
    if start < 0 or end < start or end > len(ids) or n < 1:
        raise ValueError(f"bad range [{start}, {end}) of {len(ids)} words for n = {n}")
    if (chars[start:end] < 0).any():
        raise ValueError("sizes must not be negative")
    return ids[start:end], chars[start:end], n


def _int64(count: int) -> int:
    """Return `count`, or raise the OverflowError of `_ngrams.c` when it does not fit in int64."""
    if count > _INT64_MAX:
        raise OverflowError("the n-gram count overflows int64")
    return count


def _ngram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """Return a 64-bit polynomial hash of the n-gram starting at each position (len(ids) - n + 1 of them)."""
    count = len(ids) - n + 1
    with np.errstate(over="ignore"):
        mixed = (ids.view(np.uint64) + np.uint64(1)) * _MIX
        keys = mixed[:count].copy()
        for j in range(1, n):
            keys *= _BASE
            keys += mixed[j : j + count]
    return keys


def _top_ngram_chars(words, sizes, start, end, n, /) -> int:
    """Twin of `_ngrams.top_ngram_chars`, in numpy."""
    ids, chars, n = _document(words, sizes, start, end, n)
    if len(ids) < n:
        return 0
    _, first, counts = np.unique(_ngram_keys(ids, n), return_index=True, return_counts=True)
    top = counts.max()
    at = int(first[counts == top].min())  # ties: the n-gram seen first
    return _int64(int(top) * (sum(chars[at : at + n].tolist()) + n - 1))


def _repeated_ngram_chars(words, sizes, start, end, n, stop_above, /) -> int:
    """Twin of `_ngrams.repeated_ngram_chars`, in numpy: only positions whose n-gram occurs earlier can
    count, so the walk visits just those, checking that an earlier copy was not jumped over."""
    ids, chars, n = _document(words, sizes, start, end, n)
    stop_above = float(stop_above)
    if len(ids) < n:
        return 0
    keys = _ngram_keys(ids, n)
    order = np.argsort(keys, kind="stable")  # equal n-grams by position
    same = keys[order[1:]] == keys[order[:-1]]
    later, earlier = order[1:][same], order[:-1][same]
    by_position = np.argsort(later)
    candidates, earlier = later[by_position], earlier[by_position]
    lengths_list = chars.tolist()  # Python integers: sums that cannot wrap
    candidates_list, earlier_list = candidates.tolist(), earlier.tolist()
    sizes_of = [sum(lengths_list[p : p + n]) for p in candidates_list]
    previous = dict(zip(candidates_list, earlier_list))
    return _int64(_walk(candidates_list, earlier_list, sizes_of, previous, n, stop_above))


def _walk(
    candidates: list[int],
    earlier: list[int],
    chars: list[int],
    previous: dict[int, int],
    n: int,
    stop_above: float,
) -> int:
    """Replay datatrove's walk over one document's candidate positions (see `_repeated_ngram_chars`)."""
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
        if float(repeated) > stop_above:  # compared as C compares it, as a double
            return repeated
        counted.append(p)
        position = p + n
    return repeated


_ngrams = extension("gristmill.pipelines.filters._ngrams")
top_ngram_chars = bind(_ngrams, "top_ngram_chars", _top_ngram_chars)
repeated_ngram_chars = bind(_ngrams, "repeated_ngram_chars", _repeated_ngram_chars)


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
        """Return the n-gram rules' verdicts on non-empty texts, per document over the batch's word ids."""
        c = self.config
        if not c.top_n_grams and not c.dup_n_grams:
            return [None] * len(texts)
        docs = batch_words(texts)
        tokens = list(chain.from_iterable(docs))
        hashes, sizes = string_hashes(tokens), lengths(tokens)
        bounds = [0, *np.cumsum(lengths(docs)).tolist()]
        return [
            self._ngram_verdict(hashes, sizes, bounds[i], bounds[i + 1], len(t)) for i, t in enumerate(texts)
        ]

    def _ngram_verdict(
        self, hashes: np.ndarray, sizes: np.ndarray, start: int, end: int, size: int
    ) -> str | None:
        """Return the n-gram rules' verdict on the document of words [start, end) and `size` characters."""
        c = self.config
        for n, fraction in c.top_n_grams:
            if end - start >= n and top_ngram_chars(hashes, sizes, start, end, n) / size > fraction:
                return self.reason(f"top_{n}_gram")
        shortest_clean = end - start + 1  # no n-gram of this length repeats, so no longer one does
        for n, fraction in c.dup_n_grams:
            if end - start < n or n >= shortest_clean:
                continue
            repeated = repeated_ngram_chars(hashes, sizes, start, end, n, fraction * size)
            if repeated / size > fraction:
                return self.reason(f"dup_{n}_gram")
            if repeated == 0:
                shortest_clean = n
        return None
