"""Keep the shared evaluation text out of every candidate: a document of the evaluation set that shares a
word n-gram (13 words by default, as GPT-3's and FineWeb's decontamination) with any document a candidate
trained on is dropped from the set, for every candidate alike.

What a build trained on is read from its `clean/` documents (what survived its filters and dedupe, before
tokenizing: every trained row comes from them), or, for a build without them, from its rows decoded with
its tokenizer. Words are `\\w+` runs, lowercased. N-grams are 64-bit polynomial hashes of the words' ids in
the evaluation set's vocabulary, so a training word outside that vocabulary breaks every n-gram it is in.

This is the ablation's own check of its evaluation set. A build's decontamination against benchmark items
(in the pipeline) is separate; this one asks only "did any candidate see this evaluation document".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

from gristmill.storage import exists, filesystem, list_names

_WORD = re.compile(r"\w+")
_BASE = np.uint64(0x100000001B3)  # FNV's 64-bit prime: any odd multiplier mixes the ids


def words(text: str) -> list[str]:
    """Return the lowercased words of `text`."""
    return _WORD.findall(text.lower())


class NgramIndex:
    """The word n-grams of a list of documents, to find which of them a text shares one with."""

    def __init__(self, documents: list[str], n: int) -> None:
        self.n = n
        self.vocabulary: dict[str, int] = {}
        self.owners: dict[int, list[int]] = {}
        for index, doc in enumerate(documents):
            ids = [self.vocabulary.setdefault(w, len(self.vocabulary)) for w in words(doc)]
            for h in set(self._hashes(np.asarray(ids, dtype=np.int64)).tolist()):
                self.owners.setdefault(h, []).append(index)

    def _hashes(self, ids: np.ndarray) -> np.ndarray:
        """Return the hash of every n-gram of `ids` that has no unknown word (-1)."""
        if len(ids) < self.n:
            return np.zeros(0, dtype=np.uint64)
        windows = np.lib.stride_tricks.sliding_window_view(ids, self.n)
        known = (windows >= 0).all(axis=1)
        powers = _BASE ** np.arange(self.n - 1, -1, -1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (windows[known].astype(np.uint64) * powers).sum(axis=1, dtype=np.uint64)

    def matches(self, text: str) -> set[int]:
        """Return the indices of the documents that share an n-gram with `text`."""
        ids = np.asarray([self.vocabulary.get(w, -1) for w in words(text)], dtype=np.int64)
        found: set[int] = set()
        for h in self._hashes(ids).tolist():
            found.update(self.owners.get(h, ()))
        return found


def trained_texts(build: str) -> Iterator[str]:
    """Yield the text of every document a build's rows were made from (see the module docstring)."""
    clean = f"{build.rstrip('/')}/clean"
    if exists(clean):
        for source in list_names(clean):
            for name in list_names(f"{clean}/{source}"):
                if not name.endswith(".parquet"):
                    continue
                fs, inner = filesystem(f"{clean}/{source}/{name}")
                with fs.open(inner, "rb") as f:
                    for batch in pq.ParquetFile(f).iter_batches(batch_size=1024, columns=["text"]):
                        yield from batch.column("text").to_pylist()
        return
    yield from _decoded_rows(build)


def _decoded_rows(build: str) -> Iterator[str]:
    from gristmill.shards.manifest import read_manifest
    from gristmill.shards.source import ShardSource
    from gristmill.trainer.evaluate import build_tokenizer

    manifest = read_manifest(build)
    tokenizer = build_tokenizer(build, manifest)
    source = ShardSource(build)
    try:
        for stage in manifest.stages:
            for entry in stage.shards:
                shard = source.open(entry, stage.seq_len)
                for r in range(shard.rows):
                    for piece in shard.row(r).documents():
                        yield tokenizer.decode(piece)
    finally:
        source.close()


@dataclass
class Decontamination:
    """Which evaluation documents each candidate's build holds n-grams of, and what is left."""

    n: int
    documents: dict[str, int] = field(default_factory=dict)  # set → documents before
    seen_by: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # set → candidate → doc indices
    kept: dict[str, list[str]] = field(default_factory=dict)  # set → the documents no candidate saw

    def to_dict(self) -> dict:
        """Return the counts per set and candidate (JSON-ready)."""
        return {
            "ngram": self.n,
            "sets": {
                name: {
                    "documents": self.documents[name],
                    "kept": len(self.kept[name]),
                    "seen_by": {c: len(v) for c, v in self.seen_by[name].items()},
                }
                for name in self.documents
            },
        }


def decontaminate(sets: dict[str, list[str]], builds: dict[str, str], n: int) -> Decontamination:
    """Return the evaluation `sets` (name → documents) without any document that shares a word n-gram
    with the training documents of any build (candidate → build directory)."""
    result = Decontamination(n)
    owner = [(name, i) for name, docs in sets.items() for i in range(len(docs))]
    index = NgramIndex([d for docs in sets.values() for d in docs], n)
    for name, docs in sets.items():
        result.documents[name] = len(docs)
        result.seen_by[name] = {}
    for candidate, build in builds.items():
        seen: set[int] = set()
        for text in trained_texts(build):
            seen |= index.matches(text)
        for name in sets:
            result.seen_by[name][candidate] = sorted(i for s, i in (owner[k] for k in seen) if s == name)
    for name, docs in sets.items():
        dropped = {i for found in result.seen_by[name].values() for i in found}
        result.kept[name] = [d for i, d in enumerate(docs) if i not in dropped]
    return result
