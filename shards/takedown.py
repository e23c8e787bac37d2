"""Take documents out of a finished build by id, rewriting only the shards that hold them.

For each id, the stages' document indexes give the rows holding it (shards/provenance.py). Each shard with
such a row is rewritten: the document's segments leave the row, the row's other segments move left over
them (in order), and padding fills the rest; a row left with no document keeps doc_offsets [0], all padding.
So every row stays where it was, and the walks, loader states and trained row counts stay valid
(`Manifest.walk_hash` does not change). The shard's provenance sidecar loses the segments' lines, and the
stages' index partitions holding the ids lose theirs; the rows, tokens, padding and trained tokens of the
shards and stages follow, and the accounting counts each document taken out as `removed` (in = kept +
filtered + duplicate + quarantined + removed). The manifest records the takedown (`Removal`: counts, the
sha256 of the sorted id list and of each id, never an id in the clear) and gets a new content hash.

Crash safety: rewritten files get new names (`shard-00003.t1.arrow` for the first takedown, `.t2` for the
next, …), the manifest is written (atomically) after them and the old files are deleted only then. A
takedown killed before its manifest leaves the build as it was, plus files no manifest names, which the next
takedown deletes first; one killed after it leaves old files no manifest names, deleted the same way.

Not rewritten: the build's work files (documents/, clean/, tokens/, plan/, dropped/ samples, dedupe/)
still hold the documents' text; docs/provenance.md says what to do with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.errors import BuildError
from gristmill.shards.checksum import same_hash
from gristmill.shards.manifest import (
    Counts,
    FileEntry,
    Manifest,
    Removal,
    ShardEntry,
    SourceRows,
    StageEntry,
    read_manifest,
    write_manifest,
)
from gristmill.shards.provenance import (
    INDEX_ROW_GROUP,
    SIDECAR_ROW_GROUP,
    id_hashes,
    id_list_hash,
    index_partition,
    read_parquet,
    read_where,
    removal_hash,
    sidecar_path,
    write_parquet,
)
from gristmill.shards.reader import open_shard
from gristmill.shards.trace import NO_PROVENANCE_HINT
from gristmill.shards.writer import file_xxh3, shard_table, write_shard
from gristmill.storage import list_names, remove_tree

_TAKEN = re.compile(r"^(?P<stem>.*?)(?:\.t\d+)?(?P<ext>\.arrow|\.docs\.parquet|\.parquet)$")
_OURS = re.compile(r"^(shard-\d+(\.t\d+)?\.(arrow|docs\.parquet)|documents-\d+(\.t\d+)?\.parquet)$")


def retaken(path: str, number: int) -> str:
    """Return the name a file gets when takedown `number` rewrites it (`shard-00003.arrow` →
    `shard-00003.t1.arrow`; `shard-00003.t1.docs.parquet` → `shard-00003.t2.docs.parquet`)."""
    match = _TAKEN.match(path)
    if match is None:
        raise ValueError(f"{path!r} is not a shard, sidecar or index file")
    return f"{match['stem']}.t{number}{match['ext']}"


@dataclass
class TakedownReport:
    """What a takedown found and did (with `dry_run`, what it would do)."""

    requested: int  # distinct ids asked for
    found: list[str] = field(default_factory=list)  # the ids the build held (never written anywhere)
    documents: int = 0
    segments: int = 0
    tokens: int = 0
    rows: int = 0
    emptied_rows: int = 0
    shards: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path)
    index_files: list[tuple[str, str]] = field(default_factory=list)
    removed: dict[str, dict[str, int]] = field(default_factory=dict)  # source → subset → documents
    content_hash: str | None = None  # the new manifest's (None: nothing written)

    @property
    def missing(self) -> int:
        """Return how many of the ids asked for the build does not hold."""
        return self.requested - len(self.found)

    def to_dict(self) -> dict:
        """Return the report as JSON-ready data (without the ids)."""
        return {
            "requested_ids": self.requested,
            "found_ids": len(self.found),
            "missing_ids": self.missing,
            "documents": self.documents,
            "segments": self.segments,
            "tokens": self.tokens,
            "rows": self.rows,
            "emptied_rows": self.emptied_rows,
            "shards": [{"old": a, "new": b} for a, b in self.shards],
            "index_files": [{"old": a, "new": b} for a, b in self.index_files],
            "removed": self.removed,
            "content_hash": self.content_hash,
        }


def read_ids(lines: Iterable[str]) -> list[str]:
    """Return the distinct ids of an id list: one per line, blank lines and surrounding whitespace ignored."""
    return sorted({line.strip() for line in lines if line.strip()})


def takedown(build: str, ids: Iterable[str], *, dry_run: bool = False) -> TakedownReport:
    """Take every document whose id is in `ids` out of the build's rows; return what was done.

    Raises BuildError when the build has no provenance, or its files disagree with its manifest (run
    `gristmill shards verify`); nothing is changed then.
    """
    wanted = set(read_ids(ids))
    manifest = read_manifest(build)
    report = TakedownReport(requested=len(wanted))
    hits = _find(build, manifest, wanted)
    report.found = sorted({doc_id for _, _, doc_id in hits["ids"]})
    if not report.found:
        return report
    removed_ids = set(report.found)

    # first what goes, from the sidecars alone: so the accounting is checked before anything is written
    documents = _documents(build, manifest, hits["shards"], removed_ids)
    for source, subset, *_ in documents:
        by_subset = report.removed.setdefault(source, {})
        by_subset[subset] = by_subset.get(subset, 0) + 1
    report.documents = len(documents)
    accounting = _accounting(build, manifest, report.removed)

    number = len(manifest.removals) + 1
    if not dry_run:
        _remove_leftovers(build, manifest)
    stages = []
    old_files: list[str] = []
    for s, stage in enumerate(manifest.stages):
        shards = list(stage.shards)
        for k, entry in enumerate(stage.shards):
            if (s, k) in hits["shards"]:
                shards[k] = _rewrite_shard(build, stage, entry, removed_ids, number, report, dry_run)
                old_files += [entry.path, entry.provenance.path]
        index = list(stage.document_index)
        for p in sorted(hits["partitions"].get(s, ())):
            new = retaken(index[p].path, number)
            if not dry_run:
                _check_file(build, index[p])
                index[p] = _rewrite_index(build, index[p], new, removed_ids)
            report.index_files.append((stage.document_index[p].path, new))
            old_files.append(stage.document_index[p].path)
        stages.append(_restaged(stage, shards, index))
    if dry_run:
        return report
    removal = Removal(
        documents=report.documents,
        ids=len(report.found),
        ids_sha256=id_list_hash(report.found),
        id_sha256=sorted(removal_hash(i) for i in report.found),
        segments=report.segments,
        tokens=report.tokens,
        rows=report.rows,
        emptied_rows=report.emptied_rows,
        shards=[new for _, new in report.shards],
    )
    updated = manifest.model_copy(
        update={"stages": stages, "accounting": accounting, "removals": [*manifest.removals, removal]}
    )
    report.content_hash = write_manifest(build, Manifest.model_validate(updated.model_dump())).content_hash
    for path in old_files:  # only now: a takedown killed before the manifest leaves the build as it was
        remove_tree(_url(build, path))
    return report


def _url(build: str, path: str) -> str:
    return build.rstrip("/") + "/" + path


def _find(build: str, manifest: Manifest, wanted: set[str]) -> dict:
    """Return where the ids in `wanted` lie: "shards" {(stage, shard)}, "partitions" {stage: {partition}} and
    "ids" {(stage, shard, id)}, from the stages' document indexes."""
    ids = sorted(wanted)
    hashes = id_hashes(ids)
    out: dict = {"shards": set(), "partitions": {}, "ids": set()}
    for s, stage in enumerate(manifest.stages):
        if not stage.document_index or any(e.provenance is None for e in stage.shards):
            raise BuildError(f"stage {stage.name!r} has no provenance", path=build, hint=NO_PROVENANCE_HINT)
        partition = index_partition(hashes, len(stage.document_index))
        for p in np.unique(partition).tolist():
            mine = hashes[partition == p]
            lines = read_where(
                _url(build, stage.document_index[p].path), "hash", mine.tolist(), ["id", "shard"]
            )
            for doc_id, shard in zip(lines.column("id").to_pylist(), lines.column("shard").to_pylist()):
                if doc_id in wanted:
                    out["shards"].add((s, shard))
                    out["partitions"].setdefault(s, set()).add(p)
                    out["ids"].add((s, shard, doc_id))
    return out


