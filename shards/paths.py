"""Paths a manifest names inside its build: relative, normalised, and confined to the build directory.

A manifest may come from anywhere (a copied build, an object store), so the paths in it are checked before
anything is opened or written: `check_relative` refuses an absolute path, a `..`, `.` or empty part, a
backslash or a NUL byte; `confined` joins a checked path to a local root and refuses one that resolves
outside it (a symlink pointing out of the build or the cache).
"""

from __future__ import annotations

import os

_HINT = "a manifest path is relative to the build, like stage-1-2048/shard-00000.arrow"


def relative_path_problem(path: str) -> str | None:
    """Return why `path` is not a plain relative path inside a build (None when it is one)."""
    if not path:
        return "the path is empty"
    if "\x00" in path or "\\" in path:
        return f"{path!r} holds a NUL byte or a backslash"
    if path.startswith("/") or "://" in path or path.startswith("~") or (len(path) > 1 and path[1] == ":"):
        return f"{path!r} is absolute"
    parts = path.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"{path!r} is not normalised (it has an empty, '.' or '..' part)"
    return None


def check_relative(path: str) -> str:
    """Return `path` when it is a plain relative path (see `relative_path_problem`); raise ValueError."""
    problem = relative_path_problem(path)
    if problem is not None:
        raise ValueError(f"{problem}; {_HINT}")
    return path


def confined(root: str, path: str) -> str:
    """Return root/path for a checked relative `path`; raise ValueError when it resolves outside `root`.

    Symlinks are followed on both sides, so a link inside the build that points elsewhere is refused.
    """
    check_relative(path)
    base = os.path.realpath(root)
    full = os.path.join(root, path)
    resolved = os.path.realpath(full)
    if os.path.commonpath([base, resolved]) != base:
        raise ValueError(f"{path!r} resolves to {resolved}, outside {base}")
    return full
