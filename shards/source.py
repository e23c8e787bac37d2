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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from gristmill.errors import BuildError
from gristmill.shards.cache import ShardCache
from gristmill.shards.checksum import (
    VERIFY_HINT,
    checksum_error,
    remember_verified,
    same_hash,
    verified_before,
)
from gristmill.shards.format import ShardMeta
from gristmill.shards.manifest import MANIFEST_NAME, ShardEntry
from gristmill.shards.paths import confined
from gristmill.storage import filesystem, is_local

_DOWNLOAD_CHUNK = 8 << 20
_EVICTED_RETRIES = 3  # fetches of a shard whose cached copy keeps vanishing before it is opened


@dataclass
class ShardRows:
    """A shard's columns as numpy views (zero-copy over the memory map), one entry per record batch."""

    path: str
    meta: ShardMeta
    chunk_starts: np.ndarray  # (chunks + 1,) first row of each record batch, then the row count
    tokens: list[np.ndarray]  # per chunk (rows, L+1) int32
    doc_offsets: list[np.ndarray]  # per chunk (rows + 1,) offsets into doc_values
    doc_values: list[np.ndarray]  # per chunk int32

    @property
    def rows(self) -> int:
        """Return the number of rows in the shard."""
        return int(self.chunk_starts[-1])

    def take(
        self,
        local: np.ndarray,
        tokens_out: np.ndarray,
        slots: np.ndarray,
        offsets_out: list[tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Copy rows `local` into tokens_out[slots]; append (slots, doc_offsets per row) to offsets_out."""
        chunk = np.searchsorted(self.chunk_starts, local, side="right") - 1
        for c in np.unique(chunk):
            sel = chunk == c
            rows = local[sel] - self.chunk_starts[c]
            tokens_out[slots[sel]] = self.tokens[c][rows]
            lo, hi = self.doc_offsets[c][rows], self.doc_offsets[c][rows + 1]
            for slot, a, b in zip(slots[sel].tolist(), lo.tolist(), hi.tolist()):
                offsets_out.append((slot, self.doc_values[c][a:b]))


def _read_columns(path: str, source: pa.NativeFile, expected_seq_len: int, expected_rows: int) -> ShardRows:
    try:
        reader = pa.ipc.open_file(source)
        meta = ShardMeta.from_schema(reader.schema)
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    except (pa.ArrowInvalid, ValueError) as e:
        raise BuildError(f"unreadable shard: {e}", path=path, hint=VERIFY_HINT) from None
    if meta.seq_len != expected_seq_len:
        raise BuildError(
            f"shard has sequence length {meta.seq_len}, its stage expects {expected_seq_len}",
            path=path,
            hint="the manifest and the shards come from different builds",
        )
    starts = np.zeros(len(batches) + 1, dtype=np.int64)
    tokens, offsets, values = [], [], []
    for i, batch in enumerate(batches):
        starts[i + 1] = starts[i] + batch.num_rows
        tok = batch.column("tokens")
        tokens.append(tok.flatten().to_numpy(zero_copy_only=True).reshape(-1, meta.seq_len + 1))
        docs = batch.column("doc_offsets")
        offsets.append(docs.offsets.to_numpy(zero_copy_only=True).astype(np.int64))
        values.append(docs.values.to_numpy(zero_copy_only=True))
    if starts[-1] != expected_rows:
        raise BuildError(
            f"shard has {starts[-1]} rows, the manifest says {expected_rows}", path=path, hint=VERIFY_HINT
        )
    return ShardRows(path, meta, starts, tokens, offsets, values)


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
        self._open: OrderedDict[str, ShardRows] = OrderedDict()
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

    def open(self, entry: ShardEntry, seq_len: int) -> ShardRows:
        """Return the shard's rows, opening (and verifying, the first time) as needed; raise BuildError."""
        self._check_process()
        rows = self._open.get(entry.path)
        if rows is not None:
            self._open.move_to_end(entry.path)
            return rows
        local_path, mapped = self._map(entry)
        if self.verify and self.local:
            self._verify_local(entry, local_path, mapped)
        rows = _read_columns(self.url(entry), mapped, seq_len, entry.rows)
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