def _documents(
    build: str, manifest: Manifest, shards: set[tuple[int, int]], removed_ids: set[str]
) -> set[tuple]:
    """Return the documents with one of `removed_ids` in the given (stage, shard)s' sidecars, each as
    (source, subset, file, record, id): a document split over shards is one."""
    found = set()
    for s, k in sorted(shards):
        entry = manifest.stages[s].shards[k]
        lines = read_parquet(_url(build, entry.provenance.path), ["id", "source", "subset", "file", "record"])
        gone = lines.filter(pc.is_in(lines.column("id"), value_set=pa.array(sorted(removed_ids))))
        found.update((d["source"], d["subset"], d["file"], d["record"], d["id"]) for d in gone.to_pylist())
    return found


def _remove_leftovers(build: str, manifest: Manifest) -> None:
    """Delete shard, sidecar and index files in the stage folders that the manifest does not name (what an
    interrupted takedown left)."""
    for stage in manifest.stages:
        named = {p for e in stage.shards for p in (e.path, e.provenance.path if e.provenance else "")}
        named |= {e.path for e in stage.document_index}
        folder = stage.shards[0].path.rsplit("/", 1)[0] if "/" in stage.shards[0].path else ""
        for name in list_names(_url(build, folder)):
            path = f"{folder}/{name}" if folder else name
            if _OURS.match(name) and path not in named:
                remove_tree(_url(build, path))


