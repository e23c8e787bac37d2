"""Open a build's shards for reading rows: local files by memory map, object stores through a local cache.

Every shard is checked against the manifest the first time this process reads it: its xxh3-64 over the
whole file, its schema's sequence length, and its row count. A local shard's path must stay inside the
build (symlinks resolved). Remote shards are downloaded whole into a private `ShardCache` (see
`gristmill.shards.cache`), which checks every cached file against the manifest before it is used;
`prefetch` downloads the next shards on a background thread (read-ahead). A missing or corrupt shard, or
one whose path leaves the build, raises BuildError naming it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import xxhash

from gristmill.errors import BuildError
from gristmill.shards.cache import ShardCache
from gristmill.shards.checksum import checksum_error, remember_verified, same_hash, verified_before
from gristmill.shards.manifest import MANIFEST_NAME, ShardEntry
from gristmill.shards.paths import confined
from gristmill.shards.reader import ShardFile, open_shard
from gristmill.storage import filesystem, is_local

_DOWNLOAD_CHUNK = 8 << 20
_EVICTED_RETRIES = 3  # fetches of a shard whose cached copy keeps vanishing before it is opened


def local_shard_path(build: str, entry: ShardEntry) -> str:
    """Return a local build's shard file; raise BuildError when its path resolves outside the build."""
    root = build.rstrip("/").removeprefix("file://")
    try:
        return confined(root, entry.path)
    except ValueError as e:
        raise BuildError(
            f"shard path refused: {e}",
            path=f"{root}/{MANIFEST_NAME}",
            where=entry.path,
            hint="the manifest may only name files inside its build",
        ) from None


class ShardSource:
    """Reads shards of one build (local directory or fsspec URL); safe to pickle into worker processes."""

    def __init__(
        self,
        build: str,
        *,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        cache_max_bytes: int | None = None,
        read_ahead: int = 2,
        verify: bool = True,
        max_open: int = 64,
    ) -> None:
        self.build = build.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.local = is_local(build)
        self.cache = None if self.local else ShardCache(self.build, cache_dir, cache_max_bytes)
        self.read_ahead = read_ahead
        self.verify = verify
        self.max_open = max_open
        self._init_process_state()

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._open: OrderedDict[str, ShardFile] = OrderedDict()
        self._pending: dict[str, Future[str]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._fs = None

    def __getstate__(self) -> dict[str, Any]:
        keep = ("build", "storage_options", "local", "cache", "read_ahead", "verify", "max_open")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    @property
    def open_shards(self) -> list[str]:
        """Return the relative paths of the shards this process holds open, least recently used first."""
        return list(self._open)

    def url(self, entry: ShardEntry) -> str:
        """Return the shard's full path or URL."""
        return f"{self.build}/{entry.path}"

    def open(self, entry: ShardEntry, seq_len: int) -> ShardFile:
        """Return the shard's rows, opening (and verifying, the first time) as needed; raise BuildError."""
        self._check_process()
        rows = self._open.get(entry.path)
        if rows is not None:
            self._open.move_to_end(entry.path)
            return rows
        local_path, mapped = self._map(entry)
        if self.verify and self.local:
            self._verify_local(entry, local_path, mapped)
        rows = open_shard(self.url(entry), mapped, seq_len=seq_len, rows=entry.rows)
        self._open[entry.path] = rows
        if len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return rows

    def _map(self, entry: ShardEntry) -> tuple[str, pa.MemoryMappedFile]:
        """Memory-map the shard's local file (a remote one's cached copy); raise BuildError when missing.

        A cached copy can be evicted between lookup and open, by this process's read-ahead fetching the next
        shard or by another process sharing the cache: it is fetched again, a bounded number of times.
        """
        attempts = 1 if self.local else _EVICTED_RETRIES
        for attempt in range(attempts):
            local_path = self._local_copy(entry)
            try:
                return local_path, pa.memory_map(local_path)
            except FileNotFoundError:
                if attempt + 1 < attempts:
                    continue
        raise BuildError(
            "shard is missing",
            path=self.url(entry),
            hint="the build is incomplete or was moved; rebuild or restore it (for a remote build: is "
            "cache_max_bytes smaller than the shards read at once?)",
        )

    def _verify_local(self, entry: ShardEntry, path: str, mapped: pa.MemoryMappedFile) -> None:
        if verified_before(path, entry.xxh3):
            return
        actual = xxhash.xxh3_64_hexdigest(mapped.read_buffer())
        mapped.seek(0)
        if not same_hash(entry.xxh3, actual):
            raise checksum_error(self.url(entry), entry.xxh3, actual)
        remember_verified(path, entry.xxh3)

    def prefetch(self, entries: list[ShardEntry]) -> None:
        """Start downloading remote shards not yet cached (a no-op for local builds)."""
        if self.local or self.read_ahead <= 0:
            return
        self._check_process()
        for entry in entries:
            if entry.path not in self._open:
                self._download_async(entry)

    def close(self) -> None:
        """Stop the read-ahead thread and drop open memory maps."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._open.clear()

    def _check_process(self) -> None:
        if os.getpid() != self._pid:  # forked into a dataloader worker: threads and maps do not survive
            self._init_process_state()

    def _local_copy(self, entry: ShardEntry) -> str:
        if self.local:
            return local_shard_path(self.build, entry)
        future = self._download_async(entry)
        try:
            return future.result()
        finally:  # the next open looks in the cache again: the copy may have been evicted meanwhile
            with self._lock:
                if self._pending.get(entry.path) is future:
                    del self._pending[entry.path]

    def _download_async(self, entry: ShardEntry) -> Future[str]:
        with self._lock:
            future = self._pending.get(entry.path)
            if future is None:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max(1, self.read_ahead), thread_name_prefix="read-ahead")
                future = self._pool.submit(self._download, entry)
                self._pending[entry.path] = future
            return future

    def _download(self, entry: ShardEntry) -> str:
        assert self.cache is not None
        path = self.cache.lookup(entry)  # a verified copy, or None (a mismatching one is deleted)
        if path is not None:
            return path
        if self._fs is None:
            self._fs, _ = filesystem(self.build, **self.storage_options)
        _, inner = filesystem(self.url(entry), **self.storage_options)
        try:
            src = self._fs.open(inner, "rb", block_size=_DOWNLOAD_CHUNK)
        except FileNotFoundError:
            raise BuildError(
                "shard is missing", path=self.url(entry), hint="the build is incomplete or was moved"
            ) from None
        with src:
            return self.cache.store(entry, iter(lambda: src.read(_DOWNLOAD_CHUNK), b""), self.url(entry))
