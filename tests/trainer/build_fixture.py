"""Small real builds for the trainer's tests, written directly with pyarrow in the documented shard format.

The text is the Python documentation that ships with the standard library (`pydoc_data.topics`), tokenized
with a tiny byte-level BPE trained on it, so a model can learn real structure and its loss can fall below
the unigram entropy. Topics are split into a training set and a held-out set. Documents are packed in
order into rows of L + 1 tokens (split where a row ends), framed as the tokenizer frames them (this
byte-level BPE: `</s>` last, no bos); the last row is padded.

conftest.py loads it by file path (pytest imports tests in importlib mode, so they cannot import each
other by name) and offers it as the `build_fixture` fixture, and the builds as `builds`.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash

from gristmill.shards.format import ShardMeta, shard_schema
from gristmill.shards.manifest import (
    Manifest,
    ShardEntry,
    SourceEntry,
    SourceRows,
    StageEntry,
    TokenizerEntry,
    write_manifest,
)
from gristmill.tokenizer.interface import Tokenizer

VOCAB_SIZE = 384
SPECIALS = ["<pad>", "<s>", "</s>"]


@dataclass(frozen=True)
class FixtureStage:
    """A stage to write: name, sequence length, tokens per optimizer step, and its share of the documents."""

    name: str
    seq_len: int
    tokens_per_step: int
    share: float = 1.0


def documents() -> tuple[list[str], list[str]]:
    """Return (training, held-out) documents: paragraphs of the stdlib's pydoc topics, split by topic."""
    from gristmill.sample.text import doc_topics, paragraphs

    train, held_out = [], []
    for i, page in enumerate(doc_topics()):
        (held_out if i % 8 == 7 else train).extend(paragraphs(page, min_chars=41))
    return train, held_out