def _rewrite_shard(
    build: str,
    stage: StageEntry,
    entry: ShardEntry,
    removed_ids: set[str],
    number: int,
    report: TakedownReport,
    dry_run: bool,
) -> ShardEntry:
    """Rewrite one shard without the segments of `removed_ids` (with `dry_run`, only count them); return its
    new entry."""
    for file in (entry, entry.provenance):  # never rewrite from a damaged file
        _check_file(build, file)
    shard = open_shard(_url(build, entry.path), seq_len=stage.seq_len, rows=entry.rows)
    sidecar = read_parquet(_url(build, entry.provenance.path))
    tokens = np.concatenate([b.tokens for b in shard.batches()])  # a copy: the rows to rewrite
    source = np.concatenate([b.source for b in shard.batches()])
    offsets = [
        b.offsets[b.list_offsets[r] : b.list_offsets[r + 1]]
        for b in shard.batches()
        for r in range(len(b.source))
    ]

    line_row = sidecar.column("row").to_numpy()
    gone = pc.is_in(sidecar.column("id"), value_set=pa.array(sorted(removed_ids))).to_numpy(
        zero_copy_only=False
    )
    if len(line_row) != sum(len(o) - 1 for o in offsets):
        raise BuildError(
            f"the sidecar has {len(line_row)} lines, the shard {sum(len(o) - 1 for o in offsets)} segments",
            path=_url(build, entry.provenance.path),
            hint="run `gristmill shards verify`",
        )
    first_line = np.concatenate([[0], np.cumsum([len(o) - 1 for o in offsets])])
    pad = shard.meta.pad_id
    width = stage.seq_len + 1
    touched = np.unique(line_row[gone])
    for row in touched.tolist():
        mine = slice(int(first_line[row]), int(first_line[row + 1]))
        keep = ~gone[mine]
        cuts = offsets[row]
        kept = [tokens[row, cuts[k] : cuts[k + 1]] for k in np.flatnonzero(keep)]
        used = sum(len(t) for t in kept)
        new = np.full(width, pad, tokens.dtype)
        if kept:
            new[:used] = np.concatenate(kept)
        report.tokens += int(cuts[-1]) - used
        tokens[row] = new
        offsets[row] = np.concatenate([[0], np.cumsum([len(t) for t in kept])]).astype(np.int32)
        report.emptied_rows += not kept
    report.rows += len(touched)
    report.segments += int(gone.sum())

    removed = sidecar.filter(pa.array(gone)).to_pylist()
    split_firsts = sum(1 for d in removed if d["start"] == 0 and d["length"] < d["doc_length"])
    new_path = retaken(entry.path, number)
    report.shards.append((entry.path, new_path))
    used = np.array([int(o[-1]) for o in offsets], np.int64)
    updated = {
        "path": new_path,
        "tokens": int(used.sum()),
        "source_tokens": _source_tokens(entry, used),
        "padding_tokens": entry.rows * width - int(used.sum()),
        "split_documents": entry.split_documents - split_firsts,
        "source_rows": _blocks(entry, used),
    }
    if dry_run:
        return entry.model_copy(update=updated)
    list_offsets = np.concatenate([[0], np.cumsum([len(o) for o in offsets])]).astype(np.int32)
    values = np.concatenate(offsets).astype(np.int32)
    written = write_shard(
        _url(build, new_path), shard_table(shard.meta, tokens, list_offsets, values, source)
    )
    kept_lines = sidecar.filter(pa.array(~gone))
    new_sidecar = sidecar_path(new_path)
    side = write_parquet(_url(build, new_sidecar), kept_lines, SIDECAR_ROW_GROUP)
    updated |= {
        "xxh3": written.xxh3,
        "bytes": written.bytes,
        "provenance": FileEntry(path=new_sidecar, bytes=side.bytes, xxh3=side.xxh3),
    }
    return entry.model_copy(update=updated)


