"""The dedupe job: which files take part, the 64-bit key of every document, partitions, file paths.

A document's key orders it for survival (smaller wins) and says where it is:

    bits 63..56  priority rank: 0 for kept documents of earlier builds (they always win), then 1, 2, … for
                 the recipe's priorities from highest to lowest
    bits 55..32  file ordinal: the input's place in (recipe source order, task); for earlier builds, the place
                 of its index file among all earlier index files
    bits 31..0   row in the file

so the minimum key of a cluster is its survivor: highest priority, then source order, then task, then row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from gristmill.errors import BuildError, ConfigError
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.dedupe import DedupeConfig
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.dedupe.minhash import SIGNATURE_SCHEME, MinHasher
from gristmill.storage import exists, filesystem, read_json

# 2: fast similarity sketching signatures (SIGNATURE_SCHEME); version 1 indexes hold classic MinHash ones.
INDEX_VERSION = 2
EXACT_BAND = -1  # the "band" whose hash is the exact text hash
BANDS_PER_TASK = 8
_FILE_BITS = 24
_ROW_BITS = 32


@dataclass(frozen=True)
class DocFile:
    """One file of documents taking part: an input of this build, or an index file of an earlier one."""

    ordinal: int
    source: str
    task: int
    rows: int
    priority_rank: int
    signatures: str  # Arrow file with exact hash, band hashes and sketches, one row per document
    documents: str | None  # this build's document file; None for an earlier build's index (ids are inside)

    @property
    def earlier(self) -> bool:
        """True for an earlier build's index file."""
        return self.documents is None

    @property
    def tag(self) -> str:
        """Return the name of this file's work files (the shuffle to the bucket tasks)."""
        return f"earlier-{self.ordinal:05d}" if self.earlier else f"{self.ordinal:05d}"

    def keys(self) -> np.ndarray:
        """Return the keys of this file's rows, in row order."""
        base = (self.priority_rank << (_FILE_BITS + _ROW_BITS)) | (self.ordinal << _ROW_BITS)
        return np.uint64(base) + np.arange(self.rows, dtype=np.uint64)


def key_file_ordinal(keys: np.ndarray) -> np.ndarray:
    """Return the file ordinal of each key."""
    return ((keys >> np.uint64(_ROW_BITS)) & np.uint64((1 << _FILE_BITS) - 1)).astype(np.int64)


def key_row(keys: np.ndarray) -> np.ndarray:
    """Return the row of each key in its file."""
    return (keys & np.uint64((1 << _ROW_BITS) - 1)).astype(np.int64)


def key_is_earlier(keys: np.ndarray) -> np.ndarray:
    """Return True where a key is an earlier build's document."""
    return (keys >> np.uint64(_FILE_BITS + _ROW_BITS)) == 0


def index_settings(config: DedupeConfig) -> dict:
    """Return the settings an index must share with a build that uses it."""
    near = config.near
    return {
        "version": INDEX_VERSION,
        "signatures": SIGNATURE_SCHEME,
        "shingle_size": near.shingle_size,
        "bands": near.bands,
        "rows": near.rows,
        "seed": near.seed,
    }


