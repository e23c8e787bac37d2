"""Evaluation items as decontamination sees them, and a user's own evaluation set read from its files.

An item is its id and its text in three parts: `prompt` segments (question, context, passage: each also
matched whole when short), `choices` (the options of a multiple-choice item, in order) and `text` segments
(answers, solutions, code, supporting text). A set is its items, a name, a version, and the sha256 of its
text (`BenchmarkSet.checksum`), which the index and the manifest record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gristmill.errors import InputError
from gristmill.pipelines.config.decontam import BenchmarkFile
from gristmill.storage import expand
from gristmill.streams import MAX_RECORD_BYTES, StreamFault, read_lines, read_parquet


@dataclass(frozen=True)
class Item:
    """One evaluation item: its id within its set, and its text segments in reading order."""

    id: str
    prompt: tuple[str, ...]  # question, context, passage …
    choices: tuple[str, ...] = ()  # a multiple-choice item's options, in order
    text: tuple[str, ...] = ()  # answers, solution, code, supporting text …

    @property
    def segments(self) -> tuple[str, ...]:
        """Every text segment in reading order: prompt, choices, text."""
        return self.prompt + self.choices + self.text


@dataclass
class BenchmarkSet:
    """An evaluation set: its name, where it comes from and in which version, and its items."""

    name: str
    version: str
    items: list[Item] = field(repr=False)

    @property
    def checksum(self) -> str:
        """sha256 (hex) of the set's text: every item's id and segments, in order, unambiguously framed."""
        digest = hashlib.sha256()
        for item in self.items:
            record = [item.id, list(item.prompt), list(item.choices), list(item.text)]
            digest.update(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        return digest.hexdigest()


class FieldError(ValueError):
    """A record's field is missing or not text; the reader adds the file and line."""


def strings(value: Any, name: str) -> list[str]:
    """Return the strings of a field's value: a string, or lists of strings (nested too); None gives none.

    Raises FieldError for anything else (a number, a mapping), naming the field."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v, name)]
    raise FieldError(f"field {name!r} is {type(value).__name__}, expected a string or a list of strings")


def field_value(record: Any, path: str) -> Any:
    """Return the value at dotted `path` in a JSON record; raise FieldError when a step is missing."""
    value = record
    for step in path.split("."):
        if not isinstance(value, dict) or step not in value:
            raise FieldError(f"no field {path!r}")
        value = value[step]
    return value


def item_of(record: Any, spec: BenchmarkFile, default_id: str) -> Item | None:
    """Return the item a record of `spec`'s files holds, or None when its text fields are all empty."""
    prompt, choices, text = (
        tuple(s for path in paths for s in strings(field_value(record, path), path))
        for paths in (spec.prompt, spec.choices, spec.text)
    )
    if not prompt and not choices and not text:
        return None
    if spec.id is None:
        return Item(default_id, prompt, choices, text)
    native = field_value(record, spec.id)
    if isinstance(native, bool) or not isinstance(native, str | int) or native == "":
        raise FieldError(f"field {spec.id!r} is {native!r}, expected a non-empty string or an integer")
    return Item(str(native), prompt, choices, text)


def read_benchmark_file(spec: BenchmarkFile) -> BenchmarkSet:
    """Read a user's evaluation set from its files; every bad file, line, row or field is an InputError
    naming it (an index missing items would let them through unseen, so nothing is skipped)."""
    items: list[Item] = []
    ids: dict[str, str] = {}
    for pattern in spec.paths:
        for path in expand(pattern):
            for where, record in _records(path, spec):
                try:
                    item = item_of(record, spec, f"{path.rsplit('/', 1)[-1]}:{where}")
                except FieldError as e:
                    raise InputError(str(e), path=path, where=where, hint=_fields_hint(spec)) from None
                if item is None:
                    continue
                if item.id in ids:
                    raise InputError(
                        f"item id {item.id!r} again (first at {ids[item.id]})",
                        path=path,
                        where=where,
                        hint=f"ids in field {spec.id!r} must be unique within the set",
                    )
                ids[item.id] = f"{path}:{where}"
                items.append(item)
    if not items:
        raise InputError(
            f"benchmark {spec.name!r}: its files hold no item with text",
            path=spec.paths[0],
            hint=_fields_hint(spec),
        )
    return BenchmarkSet(spec.name, spec.version or "file", items)


def _fields_hint(spec: BenchmarkFile) -> str:
    return (
        f"decontam.files {spec.name!r} reads prompt={spec.prompt}, choices={spec.choices}, text={spec.text}, "
        f"id={spec.id}"
    )


def _records(path: str, spec: BenchmarkFile) -> Iterator[tuple[str, Any]]:
    fmt = spec.format or ("parquet" if path.endswith(".parquet") else "jsonl")
    if fmt == "parquet":
        for batch in read_parquet(path, {}, required=[]):
            if isinstance(batch, StreamFault):
                raise InputError(batch.reason, path=path, where=batch.where)
            for i, row in enumerate(batch.batch.to_pylist()):
                yield f"row {batch.first + i}", row
        return
    yield from json_objects(path)


def json_objects(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (`line N`, object) for each non-blank line of a JSONL file (compressed or not); anything else
    raises an `InputError` naming the file and line."""
    for line in read_lines(path, {}, MAX_RECORD_BYTES):
        if isinstance(line, StreamFault):
            raise InputError(line.reason, path=path, where=line.where)
        where = f"line {line.number}"
        if line.data is None:
            raise InputError(f"a line longer than {MAX_RECORD_BYTES:,} bytes", path=path, where=where)
        if not line.data.strip():
            continue
        try:
            record = json.loads(line.data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"not JSON: {e}", path=path, where=where) from None
        if not isinstance(record, dict):
            raise InputError(f"a JSON {type(record).__name__}, expected an object", path=path, where=where)
        yield where, record
