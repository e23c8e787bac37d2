"""Decontamination of files without a build (`gristmill decontam check`): the same index and matching as the
ingest chain, over JSON lines, parquet or plain text files, with counts per evaluation set × file.

A JSON lines file (plain, .gz or .zst) or a parquet file holds one document per record, its text in
`text_field`; any other file is one document. A record without a string text is an InputError naming its
file and line or row (these are the user's files, checked on purpose: nothing is skipped silently).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gristmill.errors import InputError
from gristmill.pipelines.decontam.items import json_objects
from gristmill.pipelines.decontam.match import Decontaminator, Verdict
from gristmill.storage import expand
from gristmill.streams import MAX_RECORD_BYTES, StreamFault, read_parquet, read_whole

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".ndjson")


@dataclass
class FileCounts:
    """What one evaluation set was found doing in one file."""

    items: set[str] = field(default_factory=set)
    documents_dropped: int = 0
    documents_cut: int = 0
    chars_removed: int = 0
    tokens_removed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": len(self.items),
            "documents_dropped": self.documents_dropped,
            "documents_cut": self.documents_cut,
            "chars_removed": self.chars_removed,
            "tokens_removed": self.tokens_removed,
        }


@dataclass
class CheckResult:
    """Documents read per file, and per set × file what was found; every match when asked for."""

    documents: dict[str, int] = field(default_factory=dict)
    found: dict[str, dict[str, FileCounts]] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "found": {s: {f: c.to_dict() for f, c in by.items()} for s, by in self.found.items()},
        }


def documents(path: str, text_field: str) -> Iterator[tuple[str, str]]:
    """Yield (document id, text) of one file: `file:line N`, `file:row N`, or the file itself."""
    name = path.rsplit("/", 1)[-1]
    if path.endswith(".parquet"):
        for batch in read_parquet(path, {}, required=[text_field], text_column=text_field):
            if isinstance(batch, StreamFault):
                raise InputError(batch.reason, path=path, where=batch.where)
            for i, text in enumerate(batch.batch.column(text_field).to_pylist()):
                if text is None:
                    raise InputError(f"`{text_field}` is null", path=path, where=f"row {batch.first + i}")
                yield f"{name}:row {batch.first + i}", text
        return
    if path.endswith(JSONL_SUFFIXES):
        for where, record in json_objects(path):
            text = record.get(text_field)
            if not isinstance(text, str):
                raise InputError(
                    f"no string field `{text_field}` (got {type(text).__name__})",
                    path=path,
                    where=where,
                    hint="name the documents' text field with --text-field",
                )
            yield f"{name}:{where}", text
        return
    data = read_whole(path, {}, MAX_RECORD_BYTES)
    if isinstance(data, StreamFault):
        raise InputError(data.reason, path=path, where=data.where)
    try:
        yield name, data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e})", path=path) from None


def token_counter(tokenizer: str) -> Callable[[Verdict, str], int]:
    """Return a counter of the tokens a verdict removes from a text, with the tokenizer at `tokenizer`."""
    from gristmill.tokenizer.interface import Tokenizer

    loaded = Tokenizer.load(tokenizer)

    def count(verdict: Verdict, text: str) -> int:
        if verdict.action == "drop":
            return len(loaded.framing.frame(loaded.encode(text)))
        return len(loaded.encode("\n".join(text[a:b] for a, b in verdict.removed)))

    return count


def check_files(
    patterns: list[str],
    checker: Decontaminator,
    text_field: str = "text",
    count_tokens: Callable[[Verdict, str], int] | None = None,
    keep_matches: bool = False,
) -> CheckResult:
    """Match every document of the files `patterns` name against `checker`'s index; return the counts per
    set × file (tokens removed when `count_tokens` is given) and, with `keep_matches`, every match."""
    result = CheckResult()
    for pattern in patterns:
        for path in expand(pattern):
            result.documents[path] = 0
            for doc_id, text in documents(path, text_field):
                result.documents[path] += 1
                verdict = checker.check(text)
                if verdict.action == "keep":
                    continue
                _count(result, path, doc_id, text, verdict, count_tokens, keep_matches)
    return result


def _count(
    result: CheckResult,
    path: str,
    doc_id: str,
    text: str,
    verdict: Verdict,
    count_tokens: Callable[[Verdict, str], int] | None,
    keep_matches: bool,
) -> None:
    for found in verdict.found:
        result.found.setdefault(found.benchmark, {}).setdefault(path, FileCounts()).items.add(found.item_id)
        if keep_matches:
            result.matches.append(
                {
                    "document": doc_id,
                    "file": path,
                    "benchmark": found.benchmark,
                    "item": found.item_id,
                    "action": verdict.action,
                    "text": found.matched_text(text),
                }
            )
    assert verdict.benchmark is not None
    counts = result.found[verdict.benchmark][path]
    if verdict.action == "drop":
        counts.documents_dropped += 1
    else:
        counts.documents_cut += 1
    counts.chars_removed += verdict.removed_chars
    if count_tokens is not None:
        counts.tokens_removed = (counts.tokens_removed or 0) + count_tokens(verdict, text)