class DedupeJob:
    """Every file, key, partition and path of a build's dedupe; made in the driver, pickled to tasks."""

    def __init__(self, recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]]) -> None:
        self.config = recipe.dedupe
        self.layout = layout
        self.hasher = MinHasher(
            self.config.near.shingle_size,
            self.config.near.bands,
            self.config.near.rows,
            self.config.near.seed,
        )
        order = {s.name: i for i, s in enumerate(recipe.sources)}
        unknown = sorted({s for s, _ in inputs} - set(order))
        if unknown:
            raise BuildError(f"dedupe inputs name sources not in the recipe: {unknown}", path=layout.root)
        priorities = sorted({s.priority for s in recipe.sources}, reverse=True)
        rank = {s.name: 1 + priorities.index(s.priority) for s in recipe.sources}
        self.files: list[DocFile] = []
        for ordinal, (source, task) in enumerate(sorted(set(inputs), key=lambda st: (order[st[0]], st[1]))):
            documents = layout.documents_file(source, task)
            self.files.append(
                DocFile(
                    ordinal,
                    source,
                    task,
                    _parquet_rows(documents),
                    rank[source],
                    self.work("signatures", f"{ordinal:05d}.arrow"),
                    documents,
                )
            )
        self.earlier: list[DocFile] = self._earlier_files()
        if len(self.files) >= 1 << _FILE_BITS or len(self.earlier) >= 1 << _FILE_BITS:
            raise ConfigError(
                f"at most {1 << _FILE_BITS} document files per build can be deduplicated",
                hint="raise files_per_task",
            )
        total = sum(f.rows for f in self.files) + sum(f.rows for f in self.earlier)
        self.partitions = max(1, -(-total // self.config.docs_per_partition))
        self.bands = ([EXACT_BAND] if self.config.exact else []) + (
            list(range(self.config.near.bands)) if self.config.near.enabled else []
        )
        # Bands bucketed by one task, one after another: few tasks on small builds, where Ray's per-task
        # cost (seconds) dwarfs the work; partitions still spread large builds over the cluster.
        step = BANDS_PER_TASK
        self.band_groups = [self.bands[i : i + step] for i in range(0, len(self.bands), step)]

    def work(self, *parts: str) -> str:
        """Return a path under BUILD/dedupe/work (intermediate files)."""
        return self.layout.dedupe("work", *parts)

    def exact_file(self, file: DocFile) -> str:
        """Return a file's exact hashes, partitioned by hash for the bucket tasks."""
        return self.work("bands", "exact", f"{file.tag}.arrow")

    def band_file(self, file: DocFile, group: int) -> str:
        """Return a file's hashes of the near bands of band group `group`, partitioned by hash."""
        return self.work("bands", f"group-{group:02d}", f"{file.tag}.arrow")

    def sketch_file(self, file: DocFile) -> str:
        """Return a file's 8-bit sketches, `hasher.num_perm` bytes per row, one row after another."""
        return self.work("sketches", f"{file.tag}.bin")

    def file_of(self, key_ordinal: int, earlier: bool) -> DocFile:
        """Return the file a key's ordinal points at."""
        return (self.earlier if earlier else self.files)[key_ordinal]

    def partition_of(self, keys: np.ndarray) -> np.ndarray:
        """Return each key's clustering partition: its file ordinal modulo the partition count."""
        return key_file_ordinal(keys) % self.partitions

    def _earlier_files(self) -> list[DocFile]:
        files: list[DocFile] = []
        for build in self.config.against:
            root = BuildLayout(build)
            meta_path = root.dedupe_index_meta
            if not exists(meta_path):
                raise ConfigError(
                    "dedupe.against names a build without a dedupe index",
                    path=meta_path,
                    hint="only builds that ran dedupe (exact or near) can be deduplicated against",
                )
            meta = read_json(meta_path)
            wanted = index_settings(self.config)
            version = (meta.get("version"), meta.get("signatures", "classic MinHash"))
            if version != (wanted["version"], wanted["signatures"]):
                raise ConfigError(
                    f"the earlier build's dedupe index is version {version[0]} with {version[1]} "
                    f"signatures; this gristmill reads version {wanted['version']} with "
                    f"{wanted['signatures']} signatures, and signatures of different schemes cannot be "
                    "compared",
                    path=meta_path,
                    hint="rebuild the earlier build with this gristmill (its index is rewritten), "
                    "or leave it out of dedupe.against",
                )
            got = {k: meta.get(k) for k in wanted}
            if got != wanted:
                raise ConfigError(
                    f"the earlier build's dedupe index was made with other settings: {got}, "
                    f"this recipe has {wanted}",
                    path=meta_path,
                    hint="dedupe.near must match the earlier build's settings",
                )
            for entry in meta["files"]:
                files.append(
                    DocFile(
                        len(files),
                        entry["source"],
                        entry["task"],
                        entry["rows"],
                        0,
                        root.dedupe_index_file(entry["source"], entry["task"]),
                        None,
                    )
                )
        return files


def _parquet_rows(path: str) -> int:
    fs, inner = filesystem(path)
    try:
        with fs.open(inner, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    except FileNotFoundError:
        raise BuildError(
            "the documents file to deduplicate is missing",
            path=path,
            hint="dedupe runs after the ingest step has written every documents file",
        ) from None
