"""The local cache of a remote build's shards: private to the user, verified before use, evicted to a size.

Layout: ROOT/<build key>/<shard path>.<xxh3>, where ROOT is the `cache_dir` argument, else
$GRISTMILL_CACHE_DIR, else $XDG_CACHE_HOME/gristmill/shards, else ~/.cache/gristmill/shards, and the build
key is a hash of the build's URL. ROOT and each build's folder are created 0700; one that belongs to another
user, or is a symlink, is refused, and one of ours readable by others is made private again. A cached file is
used only after its xxh3 matches the manifest (once per process while it is unchanged); a mismatch deletes it
and the shard is downloaded again. Downloads go to a temporary name, hashed while streaming, and only a
verified file is renamed into place. After each download the least recently used files are deleted until
the whole cache fits `max_bytes` ($GRISTMILL_CACHE_MAX_BYTES, default 64 GiB); the file just fetched stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from typing import Any

import xxhash

from gristmill.errors import BuildError, ConfigError
from gristmill.shards.checksum import checksum_error, file_matches, remember_verified, same_hash
from gristmill.shards.manifest import ShardEntry
from gristmill.shards.paths import confined

CACHE_DIR_ENV = "GRISTMILL_CACHE_DIR"
CACHE_MAX_BYTES_ENV = "GRISTMILL_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 64 << 30
_DOWNLOAD_PREFIX = ".download."
_STALE_DOWNLOAD_S = 24 * 3600  # a temporary download this old was left by a killed process


def default_cache_root() -> str:
    """Return the cache root from the environment: $GRISTMILL_CACHE_DIR, $XDG_CACHE_HOME or ~/.cache."""
    if os.environ.get(CACHE_DIR_ENV):
        return os.environ[CACHE_DIR_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gristmill", "shards")


def default_max_bytes() -> int:
    """Return the cache size limit from $GRISTMILL_CACHE_MAX_BYTES (default 64 GiB); raise ConfigError."""
    text = os.environ.get(CACHE_MAX_BYTES_ENV)
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(
            f"{CACHE_MAX_BYTES_ENV}={text!r} is not a number of bytes ≥ 0", where=CACHE_MAX_BYTES_ENV
        )
    return value


def private_directory(path: str) -> str:
    """Create `path` (mode 0700) or check an existing one is ours; return it. Raise BuildError otherwise.

    An existing directory of ours that others may read or write is made 0700; its files are still
    verified before use, so nothing planted while it was open is trusted.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise BuildError(
            "the shard cache is a symlink or not a directory",
            path=path,
            hint=f"remove it, or set {CACHE_DIR_ENV} to a directory of your own",
        )
    if info.st_uid != os.geteuid():
        raise BuildError(
            f"the shard cache belongs to user id {info.st_uid}, not to you ({os.geteuid()})",
            path=path,
            hint=f"set {CACHE_DIR_ENV} (or cache_dir) to a directory of your own",
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


class ShardCache:
    """One remote build's verified shard copies under a private cache root; safe to pickle into workers."""

    def __init__(self, build: str, root: str | None = None, max_bytes: int | None = None) -> None:
        self.build = build.rstrip("/")
        self.root = os.path.abspath(os.path.expanduser(root or default_cache_root()))
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        if self.max_bytes < 0:
            raise ConfigError(f"cache_max_bytes {self.max_bytes} is below 0", where="cache_max_bytes")
        self.directory = os.path.join(self.root, hashlib.sha256(self.build.encode()).hexdigest()[:16])
        self._ready = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ready": False}  # each process checks the directories itself

    def path(self, entry: ShardEntry) -> str:
        """Return where the shard's verified copy lives; raise BuildError if that is outside the cache."""
        self.prepare()
        try:
            return confined(self.directory, f"{entry.path}.{entry.xxh3}")
        except ValueError as e:
            raise BuildError(
                f"shard path refused by the cache: {e}", path=self.build, where=entry.path
            ) from None

    def lookup(self, entry: ShardEntry) -> str | None:
        """Return the cached copy's path when it matches the manifest's checksum; delete a mismatch."""
        path = self.path(entry)
        if not os.path.isfile(path):
            return None
        if not file_matches(path, entry.xxh3):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return path

    def store(self, entry: ShardEntry, chunks: Iterable[bytes], url: str) -> str:
        """Write the shard's bytes into the cache, verified against the manifest; return the cached path.

        Raises BuildError (naming `url`) on a checksum mismatch; nothing unverified enters the cache.
        """
        path = self.path(entry)
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_DOWNLOAD_PREFIX, suffix=".tmp")
        digest = xxhash.xxh3_64()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
            if not same_hash(entry.xxh3, digest.hexdigest()):
                raise checksum_error(url, entry.xxh3, digest.hexdigest())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        remember_verified(path, entry.xxh3)
        self.evict(keep=path)
        return path

    def evict(self, keep: str | None = None) -> int:
        """Delete least recently used files until the cache root fits max_bytes; return bytes freed."""
        files, total, now = [], 0, time.time()
        for folder, _, names in os.walk(self.root):
            for name in names:
                full = os.path.join(folder, name)
                try:
                    info = os.lstat(full)
                except FileNotFoundError:
                    continue
                if name.startswith(_DOWNLOAD_PREFIX):
                    if now - info.st_mtime > _STALE_DOWNLOAD_S:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(full)
                    continue
                files.append((info.st_mtime, full, info.st_size))
                total += info.st_size
        freed = 0
        for _, full, size in sorted(files):
            if total - freed <= self.max_bytes:
                break
            if full == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)
                freed += size
        return freed

    def prepare(self) -> None:
        """Create the cache root and this build's folder (0700), or check them; raise BuildError."""
        if not self._ready:
            private_directory(self.root)
            private_directory(self.directory)
            self._ready = True
