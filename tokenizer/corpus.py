"""Documents to train or evaluate on: `(text, source, subset)` triples from parquet, jsonl or text files."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from gristmill.errors import InputError
from gristmill.storage import expand, open_binary

Document = tuple[str, str, str]  # (text, source, subset)


def _decompressed(path: str):
    raw = open_binary(path)
    if path.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw)
    if path.endswith(".gz"):
        import gzip

        return gzip.GzipFile(fileobj=raw)
    return raw


def _read_parquet(path: str, source: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(open_binary(path))
    except Exception as e:
        raise InputError(f"not a readable parquet file: {e}", path=path) from None
    names = table.schema_arrow.names
    if "text" not in names:
        raise InputError(f"parquet file has no `text` column (columns: {', '.join(names)})", path=path)
    columns = [c for c in ("text", "source", "subset") if c in names]
    for batch in table.iter_batches(columns=columns, batch_size=4096):
        data = batch.to_pydict()
        texts = data["text"]
        sources = data.get("source", [source] * len(texts))
        subsets = data.get("subset", [""] * len(texts))
        for text, src, subset in zip(texts, sources, subsets):
            if text:
                yield text, src or source, subset or ""


def _read_jsonl(path: str, source: str) -> Iterator[Document]:
    with _decompressed(path) as raw:
        for lineno, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text = record["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise InputError(f"expected a JSON object with a `text` field ({e})", path=path,
                                 where=f"line {lineno}") from None
            if text:
                yield text, record.get("source") or source, record.get("subset") or ""


def _read_text(path: str, source: str) -> Iterator[Document]:
    with _decompressed(path) as raw:
        try:
            text = raw.read().decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    if text:
        yield text, source, ""


def read_files(patterns: Iterable[str], source: str | None = None) -> Iterator[Document]:
    """Yield the documents of every file matching `patterns`; raise InputError for missing or bad files.

    parquet and jsonl (optionally .zst/.gz) give one document per row/line, with their own `source` and
    `subset` columns when present; any other file is one document. The source defaults to the file's folder.
    """
    for pattern in patterns:
        for path in expand(pattern):
            name = PurePosixPath(path.split("://")[-1])
            default_source = source or name.parent.name or "files"
            stem = name.name.removesuffix(".zst").removesuffix(".gz")
            if stem.endswith(".parquet"):
                yield from _read_parquet(path, default_source)
            elif stem.endswith((".jsonl", ".json")):
                yield from _read_jsonl(path, default_source)
            else:
                yield from _read_text(path, default_source)