def _check_file(build: str, entry: ShardEntry | FileEntry) -> None:
    """Raise BuildError when a file's size or xxh3 is not its manifest entry's."""
    size, digest = file_xxh3(_url(build, entry.path))
    if size != entry.bytes or not same_hash(entry.xxh3, digest):
        raise BuildError(
            f"{size} bytes with xxh3 {digest}, the manifest says {entry.bytes} bytes with xxh3 {entry.xxh3}",
            path=_url(build, entry.path),
            hint="run `gristmill shards verify`, and restore the file before a takedown",
        )


def _source_tokens(entry: ShardEntry, used: np.ndarray) -> dict[str, int]:
    """Return the tokens of each source's block (those holding any), from the rows' used lengths."""
    out, first = {}, 0
    for block in entry.source_rows:
        tokens = int(used[first : first + block.rows].sum())
        if tokens:
            out[block.source] = tokens
        first += block.rows
    return out


def _blocks(entry: ShardEntry, used: np.ndarray) -> list[SourceRows]:
    """Return the shard's source blocks with their trained tokens from the rows' used lengths."""
    blocks, first = [], 0
    for block in entry.source_rows:
        tokens = used[first : first + block.rows]
        trained = block.passes * int(tokens.sum()) + int(tokens[: block.extra_rows].sum())
        blocks.append(block.model_copy(update={"trained_tokens": trained}))
        first += block.rows
    return blocks


def _rewrite_index(build: str, entry: FileEntry, new: str, removed_ids: set[str]) -> FileEntry:
    """Rewrite one index partition without the lines of `removed_ids`; return its new entry."""
    lines = read_parquet(_url(build, entry.path))
    gone = pc.is_in(lines.column("id"), value_set=pa.array(sorted(removed_ids)))
    written = write_parquet(_url(build, new), lines.filter(pc.invert(gone)), INDEX_ROW_GROUP)
    return FileEntry(path=new, bytes=written.bytes, xxh3=written.xxh3)


def _restaged(stage: StageEntry, shards: list[ShardEntry], index: list[FileEntry]) -> StageEntry:
    """Return the stage with its shards and index replaced and its totals summed again."""
    return StageEntry.of_shards(
        stage.name,
        stage.number,
        stage.seq_len,
        stage.tokens_per_step,
        shards,
        stage.sampling,
        index,
        stage.scores,
    )


def _accounting(
    build: str, manifest: Manifest, removed: dict[str, dict[str, int]]
) -> dict[str, dict[str, Counts]]:
    """Return the accounting with each (source, subset)'s documents taken out moved from kept to removed;
    raise BuildError when the accounting has no such subset, or fewer kept than are taken out."""
    if not manifest.accounting:  # a build written without accounting (by hand, or by a tool)
        return {}
    accounting = {
        s: {k: c.model_copy(deep=True) for k, c in subsets.items()}
        for s, subsets in manifest.accounting.items()
    }
    for source, subsets in removed.items():
        for subset, n in subsets.items():
            counts = accounting.get(source, {}).get(subset)
            if counts is None or counts.kept < n:
                raise BuildError(
                    f"the accounting of {source}/{subset} cannot lose {n} kept documents "
                    f"({'no such subset' if counts is None else f'{counts.kept} kept'})",
                    path=build,
                    where="manifest.accounting",
                    hint="run `gristmill shards verify`",
                )
            counts.kept -= n
            counts.removed += n
            counts.keep_rate = round(counts.kept / counts.records_in, 6) if counts.records_in else None
    return accounting
