"""Paths on local disk or any fsspec URL (s3://, gs://, …): globbing, opening, atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

from gristmill.errors import InputError


def current_umask() -> int:
    """Return the process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_local(path: str) -> bool:
    """Return True when `path` is on the local file system (no URL scheme, or file://)."""
    return "://" not in path or path.startswith("file://")


def filesystem(path: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the fsspec file system for `path` and the path inside it."""
    return url_to_fs(path, **storage_options)


def expand(pattern: str, **storage_options: Any) -> list[str]:
    """Return the files matching a path or glob (`**` allowed), sorted, as full URLs; raise if none match.

    A path that exists is that path, even when it holds glob characters (`[old] copy (1)/val.jsonl.zst`);
    only one that does not is read as a glob (write `[[]` for a literal `[` inside a glob).
    """
    fs, inner = filesystem(pattern, **storage_options)
    if any(ch in inner for ch in "*?[") and not fs.exists(inner):
        found = [p for p in fs.glob(inner) if fs.isfile(p)]
    elif fs.isdir(inner):
        found = [p for p in fs.find(inner) if fs.isfile(p)]
    elif fs.exists(inner):
        found = [inner]
    else:
        raise InputError(
            "no such file or directory",
            path=pattern,
            hint="check the path (globs like data/**/*.jsonl.zst are allowed)",
        )
    if not found:
        raise InputError("the pattern matches no files", path=pattern)
    return sorted(fs.unstrip_protocol(p) if not is_local(pattern) else p for p in found)


def open_binary(path: str, **storage_options: Any) -> IO[bytes]:
    """Open a local path or URL for streaming binary reads."""
    fs, inner = filesystem(path, **storage_options)
    return fs.open(inner, "rb")


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside `path` and rename it into place only if the block succeeds.

    A killed writer leaves either the old file or none, never a partial one. Object stores write whole
    objects on close, which is atomic by itself.
    """
    if not is_local(path):
        fs, inner = filesystem(path)
        with fs.open(inner, mode) as f:
            yield f
        return
    path = path.removeprefix("file://")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str, obj: Any) -> None:
    """Atomically write `obj` as indented, key-sorted JSON (stable bytes for the same content)."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def read_json(path: str, **storage_options: Any) -> Any:
    """Read a JSON file; raise InputError naming the file when it is missing or malformed."""
    fs, inner = filesystem(path, **storage_options)
    try:
        with fs.open(inner, "r") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}", path=path, where=f"line {e.lineno}") from None
