"""The decontamination index: every evaluation item's keys in one open-addressing table, built once per build
and read by every task (memory-mapped where the build is local).

Keys of an item (words.py defines words and keys):
- the `n`-word windows of its text read three ways: all segments in order (prompt, choices, text); the prompt
  followed by its choices lettered "a … b … c …" as evaluation harnesses print them (labels are words once
  punctuation is folded, so "(A)", "A." and "A)" all read "a"); and the prompt's last n−1 words followed by
  each choice (a context continued by its ending, as HellaSwag's pages read);
- whole, when shorter than `n` words and at least `min_words` long: each prompt segment, the whole prompt,
  the whole item, and the item lettered.
A key shared by more than `max_items_per_key` items (the sets' own boilerplate), or with fewer than
`min_rare_words` words outside `common.COMMON_WORDS` (ordinary text), is left out: no match rests on it.

Files, in one folder (BUILD/decontamination/index/): meta.json (settings, sets with their name, version,
checksum and counts, each array file's shape and xxh3-64), items.json (item → set and id), and the arrays as
.npy: `table` (uint64 keys, 0 = empty, a power of two long), `values` (int32 per slot: the item, or −1 − the
offset of [count, items …] in `postings`), `long_bloom` / `short_bloom` (blocked Bloom filters of the n-gram
and the whole keys). np.load reads them without pickles; a file whose checksum differs is refused.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from gristmill.errors import BuildError
from gristmill.pipelines.config.decontam import DecontamConfig
from gristmill.pipelines.decontam.common import COMMON_WORDS
from gristmill.pipelines.decontam.items import BenchmarkSet, Item
from gristmill.pipelines.decontam.words import NORMALISATION, span_keys, words
from gristmill.storage import atomic_write, exists, is_local, open_binary, read_json, write_json

INDEX_FORMAT = 1
ARRAYS = ("table", "values", "postings", "long_bloom", "short_bloom")
META_FILE = "meta.json"
ITEMS_FILE = "items.json"
LOAD_FACTOR = 0.75  # the table is a power of two at least keys / LOAD_FACTOR long
BLOOM_BITS_PER_KEY = 10  # two bits per key in one 64-bit word: about 3% false positives


def settings_of(config: DecontamConfig) -> dict[str, Any]:
    """Return the settings that decide an index's keys (recorded in its meta.json and in the manifest)."""
    return {
        "normalisation": NORMALISATION,
        "n": config.n,
        "min_words": config.min_words,
        "max_items_per_key": config.max_items_per_key,
        "min_rare_words": config.min_rare_words,
    }


def _hashes(text: str) -> np.ndarray:
    return words(text)[0]


_COMMON_HASHES = np.sort(np.concatenate([_hashes(w) for w in sorted(COMMON_WORDS)]))
_LETTERS = np.concatenate([_hashes(chr(ord("a") + i)) for i in range(26)])


def _is_common(hashes: np.ndarray) -> np.ndarray:
    """Whether each word hash is one of COMMON_WORDS' (a binary search in the few hundred; np.isin sorts)."""
    at = np.minimum(np.searchsorted(_COMMON_HASHES, hashes), len(_COMMON_HASHES) - 1)
    return _COMMON_HASHES[at] == hashes


def _is_number(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each word `text[start:end]` is ASCII digits only (counted as common: "1 2 3 … 13" is no
    evidence of an item)."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    other = np.concatenate([[0], np.cumsum((points < 48) | (points > 57))])
    return other[ends] == other[starts]


def _aranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)]), without the loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.cumsum(counts) - counts
    return np.repeat(starts - before, counts) + np.arange(total)


