"""Fixtures for tests/shards (shared file: add fixtures, keep names prefixed by their area).

stream_*: small builds written directly with pyarrow (independent of the shard writer) for the loader's
tests. In every row the first token is 1000 + the row's index in its stage, so a test can tell rows apart.
stream_s3: moto's S3 server on 127.0.0.1 and a way to upload a build to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from gristmill.shards.format import ShardMeta, shard_schema
from gristmill.shards.manifest import (
    Manifest,
    ShardEntry,
    SourceEntry,
    SourceRows,
    StageEntry,
    write_manifest,
)

STREAM_PAD, STREAM_EOS, STREAM_ROW_MARK = 0, 2, 1000


@dataclass
class StreamBuild:
    """A written test build and the ground truth of its rows, per stage: tokens (rows, L+1), doc_offsets."""

    root: str
    tokens: dict[str, np.ndarray]
    offsets: dict[str, list[np.ndarray]]
    seq_len: dict[str, int]


def _stream_rows(rng: np.random.Generator, n: int, seq_len: int, first_row: int):
    tokens = rng.integers(3, STREAM_ROW_MARK, size=(n, seq_len + 1), dtype=np.int32)
    offsets = []
    for r in range(n):
        kind = r % 4  # full row (L + 1 used), exactly L used, padded, one long document
        used = {0: seq_len + 1, 1: seq_len, 2: int(rng.integers(2, seq_len)), 3: seq_len + 1}[kind]
        if kind == 3:
            cuts = np.array([0, used])
        else:
            inner = np.sort(
                rng.choice(np.arange(1, used), size=min(used - 1, int(rng.integers(1, 4))), replace=False)
            )
            cuts = np.concatenate([[0], inner, [used]])
        tokens[r, cuts[1:] - 1] = STREAM_EOS
        tokens[r, used:] = STREAM_PAD
        tokens[r, 0] = STREAM_ROW_MARK + first_row + r
        offsets.append(cuts.astype(np.int32))
    return tokens, offsets


def stream_write_shard(
    path: str,
    meta: ShardMeta,
    tokens: np.ndarray,
    offsets: list[np.ndarray],
    rows_per_batch: int = 5,
    source: np.ndarray | None = None,
) -> tuple[str, int]:
    """Write one shard with pyarrow (record batches of rows_per_batch rows); return (xxh3 hex, bytes)."""
    schema = shard_schema(meta)
    source = np.zeros(len(tokens), np.uint8) if source is None else source
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for a in range(0, max(len(tokens), 1), rows_per_batch):
            chunk, docs = tokens[a : a + rows_per_batch], offsets[a : a + rows_per_batch]
            list_offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int32)
            values = np.concatenate(docs).astype(np.int32) if docs else np.zeros(0, np.int32)
            flat = pa.array(chunk.reshape(-1), schema.field("tokens").type.value_type)
            columns = [
                pa.FixedSizeListArray.from_arrays(flat, meta.seq_len + 1),
                pa.ListArray.from_arrays(pa.array(list_offsets), pa.array(values, pa.int32())),
                pa.array(source[a : a + rows_per_batch].astype(np.uint8)),
            ]
            writer.write_batch(pa.record_batch(columns, schema=schema))
    data = Path(path).read_bytes()
    return xxhash.xxh3_64_hexdigest(data), len(data)


@dataclass(frozen=True)
class StreamSource:
    """A source of a test build: its share of every shard's rows, and how often a walk visits them (every
    row `passes` times, `extra` of the rows of each block once more)."""

    name: str
    share: float = 1.0
    passes: int = 1
    extra: float = 0.0


def stream_write_build(
    root,
    stages: list[tuple[str, int, list[int]]],
    seed: int = 0,
    sources: tuple[StreamSource, ...] = (StreamSource("web"),),
) -> StreamBuild:
    """Write a build with stages (name, seq_len, rows per shard) and its manifest; return its ground truth.

    Each shard's rows are cut into one block per source, in `sources`' order, by their shares."""
    rng = np.random.default_rng(seed)
    build = StreamBuild(str(root), {}, {}, {})
    names = [s.name for s in sources]
    entries = []
    for name, seq_len, shard_rows in stages:
        meta = ShardMeta(
            seq_len=seq_len, pad_id=STREAM_PAD, eos_id=STREAM_EOS, tokenizer_hash="test", token_type="uint16"
        )
        (root / name).mkdir(parents=True)
        shards, all_tokens, all_offsets, first = [], [], [], 0
        for i, n in enumerate(shard_rows):
            tokens, offsets = _stream_rows(rng, n, seq_len, first)
            sizes = np.diff(np.round(np.cumsum([0.0, *(s.share for s in sources)]) * n).astype(np.int64))
            used = np.array([o[-1] for o in offsets], np.int64)
            blocks, source_tokens, row = [], {}, 0
            for spec, size in zip(sources, sizes.tolist()):
                mine = used[row : row + size]
                extra = round(spec.extra * size)
                blocks.append(
                    SourceRows(
                        source=spec.name,
                        rows=size,
                        passes=spec.passes,
                        extra_rows=extra,
                        trained_tokens=spec.passes * int(mine.sum()) + int(mine[:extra].sum()),
                    )
                )
                if size:
                    source_tokens[spec.name] = int(mine.sum())
                row += size
            row_source = np.repeat(np.arange(len(sources)), sizes).astype(np.uint8)
            rel = f"{name}/shard-{i:05d}.arrow"
            digest, size = stream_write_shard(str(root / rel), meta, tokens, offsets, source=row_source)
            shards.append(
                ShardEntry(
                    path=rel,
                    rows=n,
                    tokens=int(used.sum()),
                    source_tokens=source_tokens,
                    source_rows=blocks,
                    xxh3=digest,
                    bytes=size,
                    padding_tokens=n * (seq_len + 1) - int(used.sum()),
                )
            )
            all_tokens.append(tokens)
            all_offsets += offsets
            first += n
        build.tokens[name] = np.concatenate(all_tokens)
        build.offsets[name] = all_offsets
        build.seq_len[name] = seq_len
        sampling = dict.fromkeys(names, 1.0)
        entries.append(StageEntry.of_shards(name, len(entries) + 1, seq_len, 4 * seq_len, shards, sampling))
    manifest = Manifest(
        name="stream-test",
        recipe={},
        recipe_hash="r",
        seed=seed,
        sources=[SourceEntry(name=s, format="jsonl", kind="text", priority=0) for s in names],
        accounting={},
        stages=entries,
    )
    write_manifest(str(root), manifest)
    return build


STREAM_STAGES = [("s1-16", 16, [7, 13, 0, 20]), ("s2-32", 32, [11, 9, 15])]
# Three sources repeated unevenly: web every row twice and half its rows a third time, code once and a
# quarter more, books only a stored subset (a down-sampled source whose stage stored more than it needs).
REPEATED_SOURCES = (
    StreamSource("web", 0.5, passes=2, extra=0.5),
    StreamSource("code", 0.3, passes=1, extra=0.25),
    StreamSource("books", 0.2, passes=0, extra=0.5),
)


@pytest.fixture(scope="session")
def stream_build(tmp_path_factory) -> StreamBuild:
    """A two-stage build: 40 rows of L=16 in 4 shards (one empty), 35 rows of L=32 in 3 shards."""
    return stream_write_build(tmp_path_factory.mktemp("stream-build"), STREAM_STAGES)


@pytest.fixture(scope="session")
def stream_repeated_build(tmp_path_factory) -> StreamBuild:
    """The two stages of `stream_build`, each shard's rows in three source blocks visited unevenly."""
    root = tmp_path_factory.mktemp("stream-repeated-build")
    return stream_write_build(root, STREAM_STAGES, seed=1, sources=REPEATED_SOURCES)