def train_tokenizer(directory: Path, texts: list[str], vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Train a byte-level BPE on `texts`, save it as directory/tokenizer.json, and return it loaded."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(texts, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    hf.save(str(directory / "tokenizer.json"))
    return Tokenizer.load(directory)


def pack_rows(docs: list[np.ndarray], seq_len: int, pad_id: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pack documents in order into rows of seq_len + 1 tokens; return tokens (rows, L+1) and doc_offsets."""
    width = seq_len + 1
    stream = np.concatenate(docs)
    ends = np.cumsum([len(d) for d in docs])
    rows = -(-len(stream) // width)
    tokens = np.full((rows, width), pad_id, dtype=np.int32)
    tokens.reshape(-1)[: len(stream)] = stream
    offsets = []
    for r in range(rows):
        lo, hi = r * width, min((r + 1) * width, len(stream))
        inner = ends[(ends > lo) & (ends < hi)] - lo
        offsets.append(np.concatenate([[0], inner, [hi - lo]]).astype(np.int32))
    return tokens, offsets


def write_shard(
    path: Path, meta: ShardMeta, tokens: np.ndarray, offsets: list[np.ndarray], rows_per_batch: int = 16
) -> tuple[str, int]:
    """Write one shard file; return (xxh3-64 hex, bytes)."""
    schema = shard_schema(meta)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for a in range(0, len(tokens), rows_per_batch):
            chunk, docs = tokens[a : a + rows_per_batch], offsets[a : a + rows_per_batch]
            list_offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int32)
            flat = pa.array(chunk.reshape(-1), pa.int32())
            columns = [
                pa.FixedSizeListArray.from_arrays(flat, meta.seq_len + 1),
                pa.ListArray.from_arrays(pa.array(list_offsets), pa.array(np.concatenate(docs))),
                pa.array(np.zeros(len(chunk), np.uint8)),
            ]
            writer.write_batch(pa.record_batch(columns, schema=schema))
    data = path.read_bytes()
    return xxhash.xxh3_64_hexdigest(data), len(data)


def write_build(
    root: Path,
    texts: list[str],
    tokenizer: Tokenizer,
    stages: list[FixtureStage],
    name: str = "trainer-test",
    rows_per_shard: int = 64,
) -> Manifest:
    """Write a build of `texts` at `root`: BUILD/tokenizer, one folder of shards per stage, manifest.json.

    Documents are dealt to stages in order by their `share`; returns the manifest.
    """
    root.mkdir(parents=True, exist_ok=True)
    tokenizer.save(root / "tokenizer")
    docs = [tokenizer.framing.frame(ids) for ids in tokenizer.encode_batch(texts)]
    cuts = np.cumsum([0] + [s.share for s in stages]) / sum(s.share for s in stages)
    entries = []
    for i, spec in enumerate(stages):
        part = docs[int(cuts[i] * len(docs)) : int(cuts[i + 1] * len(docs))]
        tokens, offsets = pack_rows(part, spec.seq_len, tokenizer.pad_id)
        meta = ShardMeta(
            seq_len=spec.seq_len,
            pad_id=tokenizer.pad_id,
            eos_id=tokenizer.eos_id,
            tokenizer_hash=tokenizer.content_hash,
            bos_id=tokenizer.framing.bos_id,
        )
        (root / spec.name).mkdir()
        shards = []
        for n, a in enumerate(range(0, len(tokens), rows_per_shard)):
            rel = f"{spec.name}/shard-{n:05d}.arrow"
            rows = tokens[a : a + rows_per_shard]
            used = sum(int(o[-1]) for o in offsets[a : a + rows_per_shard])
            digest, size = write_shard(root / rel, meta, rows, offsets[a : a + rows_per_shard])
            shards.append(
                ShardEntry(
                    path=rel,
                    rows=len(rows),
                    tokens=used,
                    source_tokens={"docs": used},
                    source_rows=[SourceRows(source="docs", rows=len(rows), passes=1, trained_tokens=used)],
                    xxh3=digest,
                    bytes=size,
                    padding_tokens=rows.size - used,
                )
            )
        number = len(entries) + 1
        entries.append(
            StageEntry.of_shards(spec.name, number, spec.seq_len, spec.tokens_per_step, shards, {"docs": 1.0})
        )
    manifest = Manifest(
        name=name,
        recipe={},
        recipe_hash="test",
        seed=0,
        sources=[SourceEntry(name="docs", format="text", kind="web", priority=0)],
        accounting={},
        tokenizer=TokenizerEntry.of(tokenizer, "tokenizer"),
        stages=entries,
    )
    write_manifest(str(root), manifest)
    return manifest


@dataclass(frozen=True)
class TestBuilds:
    """A training build with two curriculum stages, a held-out build, and their tokenizer."""

    train: Path
    held_out: Path
    tokenizer: Tokenizer


TRAIN_STAGES = [
    FixtureStage("stage-1-64", 64, 1024, share=0.5),
    FixtureStage("stage-2-128", 128, 1024, share=0.5),
]
HELD_OUT_STAGES = [FixtureStage("held-out-64", 64, 1024)]


def make_builds(base: Path) -> TestBuilds:
    """Return the test builds under `base`, writing them once (later calls, any process, reuse them)."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        train_texts, held_out_texts = documents()
        done = base / "done"
        if not done.exists():
            tokenizer = train_tokenizer(base / "tokenizer", train_texts)
            write_build(base / "train", train_texts, tokenizer, TRAIN_STAGES)
            write_build(base / "held-out", held_out_texts, tokenizer, HELD_OUT_STAGES, name="held-out")
            done.touch()
        return TestBuilds(base / "train", base / "held-out", Tokenizer.load(base / "tokenizer"))


def unigram_entropy(build: Path) -> float:
    """Return the entropy (nats per token) of the counted targets of a build under their own unigram
    distribution: the loss of the best model that ignores context."""
    from gristmill.shards.loader import ShardStream
    from gristmill.shards.manifest import read_manifest

    manifest = read_manifest(str(build))
    counts: dict[int, int] = {}
    for stage in manifest.stages:
        stream = ShardStream(
            str(build),
            micro_batch_tokens=stage.seq_len,
            curriculum=[(stage.name, stage.rows * stage.seq_len)],
        )
        for batch in stream:
            targets = batch["targets"][batch["loss_mask"]]
            ids, n = np.unique(targets, return_counts=True)
            for i, c in zip(ids.tolist(), n.tolist()):
                counts[i] = counts.get(i, 0) + c
        stream.close()
    p = np.array(list(counts.values()), dtype=np.float64)
    p /= p.sum()
    return float(-(p * np.log(p)).sum())
