"""Documents to train or evaluate on: `(text, source, subset)` triples from parquet, jsonl or text files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from gristmill.errors import InputError
from gristmill.storage import expand
from gristmill.streams import MAX_RECORD_BYTES, StreamFault, read_lines, read_parquet, read_whole

Document = tuple[str, str, str]  # (text, source, subset)


def _fault(path: str, fault: StreamFault) -> InputError:
    return InputError(fault.reason, path=path, where=None if fault.where == "file" else fault.where)


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    for item in read_lines(path, {}, MAX_RECORD_BYTES):
        if isinstance(item, StreamFault):
            raise _fault(path, item)
        if item.data is None:
            raise InputError(
                f"a line of {item.size:,} bytes, above the {MAX_RECORD_BYTES:,}-byte limit",
                path=path,
                where=f"line {item.number}",
            )
        yield item.number, item.data


def _read_parquet(path: str, source: str) -> Iterator[Document]:
    for item in read_parquet(path, {}, required=["text"], text_column="text"):
        if isinstance(item, StreamFault):
            raise _fault(path, item)
        names = item.batch.schema.names
        data = item.batch.to_pydict()
        texts = data["text"]
        sources = data["source"] if "source" in names else [source] * len(texts)
        subsets = data["subset"] if "subset" in names else [""] * len(texts)
        for text, src, subset in zip(texts, sources, subsets):
            if text:
                yield text, src or source, subset or ""


def _read_jsonl(path: str, source: str) -> Iterator[Document]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text = record["text"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise InputError(
                f"expected a JSON object with a `text` field ({e})", path=path, where=f"line {number}"
            ) from None
        if not isinstance(text, str):
            raise InputError(
                f"`text` is {type(text).__name__}, expected a string", path=path, where=f"line {number}"
            )
        if text:
            yield text, record.get("source") or source, record.get("subset") or ""


def _read_text(path: str, source: str) -> Iterator[Document]:
    data = read_whole(path, {}, MAX_RECORD_BYTES)
    if isinstance(data, StreamFault):
        raise _fault(path, data)
    try:
        text = data.decode("utf-8")
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
