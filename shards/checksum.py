"""Shard checksums (xxh3-64, as the manifest records them) and the files this process has verified."""

from __future__ import annotations

import os

import xxhash

from gristmill.errors import BuildError

VERIFY_HINT = "rebuild the build, or delete the file from the cache so it is downloaded again"
_VERIFIED: set[tuple[str, int, int, str]] = set()  # (real path, size, mtime_ns, xxh3) verified here


def same_hash(expected: str, actual: str) -> bool:
    """Return True when two xxh3 hex digests are the same number (leading zeros aside)."""
    try:
        return int(expected, 16) == int(actual, 16)
    except ValueError:
        return False


def checksum_error(path: str, expected: str, actual: str) -> BuildError:
    """Return the error for a shard whose checksum is not the manifest's."""
    return BuildError(
        f"shard checksum mismatch: xxh3 {actual}, the manifest says {expected}", path=path, hint=VERIFY_HINT
    )


def _key(path: str, xxh3: str) -> tuple[str, int, int, str]:
    stat = os.stat(path)
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, xxh3)


def verified_before(path: str, xxh3: str) -> bool:
    """Return True when this process verified the file at `path`, unchanged since, against `xxh3`."""
    return _key(path, xxh3) in _VERIFIED


def remember_verified(path: str, xxh3: str) -> None:
    """Record that the file at `path`, as it is now, matches `xxh3`."""
    _VERIFIED.add(_key(path, xxh3))


def file_digest(path: str, chunk_bytes: int = 8 << 20) -> str:
    """Return the xxh3-64 hex digest of a local file."""
    digest = xxhash.xxh3_64()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def file_matches(path: str, xxh3: str) -> bool:
    """Return True when the local file at `path` has checksum `xxh3` (hashed once per process per version)."""
    if verified_before(path, xxh3):
        return True
    if not same_hash(xxh3, file_digest(path)):
        return False
    remember_verified(path, xxh3)
    return True