@pytest.fixture
def stream_build_copy(tmp_path) -> StreamBuild:
    """A fresh copy of the two-stage build that a test may damage."""
    return stream_write_build(tmp_path / "build", STREAM_STAGES)


@pytest.fixture
def stream_make_build(tmp_path):
    """A function writing a build from stages [(name, seq_len, rows per shard)] under tmp_path."""
    made = []

    def make(stages: list[tuple[str, int, list[int]]], seed: int = 0) -> StreamBuild:
        made.append(stream_write_build(tmp_path / f"build-{len(made)}", stages, seed))
        return made[-1]

    return make


class StreamS3:
    """moto's S3 server: `upload(root, bucket)` copies a build directory to a new bucket."""

    def __init__(self, endpoint: str, local_s3: Any) -> None:
        self.endpoint = endpoint
        self.local_s3 = local_s3  # bench/local_s3.py
        self.options = local_s3.LocalS3(endpoint).storage_options

    def upload(self, root: str, bucket: str) -> tuple[str, dict]:
        """Upload `root` as s3://bucket/build; return the URL and the storage options that read it."""
        return self.local_s3.LocalS3(self.endpoint).upload_tree(root, bucket, "build"), dict(self.options)


@pytest.fixture(scope="session")
def stream_s3(bench_module):
    """moto's S3 server on a free port of 127.0.0.1, for the whole session."""
    local_s3 = bench_module("local_s3")
    with local_s3.local_s3_server() as endpoint:
        yield StreamS3(endpoint, local_s3)