def item_keys(
    items: list[Item], n: int, min_words: int, min_rare_words: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the keys of `items` as three aligned arrays: key (uint64), the item's position in `items`
    (int32) and the key's length in words (int64: `n` for n-grams); each (item, key) once, each key with at
    least `min_rare_words` rare words. The index then drops the keys too many items share."""
    # Every segment's words in one pass: segments joined by a line break, which no word crosses.
    segments = [s for item in items for s in item.segments]
    joined = "\n".join(segments)
    hashes, starts, ends = words(joined)
    bounds = np.cumsum([0] + [len(s) + 1 for s in segments])
    first_word = np.searchsorted(starts, bounds).tolist()  # segment k's words: first_word[k] … [k + 1]
    letters = len(hashes)  # the labels "a", "b", … go after the segments' words
    source = np.concatenate([hashes, _LETTERS])
    # Flat lists of ints, turned into arrays at the end (a tuple per entry costs more than the rest):
    pieces: list[int] = []  # (start in `source`, words) pairs: readings are runs of pieces
    readings: list[
        int
    ] = []  # (first piece, item, windows wanted: all -1, holding a label -2, or the first k)
    wholes: list[int] = []  # (offset from the item's first reading, words, item) of texts matched whole
    k = 0
    for i, item in enumerate(items):
        p, c = len(item.prompt), len(item.choices)
        seg = first_word[k : k + p + c + len(item.text) + 1]
        k += len(seg) - 1
        begin, prompt_end = seg[0], seg[p]
        total = seg[-1] - begin
        readings += (len(pieces) // 2, i, -1)
        pieces += (begin, total)
        for j in range(p):
            wholes += (seg[j] - begin, seg[j + 1] - seg[j], i)
        if p > 1:
            wholes += (0, prompt_end - begin, i)
        if total > prompt_end - begin or p != 1:
            wholes += (0, total, i)
        if c >= 2:  # the options lettered after the prompt: "… a <choice> b <choice> …"
            readings += (len(pieces) // 2, i, -2)  # its windows inside one choice are the first reading's
            pieces += (begin, prompt_end - begin)
            lettered = prompt_end - begin
            for j in range(min(c, len(_LETTERS))):
                pieces += (letters + j, 1, seg[p + j], seg[p + j + 1] - seg[p + j])
                lettered += 1 + seg[p + j + 1] - seg[p + j]
            wholes += (total, lettered, i)  # it follows the first reading
        if p and c:  # the prompt's end continued by each option
            tail = min(prompt_end - begin, n - 1)
            for j in range(c):  # only the windows across the join are new
                readings += (len(pieces) // 2, i, tail)
                pieces += (prompt_end - tail, tail, seg[p + j], seg[p + j + 1] - seg[p + j])
    if not pieces:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    piece_start, piece_words = np.array(pieces, dtype=np.int64).reshape(-1, 2).T
    gathered = _aranges(piece_start, piece_words)
    sequence = source[gathered]  # every reading, one after another
    piece_at = np.concatenate([[0], np.cumsum(piece_words)])
    first_piece, r_item, r_wanted = np.array(readings, dtype=np.int64).reshape(-1, 3).T
    r_start = piece_at[first_piece]
    r_words = np.diff(np.append(r_start, len(sequence)))
    common = np.concatenate([_is_common(hashes) | _is_number(joined, starts, ends), np.ones(26, dtype=bool)])
    rare = np.concatenate([[0], np.cumsum(~common[gathered])])
    labels = np.concatenate([[0], np.cumsum(gathered >= letters)])
    windows = np.maximum(r_words - n + 1, 0)
    windows = np.where(r_wanted >= 0, np.minimum(windows, r_wanted), windows)
    w_first = _aranges(r_start, windows)
    owners = np.repeat(r_item, windows)
    good = rare[w_first + n] - rare[w_first] >= min_rare_words
    good &= (np.repeat(r_wanted, windows) != -2) | (labels[w_first + n] > labels[w_first])
    long_keys, long_items = span_keys(sequence, w_first[good], n), owners[good]
    w_offset, w_words, w_item = np.array(wholes, dtype=np.int64).reshape(-1, 3).T
    item_start = r_start[np.searchsorted(r_item, w_item)]  # an item's first reading holds its segments
    w_start = item_start + w_offset
    good = (w_words >= min_words) & (w_words < n)
    good &= rare[w_start + w_words] - rare[w_start] >= min_rare_words
    whole_keys = span_keys(sequence, w_start[good], w_words[good])
    keys = np.concatenate([long_keys, whole_keys])
    owners = np.concatenate([long_items, w_item[good]]).astype(np.int32)
    lengths = np.concatenate([np.full(len(long_keys), n, dtype=np.int64), w_words[good]])
    return _distinct_pairs(keys, owners, lengths)


def _distinct_pairs(
    keys: np.ndarray, owners: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by key, each (key, owner) once, a key's owners ascending (a key has one length)."""
    order = np.argsort(keys)
    keys, owners, lengths = keys[order], owners[order], lengths[order]
    if len(keys):
        starts = np.flatnonzero(np.diff(keys, prepend=~keys[:1]) != 0)
        mixed = np.minimum.reduceat(owners, starts) != np.maximum.reduceat(owners, starts)
        rows = np.flatnonzero(np.repeat(mixed, np.diff(np.append(starts, len(keys)))))
        if len(rows):  # keys of several items (a few): their owners in order
            rows_sorted = rows[np.lexsort((owners[rows], keys[rows]))]
            owners[rows], lengths[rows] = owners[rows_sorted], lengths[rows_sorted]
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
    return keys[keep], owners[keep], lengths[keep]


@dataclass
class SetEntry:
    """One evaluation set in the index: what it is, and what of it the index holds."""

    name: str
    version: str
    checksum: str  # sha256 of its text (BenchmarkSet.checksum)
    items: int
    matchable_items: int  # items with at least one key left in the index
    keys: int  # keys of its items in the index
    common_keys: int  # of its items' keys, those left out as shared by too many items

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DecontamIndex:
    """An index as a task uses it: the arrays, each item's set and id, and what it was built from."""

    settings: dict[str, Any]
    sets: list[SetEntry]
    item_sets: np.ndarray  # int32: item → its set's position in `sets`
    item_ids: list[str]
    table: np.ndarray
    values: np.ndarray
    postings: np.ndarray
    long_bloom: np.ndarray
    short_bloom: np.ndarray
    lengths: list[int]  # window lengths to probe: the whole keys' (ascending), then n

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays a task maps (its index memory, shared between tasks of one machine)."""
        return sum(getattr(self, name).nbytes for name in ARRAYS)

    def items_of(self, slots: np.ndarray) -> list[np.ndarray]:
        """Return, for each table slot, the items whose key it holds."""
        out = []
        for value in self.values[slots]:
            if value >= 0:
                out.append(np.array([value], dtype=np.int32))
            else:
                at = -1 - int(value)
                out.append(self.postings[at + 1 : at + 1 + int(self.postings[at])])
        return out

    # Building.
    @classmethod
    def build(cls, sets: list[BenchmarkSet], config: DecontamConfig) -> DecontamIndex:
        """Return the index of `sets` with `config`'s settings."""
        key_parts, item_parts, length_parts = [], [], []
        item_sets, item_ids = [], []
        for set_index, bench in enumerate(sets):
            keys, owners, lengths = item_keys(bench.items, config.n, config.min_words, config.min_rare_words)
            key_parts.append(keys)
            item_parts.append(owners + len(item_ids))
            length_parts.append(lengths)
            item_sets += [set_index] * len(bench.items)
            item_ids += [item.id for item in bench.items]
        item_sets_array = np.asarray(item_sets, dtype=np.int32)
        keys, items, lengths = (np.concatenate(parts) for parts in (key_parts, item_parts, length_parts))
        # each set's keys come sorted, its items ascending: a stable sort merges the runs, keeping a key's
        # items in order
        order = np.argsort(keys, kind="stable")
        keys, items, lengths = keys[order], items[order], lengths[order]
        first = np.flatnonzero(np.diff(keys, prepend=~keys[:1]) != 0)  # each key's first (key, item) pair
        counts = np.diff(np.append(first, len(keys)))
        common = counts > config.max_items_per_key
        kept_pair = np.repeat(~common, counts)
        pair_set = item_sets_array[items]
        kept_item = np.zeros(len(item_ids), dtype=bool)
        kept_item[items[kept_pair]] = True
        per_set = {
            "keys": np.bincount(pair_set[kept_pair], minlength=len(sets)),
            "common_keys": np.bincount(pair_set[~kept_pair], minlength=len(sets)),
            "matchable_items": np.bincount(item_sets_array[kept_item], minlength=len(sets)),
        }
        entries = [
            SetEntry(
                name=bench.name,
                version=bench.version,
                checksum=bench.checksum,
                items=len(bench.items),
                **{name: int(column[i]) for name, column in per_set.items()},
            )
            for i, bench in enumerate(sets)
        ]
        unique, first, counts = keys[first[~common]], first[~common], counts[~common]
        key_lengths = lengths[first]
        is_long = key_lengths == config.n
        values, postings = _values(items, first, counts)
        table, table_values = _table(unique, values)
        return cls(
            settings=settings_of(config),
            sets=entries,
            item_sets=item_sets_array,
            item_ids=item_ids,
            table=table,
            values=table_values,
            postings=postings,
            long_bloom=_bloom(unique[is_long]),
            short_bloom=_bloom(unique[~is_long]),
            lengths=[*sorted({int(k) for k in key_lengths[~is_long]}), config.n],
        )

    # Files.
    def write(self, directory: str) -> None:
        """Write the index into `directory` (local or URL): the arrays first, meta.json last."""
        arrays = {}
        for name in ARRAYS:
            buffer = io.BytesIO()
            np.save(buffer, getattr(self, name), allow_pickle=False)
            blob = buffer.getvalue()
            with atomic_write(f"{directory}/{name}.npy") as f:
                f.write(blob)
            array = getattr(self, name)
            arrays[name] = {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "xxh3": xxhash.xxh3_64_hexdigest(blob),
            }
        write_json(f"{directory}/{ITEMS_FILE}", {"sets": self.item_sets.tolist(), "ids": self.item_ids})
        items_blob = _read_bytes(f"{directory}/{ITEMS_FILE}")
        meta = {
            "format": INDEX_FORMAT,
            "settings": self.settings,
            "lengths": self.lengths,
            "sets": [s.to_dict() for s in self.sets],
            "arrays": arrays,
            "items_xxh3": xxhash.xxh3_64_hexdigest(items_blob),
            "bytes": self.nbytes,
        }
        write_json(f"{directory}/{META_FILE}", meta)

    @classmethod
    def read(cls, directory: str) -> DecontamIndex:
        """Read an index written by `write`; raise BuildError when it is missing, of another format, or any
        file's checksum, dtype or shape is not what meta.json records."""
        meta_path = f"{directory}/{META_FILE}"
        if not exists(meta_path):
            raise BuildError(
                "no decontamination index here", path=directory, hint="the decontam_index step writes it"
            )
        meta = read_json(meta_path)
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
            raise BuildError(
                f"index format {meta.get('format') if isinstance(meta, dict) else meta!r} is not "
                f"{INDEX_FORMAT}",
                path=meta_path,
                hint="rebuild the index",
            )
        try:
            arrays = {name: _load_array(directory, name, meta["arrays"][name]) for name in ARRAYS}
            items_path = f"{directory}/{ITEMS_FILE}"
            blob = _read_bytes(items_path)
            if xxhash.xxh3_64_hexdigest(blob) != meta["items_xxh3"]:
                raise BuildError("checksum differs from meta.json's", path=items_path)
            items = json.loads(blob)
            sets = [SetEntry(**entry) for entry in meta["sets"]]
            settings, lengths = meta["settings"], [int(k) for k in meta["lengths"]]
        except (KeyError, TypeError, ValueError) as e:
            raise BuildError(f"malformed index ({type(e).__name__}: {e})", path=meta_path) from None
        return cls(
            settings=settings,
            sets=sets,
            item_sets=np.asarray(items["sets"], dtype=np.int32),
            item_ids=list(items["ids"]),
            lengths=lengths,
            **arrays,
        )


def _values(items: np.ndarray, first: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each kept key's value: its item where it has one, else −1 − its offset in the postings."""
    values = np.where(counts == 1, items[first], 0).astype(np.int64)
    multi = np.flatnonzero(counts > 1)
    postings: list[int] = []
    for key in multi:
        values[key] = -1 - len(postings)
        postings.append(int(counts[key]))
        postings += items[first[key] : first[key] + counts[key]].tolist()
    return values.astype(np.int32), np.asarray(postings, dtype=np.int32)


def _table(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """An open-addressing table (linear probing) of distinct nonzero `keys`, and their values by slot.

    Placing keys in the order of their home slots puts each in the first free slot from its home, as
    inserting them one by one in that order would: slot = running max of (home − rank) + rank. Keys pushed
    past the end go, one by one, to the first free slots from the start."""
    capacity = 16
    while capacity * LOAD_FACTOR < len(keys):
        capacity *= 2
    mask = np.uint64(capacity - 1)
    homes = (keys & mask).astype(np.int64)
    # by home slot, then key: the key's bits rotated so its home bits lead (unique, so any sort agrees)
    bits = np.uint64(capacity.bit_length() - 1)
    order = np.argsort((keys << (np.uint64(64) - bits)) | (keys >> bits)) if bits else np.argsort(keys)
    rank = np.arange(len(keys))
    slots = np.maximum.accumulate(homes[order] - rank) + rank if len(keys) else rank
    table = np.zeros(capacity, dtype=np.uint64)
    slot_values = np.zeros(capacity, dtype=np.int32)
    inside = slots < capacity
    table[slots[inside]] = keys[order[inside]]
    slot_values[slots[inside]] = values[order[inside]]
    free = iter(np.flatnonzero(table == 0))
    for key in order[~inside]:  # wrapped around: few, at the end of the order
        slot = next(free)
        table[slot], slot_values[slot] = keys[key], values[key]
    return table, slot_values


def _bloom(keys: np.ndarray) -> np.ndarray:
    """A blocked Bloom filter of `keys`: two bits of one 64-bit word per key (`_keys.c`'s `in_bloom`)."""
    size = 1
    while size * 64 < len(keys) * BLOOM_BITS_PER_KEY:
        size *= 2
    bloom = np.zeros(size, dtype=np.uint64)
    word = (keys >> np.uint64(40)) & np.uint64(size - 1)
    bits = (np.uint64(1) << ((keys >> np.uint64(28)) & np.uint64(63))) | (
        np.uint64(1) << ((keys >> np.uint64(34)) & np.uint64(63))
    )
    np.bitwise_or.at(bloom, word.astype(np.int64), bits)
    return bloom


def _read_bytes(path: str) -> bytes:
    with open_binary(path) as f:
        return f.read()


def _load_array(directory: str, name: str, expected: dict[str, Any]) -> np.ndarray:
    path = f"{directory}/{name}.npy"
    if not exists(path):
        raise BuildError("missing", path=path, hint="rebuild the index")
    if is_local(path):
        with open(path, "rb") as f:
            digest = xxhash.xxh3_64()
            while chunk := f.read(1 << 24):
                digest.update(chunk)
        actual = digest.hexdigest()
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    else:
        blob = _read_bytes(path)
        actual = xxhash.xxh3_64_hexdigest(blob)
        array = np.load(io.BytesIO(blob), allow_pickle=False)
    if actual != expected["xxh3"]:
        raise BuildError(f"checksum {actual} differs from meta.json's {expected['xxh3']}", path=path)
    if array.dtype.str != expected["dtype"] or list(array.shape) != expected["shape"]:
        raise BuildError(
            f"{array.dtype.str} {list(array.shape)}, meta.json says {expected['dtype']} {expected['shape']}",
            path=path,
        )
    return array
