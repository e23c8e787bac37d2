"""Seeded, order-independent sampling of documents by mixture weight, with a held-out split, and its manifest.

Each document gets a 64-bit key from a hash of (seed, text): the documents of a source with the smallest keys
are kept until the source's byte budget is met (a bottom-k reservoir over bytes). The result depends only on
the seed and the documents, never on their order or on the number of readers, so the same seed gives the
same sample. A separate hash sends `heldout_fraction` of the documents to a held-out reservoir for evaluation.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gristmill.errors import InputError
from gristmill.storage import atomic_write, write_json
from gristmill.tokenizer.corpus import Document

TRAIN_FILE = "train.jsonl"
HELDOUT_FILE = "heldout.jsonl"
MANIFEST_FILE = "sample-manifest.json"
SAMPLE_DIR = "sample"


def _keys(seed: int, text: str) -> tuple[int, float]:
    digest = hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=16, key=seed.to_bytes(8, "little", signed=True)
    ).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") / 2.0**64


class ByteReservoir:
    """Keeps the documents with the smallest keys whose sizes add up to at least `budget` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self._heap: list[tuple[int, int, Document]] = []  # (-key, size, doc): the largest key on top

    def offer(self, key: int, size: int, doc: Document) -> None:
        """Add a document; drop the largest-key ones no longer needed to cover the budget."""
        if self.budget <= 0:
            return
        if self.bytes >= self.budget and key > -self._heap[0][0]:
            return
        heapq.heappush(self._heap, (-key, size, doc))
        self.bytes += size
        while self.bytes - self._heap[0][1] >= self.budget:
            self.bytes -= heapq.heappop(self._heap)[1]

    def documents(self) -> list[Document]:
        """Return the kept documents, in key order (deterministic)."""
        return [doc for _, _, doc in sorted(self._heap, key=lambda item: (-item[0], item[2]))]


@dataclass
class SourceTally:
    """What the sampler saw and took from one source."""

    weight: float
    budget: int
    seen_docs: int = 0
    seen_bytes: int = 0
    train_docs: int = 0
    train_bytes: int = 0
    heldout_docs: int = 0
    heldout_bytes: int = 0


@dataclass
class Sample:
    """A drawn sample: training and held-out documents and what was taken per source."""

    seed: int
    train: list[Document]
    heldout: list[Document]
    sources: dict[str, SourceTally] = field(default_factory=dict)

    @property
    def train_bytes(self) -> int:
        """Return the UTF-8 size of the training documents."""
        return sum(t.train_bytes for t in self.sources.values())

    def manifest(self) -> dict:
        """Return the manifest: seed, per-source weights, budgets, what was seen and taken, file hashes."""
        return {
            "seed": self.seed,
            "train_docs": len(self.train),
            "train_bytes": self.train_bytes,
            "heldout_docs": len(self.heldout),
            "sources": {name: vars(t) for name, t in sorted(self.sources.items())},
            "train_sha256": _docs_hash(self.train),
            "heldout_sha256": _docs_hash(self.heldout),
        }

    def write(self, directory: str | Path) -> None:
        """Write sample/train.jsonl, sample/heldout.jsonl and sample-manifest.json under `directory`."""
        directory = Path(directory)
        for name, docs in ((TRAIN_FILE, self.train), (HELDOUT_FILE, self.heldout)):
            with atomic_write(str(directory / SAMPLE_DIR / name), "w") as f:
                for text, source, subset in docs:
                    record = {"text": text, "source": source, "subset": subset}
                    f.write(json.dumps(record, ensure_ascii=False))
                    f.write("\n")
        write_json(str(directory / MANIFEST_FILE), self.manifest())


def _docs_hash(docs: list[Document]) -> str:
    h = hashlib.sha256()
    for doc in docs:
        for part in doc:
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
    return h.hexdigest()


def draw_sample(
    documents: Iterable[Document],
    sample_bytes: int,
    seed: int,
    weights: dict[str, float] | None = None,
    heldout_bytes: int = 0,
    heldout_fraction: float = 0.0,
    on_document: Callable[[int], None] | None = None,
) -> Sample:
    """Return a seeded sample of about `sample_bytes` bytes mixed by `weights` (source → weight).

    With no weights the sample keeps the corpus's own mixture. Sources missing from `weights` are skipped.
    A source smaller than its share is taken whole (the manifest shows the shortfall). Raises InputError when
    no document (of a weighted source) is seen. `on_document(bytes)` is called per document, for progress.
    """
    shares = None
    if weights:
        total = sum(weights.values())
        if total <= 0 or any(w < 0 for w in weights.values()):
            raise InputError(f"mixture weights must be >= 0 with a positive sum, got {weights}")
        shares = {name: w / total for name, w in weights.items()}
    tallies: dict[str, SourceTally] = {}
    train: dict[str, ByteReservoir] = {}
    heldout: dict[str, ByteReservoir] = {}
    for text, source, subset in documents:
        share = 1.0 if shares is None else shares.get(source, 0.0)
        size = len(text.encode("utf-8", "surrogatepass"))
        if on_document is not None:
            on_document(size)
        if share <= 0 or not text:
            continue
        bucket = "*" if shares is None else source
        if bucket not in train:
            train[bucket] = ByteReservoir(round(sample_bytes * share))
            heldout[bucket] = ByteReservoir(round(heldout_bytes * share))
        tally = tallies.setdefault(source, SourceTally(weight=share, budget=round(sample_bytes * share)))
        tally.seen_docs += 1
        tally.seen_bytes += size
        key, held = _keys(seed, text)
        (heldout if held < heldout_fraction else train)[bucket].offer(key, size, (text, source, subset))
    if not tallies:
        wanted = f" of the weighted sources {sorted(weights)}" if weights else ""
        raise InputError(
            f"the corpus is empty: no document{wanted} was found",
            hint="check the paths/recipe and that the cleaning steps produced documents",
        )
    sample = Sample(seed=seed, train=[], heldout=[], sources=tallies)
    for bucket in sorted(train):
        sample.train += train[bucket].documents()
        sample.heldout += heldout[bucket].documents()
    for docs, prefix in ((sample.train, "train"), (sample.heldout, "heldout")):
        for text, source, _ in docs:
            tally = tallies[source]
            size = len(text.encode("utf-8", "surrogatepass"))
            setattr(tally, f"{prefix}_docs", getattr(tally, f"{prefix}_docs") + 1)
            setattr(tally, f"{prefix}_bytes", getattr(tally, f"{prefix}_bytes") + size)
    return sample
