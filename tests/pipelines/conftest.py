"""Fixtures for the reader tests: small files in each native layout made by code, and a way to read them."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from gristmill.pipelines.readers import BadRecord, reader_for
from gristmill.pipelines.recipe import SourceConfig


def jsonl(records: list[Any]) -> bytes:
    """Return JSON lines for `records`; a `bytes` item is written as the raw line."""
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


def zstd_frames(data: bytes, frames: int = 1) -> bytes:
    """Return `data` zstd-compressed as `frames` concatenated frames split at line ends."""
    lines = data.splitlines(keepends=True) or [b""]
    step = -(-len(lines) // frames)
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
    return b"".join(compressor.compress(b"".join(lines[i : i + step])) for i in range(0, len(lines), step))


def gzip_members(data: bytes, members: int = 1) -> bytes:
    """Return `data` gzip-compressed as `members` concatenated members split at line ends."""
    lines = data.splitlines(keepends=True)
    step = -(-len(lines) // members)
    return b"".join(gzip.compress(b"".join(lines[i : i + step]), mtime=0) for i in range(0, len(lines), step))


def parquet_bytes(table: pa.Table, row_group_size: int = 1024, **options: Any) -> bytes:
    """Return `table` as parquet file bytes (`options` go to pyarrow's writer)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size, **options)
    return buffer.getvalue()


class Files:
    """Writes test files under one root and reads them back through a source's reader."""

    jsonl = staticmethod(jsonl)
    zstd = staticmethod(zstd_frames)
    gzip = staticmethod(gzip_members)
    parquet = staticmethod(parquet_bytes)

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relative: str, data: bytes) -> str:
        """Write `data` at root/relative; return the path."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def source(self, format: str, pattern: str, **extra: Any) -> SourceConfig:
        """Return a source named after its format reading root/pattern."""
        name = {"starcoder": "starcoderdata"}.get(format, format)
        return SourceConfig(name=name, format=format, paths=[str(self.root / pattern)], **extra)

    @staticmethod
    def read(source: SourceConfig, path: str, **reader_options: Any) -> tuple[list, list[BadRecord]]:
        """Return (documents, bad records) of one file."""
        docs, bad = [], []
        for item in reader_for(source, **reader_options).iter_file(path):
            (bad if isinstance(item, BadRecord) else docs).append(item)
        return docs, bad


@pytest.fixture
def files(tmp_path: Path) -> Files:
    """A Files writer rooted in the test's temporary directory."""
    return Files(tmp_path)


@pytest.fixture(scope="session")
def tiny_sliced(tmp_path_factory):
    """The tiny build of tests/pipelines/tiny.py planned in slices of 100 documents (small shards, several
    index partitions a stage), built once per session: (recipe, layout, manifest, corpus). Read it only;
    a test that changes a build changes a copy."""
    from . import tiny

    return tiny.build_tiny(tmp_path_factory.mktemp("tiny-sliced"), 5 << 10, plan_docs_per_task=100)
