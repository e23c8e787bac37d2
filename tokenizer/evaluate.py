"""Evaluate a tokenizer on held-out documents: compression per source and subset, byte-fallback and unknown
rates, vocabulary use, and a lossless round trip on whole documents; and two tokenizers side by side."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from gristmill.tokenizer.corpus import Document
from gristmill.tokenizer.interface import Tokenizer

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass
class Counts:
    """Totals over a group of documents; the ratios are properties."""

    docs: int = 0
    bytes: int = 0
    chars: int = 0
    words: int = 0
    tokens: int = 0
    byte_fallback: int = 0
    unknown: int = 0
    lossless: int = 0

    def add(self, other: Counts) -> None:
        """Add `other`'s totals to these."""
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def summary(self) -> dict[str, float | int]:
        """Return the totals with bytes/token, chars/token, tokens/word and the rates."""
        tokens = max(self.tokens, 1)
        return {
            **asdict(self),
            "bytes_per_token": self.bytes / tokens,
            "chars_per_token": self.chars / tokens,
            "tokens_per_word": self.tokens / max(self.words, 1),
            "byte_fallback_rate": self.byte_fallback / tokens,
            "unknown_rate": self.unknown / tokens,
            "round_trip_lossless": self.lossless == self.docs,
        }


@dataclass
class Evaluation:
    """Totals, per source, per source/subset, vocabulary use, and documents that did not round-trip."""

    tokenizer: str
    vocab_size: int
    total: Counts = field(default_factory=Counts)
    sources: dict[str, Counts] = field(default_factory=dict)
    subsets: dict[str, Counts] = field(default_factory=dict)
    vocab_used: int = 0
    lossy_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return the evaluation as JSON-ready data (evaluation.json)."""
        return {
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab_size,
            "vocab_used": self.vocab_used,
            "vocab_use": self.vocab_used / max(self.vocab_size, 1),
            "total": self.total.summary(),
            "sources": {k: v.summary() for k, v in sorted(self.sources.items())},
            "subsets": {k: v.summary() for k, v in sorted(self.subsets.items())},
            "lossy_examples": self.lossy_examples,
        }


def _special_ids(tokenizer: Tokenizer) -> tuple[np.ndarray, int | None]:
    byte_ids = [i for i in range(tokenizer.vocab_size) if _BYTE_PIECE.match(tokenizer.id_to_token(i) or "")]
    unk = tokenizer.token_to_id("<unk>")
    return np.asarray(byte_ids, dtype=np.int32), unk


def evaluate(
    tokenizer: Tokenizer, documents: Iterable[Document], name: str = "", batch_size: int = 256
) -> Evaluation:
    """Return the evaluation of `tokenizer` on `documents` (text, source, subset)."""
    result = Evaluation(tokenizer=name or tokenizer.content_hash, vocab_size=tokenizer.vocab_size)
    byte_ids, unk = _special_ids(tokenizer)
    used = np.zeros(tokenizer.vocab_size, dtype=bool)
    batch: list[Document] = []

    def flush() -> None:
        ids, offsets = tokenizer.encode_batch_flat([text for text, _, _ in batch])
        used[ids] = True
        fallback = np.isin(ids, byte_ids)
        for i, (text, source, subset) in enumerate(batch):
            piece = ids[offsets[i] : offsets[i + 1]]
            decoded = tokenizer.decode(piece)
            counts = Counts(
                docs=1,
                bytes=len(text.encode("utf-8", "surrogatepass")),
                chars=len(text),
                words=len(text.split()),
                tokens=len(piece),
                byte_fallback=int(fallback[offsets[i] : offsets[i + 1]].sum()),
                unknown=int((piece == unk).sum()) if unk is not None else 0,
                lossless=int(decoded == text),
            )
            if not counts.lossless and len(result.lossy_examples) < 5:
                result.lossy_examples.append(text[:200])
            result.total.add(counts)
            result.sources.setdefault(source, Counts()).add(counts)
            result.subsets.setdefault(f"{source}/{subset or '-'}", Counts()).add(counts)
        batch.clear()

    for doc in documents:
        batch.append(doc)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    result.vocab_used = int(used.sum())
    return result


COLUMNS = ("bytes_per_token", "chars_per_token", "tokens_per_word", "byte_fallback_rate", "unknown_rate")


def comparison_rows(a: Evaluation, b: Evaluation) -> list[tuple[str, str, float, float]]:
    """Return (group, metric, a, b) rows for the total and every source the two evaluations share."""
    rows = []
    groups = [("total", a.total, b.total)] + [
        (name, a.sources[name], b.sources[name]) for name in sorted(set(a.sources) & set(b.sources))
    ]
    for group, ca, cb in groups:
        sa, sb = ca.summary(), cb.summary()
        rows += [(group, metric, float(sa[metric]), float(sb[metric])) for metric in COLUMNS]
    rows.append(("total", "vocab_use", a.vocab_used / a.vocab_size, b.vocab_used / b.vocab_size))
    return rows
