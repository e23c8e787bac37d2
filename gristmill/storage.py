"""Paths on local disk or any fsspec URL (s3://, gs://, …): globbing, opening, atomic writes, and the
storage options registered for a build's output.

A build's output may be an object store, where a write is a whole object put on close: `atomic_write`
there discards (aborts) the upload when its block fails, so no partial object is ever committed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
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


_REGISTERED: dict[str, dict[str, Any]] = {}  # URL prefix → storage options, for paths opened without any


def register_storage(prefix: str, options: Mapping[str, Any]) -> None:
    """Open every path under `prefix` that is given no storage options of its own with `options` (the build
    output's endpoint and credentials), in this process.

    An object store's listings are then never cached: the driver must see the objects its tasks write from
    other processes (completion markers, above all). Empty options for a local prefix unregister it.
    """
    prefix = prefix.rstrip("/")
    if not is_local(prefix):
        _REGISTERED[prefix] = {"use_listings_cache": False, **options}
    elif options:
        _REGISTERED[prefix] = dict(options)
    else:
        _REGISTERED.pop(prefix, None)


def registered_storage() -> dict[str, dict[str, Any]]:
    """Return a copy of the registered prefixes and their options (to hand to the tasks of a step)."""
    return {prefix: dict(options) for prefix, options in _REGISTERED.items()}


def options_for(path: str) -> dict[str, Any]:
    """Return the storage options registered for the longest prefix of `path` ({} when none is)."""
    best = max((p for p in _REGISTERED if path == p or path.startswith(p + "/")), key=len, default=None)
    return dict(_REGISTERED[best]) if best is not None else {}


def filesystem(path: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the fsspec file system for `path` and the path inside it (with the options registered for
    `path` when none are given)."""
    return url_to_fs(path, **(storage_options or options_for(path)))


def exists(path: str) -> bool:
    """Return True when the file or directory `path` exists."""
    fs, inner = filesystem(path)
    return fs.exists(inner)


def list_names(path: str) -> list[str]:
    """Return the sorted names of the entries directly under the directory `path` ([] when it is absent)."""
    fs, inner = filesystem(path)
    try:
        return sorted(os.path.basename(p.rstrip("/")) for p in fs.ls(inner, detail=False))
    except FileNotFoundError:
        return []


def remove_tree(path: str) -> None:
    """Delete the directory (or prefix) `path` and everything under it; absent is fine."""
    fs, inner = filesystem(path)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(inner, recursive=True)


def download_tree(path: str, local_dir: str) -> None:
    """Copy every file under the directory `path` into `local_dir` (keeping relative paths)."""
    fs, inner = filesystem(path)
    base = inner.rstrip("/")
    for name in fs.find(base):
        target = os.path.join(local_dir, os.path.relpath(name, base))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fs.get_file(name, target)


def upload_tree(local_dir: str, path: str) -> None:
    """Copy every file under `local_dir` to the directory `path`, each one atomically."""
    for folder, _, names in os.walk(local_dir):
        for name in sorted(names):
            local = os.path.join(folder, name)
            with (
                open(local, "rb") as src,
                atomic_write(f"{path.rstrip('/')}/{os.path.relpath(local, local_dir)}") as dst,
            ):
                for chunk in iter(lambda: src.read(1 << 22), b""):
                    dst.write(chunk)


def read_ranges(path: str, starts: list[int], ends: list[int], max_gap: int = 64 << 10) -> list[bytes]:
    """Return the bytes [starts[i], ends[i]) of the file `path` (ranges sorted and disjoint): ranges less than
    `max_gap` apart are fetched as one read, and the reads are issued concurrently where the file system
    can (object stores)."""
    if not starts:
        return []
    merged_starts, merged_ends = [starts[0]], [ends[0]]
    for start, end in zip(starts[1:], ends[1:]):
        if start - merged_ends[-1] <= max_gap:
            merged_ends[-1] = max(merged_ends[-1], end)
        else:
            merged_starts.append(start)
            merged_ends.append(end)
    fs, inner = filesystem(path)
    reads = fs.cat_ranges([inner] * len(merged_starts), merged_starts, merged_ends, on_error="raise")
    out, read = [], 0
    for start, end in zip(starts, ends):
        while merged_ends[read] < end:
            read += 1
        base = merged_starts[read]
        out.append(bytes(memoryview(reads[read])[start - base : end - base]))
    return out


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

    A killed writer leaves either the old file or none, never a partial one. On an object store the object
    is put on close; when the block fails, the upload is discarded instead.
    """
    if not is_local(path):
        yield from _object_write(path, mode)
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


def _object_write(path: str, mode: str) -> Iterator[IO]:
    """`atomic_write` on an object store: commit on success, discard (abort the upload) on failure."""
    fs, inner = filesystem(path)
    raw = fs.open(inner, "wb")
    f = raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8", newline="")
    try:
        yield f
    except BaseException:
        if f is not raw:
            f.detach()
        with contextlib.suppress(Exception):
            raw.discard()
        raw.closed = True  # closing would put what was written so far
        raise
    f.close()


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


class UseStorage:
    """A step pipeline's element that registers the driver's storage options in the task's process (see
    `register_storage`), then passes data on; a plain callable, so it runs when the task starts."""

    def __init__(self, registered: Mapping[str, Mapping[str, Any]]) -> None:
        self.registered = {prefix: dict(options) for prefix, options in registered.items()}

    def __call__(self, data=None, rank: int = 0, world_size: int = 1):
        for prefix, options in self.registered.items():
            register_storage(prefix, options)
        return data

    def __repr__(self) -> str:
        return f"UseStorage({sorted(self.registered)})"
