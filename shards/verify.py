"""Verifies a build against its manifest: the manifest's own hash, accounting and stage sums, the tokenizer
files, every shard's checksum, schema, offsets, token ids and token counts, its provenance sidecar (one line
per segment, of the row's length and source), each stage's document index (the same segments as the
sidecars), and that no document a takedown removed remains."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import numpy as np

from gristmill.errors import GristmillError
from gristmill.shards.format import token_type_for
from gristmill.shards.manifest import FileEntry, Manifest, ShardEntry, StageEntry, hash_problem, read_manifest
from gristmill.shards.paths import check_relative, confined
from gristmill.shards.provenance import (
    INDEX_SCHEMA,
    SIDECAR_SCHEMA,
    fingerprint,
    id_hashes,
    index_partition,
    read_parquet,
    removal_hash,
)
from gristmill.shards.reader import Batch, open_shard
from gristmill.shards.writer import file_xxh3
from gristmill.storage import download_tree, is_local


@dataclass
class ShardCheck:
    """The outcome for one shard: its path (relative to the build) and the problems found (none: good); and
    its sidecar's segments and their fingerprint, which the stage's document index must match."""

    stage: str
    path: str
    rows: int
    problems: list[str] = field(default_factory=list)
    segments: int = 0
    fingerprint: int = 0

    @property
    def ok(self) -> bool:
        """Return True when the shard has no problem."""
        return not self.problems


@dataclass
class VerifyReport:
    """Every shard's check, and problems of the build as a whole."""

    build: str
    shards: list[ShardCheck]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True when no shard and nothing else has a problem."""
        return not self.problems and all(s.ok for s in self.shards)

    def to_dict(self) -> dict:
        """Return the report as JSON-ready data."""
        return {
            "build": self.build,
            "ok": self.ok,
            "problems": self.problems,
            "shards": [
                {"stage": s.stage, "path": s.path, "rows": s.rows, "ok": s.ok, "problems": s.problems}
                for s in self.shards
            ],
        }


def verify_build(build: str) -> VerifyReport:
    """Check the manifest and every shard it lists; raise BuildError only when the manifest is unreadable
    (missing, malformed, or naming a path outside the build)."""
    manifest = read_manifest(build, check_hash=False)
    report = VerifyReport(build, [])
    problem = hash_problem(manifest)
    if problem is not None:
        report.problems.append(problem)
    report.problems += accounting_problems(manifest)
    report.problems += tokenizer_problems(build, manifest)
    removed = {h for removal in manifest.removals for h in removal.id_sha256}
    for stage in manifest.stages:
        checks = [
            verify_shard(build, manifest, stage, entry, removed, k) for k, entry in enumerate(stage.shards)
        ]
        report.shards += checks
        report.problems += stage_problems(stage)
        report.problems += index_problems(build, stage, checks, removed)
    return report


def accounting_problems(manifest: Manifest) -> list[str]:
    """Return a problem for each (source, subset) whose records in ≠ kept + filtered + duplicate +
    quarantined + removed, and for accounting of a source the manifest does not list."""
    names = {s.name for s in manifest.sources}
    problems = [
        f"the accounting has source {s!r}, which is not in the manifest's sources"
        for s in manifest.accounting
        if s not in names
    ]
    for source, subsets in manifest.accounting.items():
        for subset, counts in subsets.items():
            if not counts.balanced():
                problems.append(
                    f"accounting of {source}/{subset} does not balance: {counts.records_in} in, "
                    f"{counts.out} kept + filtered + duplicate + quarantined + removed"
                )
    return problems


def stage_problems(stage: StageEntry) -> list[str]:
    """Return a problem for each of the stage's totals that is not the sum over its shards."""
    problems = []
    for what, listed, total in (
        ("rows", stage.rows, sum(s.rows for s in stage.shards)),
        ("tokens", stage.tokens, sum(s.tokens for s in stage.shards)),
        ("trained rows", stage.trained_rows, sum(s.visits for s in stage.shards)),
        ("trained tokens", stage.trained_tokens, sum(s.trained_tokens for s in stage.shards)),
        ("padding tokens", stage.padding_tokens, sum(s.padding_tokens for s in stage.shards)),
        ("split documents", stage.split_documents, sum(s.split_documents for s in stage.shards)),
    ):
        if listed != total:
            problems.append(f"stage {stage.name!r} lists {listed} {what}, its shards hold {total}")
    per_source: dict[str, int] = {}
    for shard in stage.shards:
        for name, n in shard.source_tokens.items():
            per_source[name] = per_source.get(name, 0) + n
    if {k: v for k, v in stage.source_tokens.items() if v} != per_source:
        problems.append(
            f"stage {stage.name!r} lists tokens per source {stage.source_tokens}, its shards "
            f"hold {per_source}"
        )
    for shard in stage.shards:
        padding = shard.rows * (stage.seq_len + 1) - shard.tokens
        if shard.padding_tokens != padding:
            problems.append(
                f"shard {shard.path} lists {shard.padding_tokens} padding tokens, its rows and "
                f"tokens make {padding}"
            )
    return problems


def tokenizer_problems(build: str, manifest: Manifest) -> list[str]:
    """Return how the manifest's tokenizer entry differs from the tokenizer files in the build."""
    from gristmill.tokenizer.interface import Tokenizer

    entry = manifest.tokenizer
    if entry is None:
        return ["the manifest has stages but no tokenizer entry"] if manifest.stages else []
    try:
        with tempfile.TemporaryDirectory(prefix="gristmill-verify-") as copy:
            if is_local(build):
                directory = confined(build.removeprefix("file://"), entry.path)
            else:  # a remote build: its tokenizer files are loaded from a local copy
                directory = copy
                download_tree(f"{build.rstrip('/')}/{check_relative(entry.path)}", copy)
            tokenizer = Tokenizer.load(directory)
            found = {
                "hash": tokenizer.content_hash,
                "vocab_size": tokenizer.vocab_size,
                "bos_id": tokenizer.bos_id,
                "eos_id": tokenizer.eos_id,
                "pad_id": tokenizer.pad_id,
            }
    except ValueError as e:
        return [f"tokenizer path refused: {e}"]
    except (GristmillError, OSError) as e:
        return [f"the tokenizer at {entry.path} cannot be loaded: {e}"]
    return [
        f"the manifest's tokenizer {name} is {getattr(entry, name)!r}, the tokenizer files say {want!r}"
        for name, want in found.items()
        if getattr(entry, name) != want
    ]


def _path_in(build: str, relative: str) -> str:
    """Return a file's path in the build; raise ValueError when it resolves outside a local build."""
    if is_local(build):
        return confined(build.removeprefix("file://"), relative)
    return build.rstrip("/") + "/" + relative


def file_problems(build: str, entry: ShardEntry | FileEntry, what: str = "") -> tuple[str | None, list[str]]:
    """Return (the file's path, or None when it cannot be read; what is wrong with its size and xxh3)."""
    try:
        path = _path_in(build, entry.path)
        size, digest = file_xxh3(path)
    except ValueError as e:
        return None, [f"{what}path refused: {e}"]
    except FileNotFoundError:
        return None, [f"{what}file is missing"]
    problems = []
    if size != entry.bytes:
        problems.append(f"{what}size is {size} bytes, the manifest says {entry.bytes}")
    if digest != entry.xxh3:
        problems.append(f"{what}xxh3 is {digest}, the manifest says {entry.xxh3}")
    return path, problems


def verify_shard(
    build: str,
    manifest: Manifest,
    stage: StageEntry,
    entry: ShardEntry,
    removed: set[str] | None = None,
    shard_number: int = 0,
) -> ShardCheck:
    """Check one shard file against its manifest entry and stage, and its provenance sidecar against its rows
    (no line may name an id whose sha256 is in `removed`)."""
    check = ShardCheck(stage.name, entry.path, entry.rows)
    path, check.problems = file_problems(build, entry)
    if path is None:
        return check
    try:
        reader = open_shard(path)
    except GristmillError as e:
        check.problems.append(e.message)
        return check
    meta, tok = reader.meta, manifest.tokenizer
    expected = {"seq_len": stage.seq_len}
    if tok is not None:
        expected |= {
            "tokenizer_hash": tok.hash,
            "eos_id": tok.eos_id,
            "pad_id": tok.pad_id,
            "framing": tok.framing,
        }
        if tok.framing == "bos+eos":
            expected["bos_id"] = tok.bos_id
    for name, want in expected.items():
        if getattr(meta, name) != want:
            check.problems.append(f"schema metadata {name} is {getattr(meta, name)!r}, expected {want!r}")
    if reader.rows != entry.rows:
        check.problems.append(f"holds {reader.rows} rows, the manifest says {entry.rows}")
    if tok is not None and meta.token_type != token_type_for(tok.vocab_size):
        check.problems.append(
            f"token type is {meta.token_type}, a vocabulary of {tok.vocab_size} takes "
            f"{token_type_for(tok.vocab_size)}"
        )
    vocab = tok.vocab_size if tok is not None else None
    names = [s.name for s in manifest.sources]
    sources, used, counts, lengths = [], [], [], []
    first_row = 0
    for batch in reader.batches():
        problem = _check_batch(batch, meta.seq_len + 1, meta.pad_id, vocab, len(names))
        if problem:
            row, text = problem
            check.problems.append(f"row {first_row + row}: {text}")
            return check
        used.append(batch.offsets[batch.list_offsets[1:] - 1].astype(np.int64))
        sources.append(batch.source)
        counts.append(np.diff(batch.list_offsets) - 1)
        lengths.append(np.delete(np.diff(batch.offsets), batch.list_offsets[1:-1] - 1))
        first_row += len(batch.source)
    row_source = np.concatenate(sources) if sources else np.zeros(0, np.uint8)
    row_tokens = np.concatenate(used) if used else np.zeros(0, np.int64)
    if entry.provenance is not None:
        segments = Segments(
            np.concatenate(counts) if counts else np.zeros(0, np.int64),
            np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
            row_source,
        )
        check.problems += sidecar_problems(
            build, entry, names, segments, removed or set(), shard_number, check
        )
    per_source = np.bincount(row_source, weights=row_tokens, minlength=len(names)).astype(np.int64)
    check.problems += block_problems(entry, names, row_source, row_tokens)
    found = {names[i]: int(n) for i, n in enumerate(per_source[: len(names)]) if n}
    if found != entry.source_tokens:
        check.problems.append(f"tokens per source are {found}, the manifest says {entry.source_tokens}")
    if sum(found.values()) != entry.tokens:
        check.problems.append(f"holds {sum(found.values())} tokens, the manifest says {entry.tokens}")
    return check


@dataclass(frozen=True)
class Segments:
    """A shard's segments as its rows hold them: per row, how many and its source; each segment's length."""

    per_row: np.ndarray  # int64 (rows,)
    lengths: np.ndarray  # int64 (segments,), in (row, segment) order
    row_source: np.ndarray  # uint8 (rows,)


def sidecar_problems(
    build: str,
    entry: ShardEntry,
    names: list[str],
    segments: Segments,
    removed: set[str],
    shard_number: int,
    check: ShardCheck,
) -> list[str]:
    """Return what is wrong with a shard's provenance sidecar: its checksum and schema, a line per segment in
    (row, segment) order, each of its segment's length and of its row's source, spans inside the document,
    no removed id; record its segments and fingerprint in `check` for the stage's index check."""
    path, problems = file_problems(build, entry.provenance, "provenance: ")
    if path is None or problems:
        return problems
    try:
        lines = read_parquet(path)
    except GristmillError as e:
        return [f"provenance: {e.message}"]
    if not lines.schema.equals(SIDECAR_SCHEMA):
        return [f"provenance: schema is {lines.schema}, expected {SIDECAR_SCHEMA}"]
    col = {
        c: lines.column(c).to_numpy(zero_copy_only=False) for c in ("row", "start", "length", "doc_length")
    }
    rows = np.repeat(np.arange(len(segments.per_row)), segments.per_row)
    if len(rows) != lines.num_rows or (col["row"] != rows).any():
        return [
            f"provenance: {lines.num_rows} lines, not one per segment in row order ({len(rows)} segments)"
        ]
    bad = np.flatnonzero(col["length"] != segments.lengths)
    if bad.size:
        line = int(bad[0])
        return [
            f"provenance: line {line} (row {rows[line]}) says {col['length'][line]} tokens, the segment has "
            f"{segments.lengths[line]}"
        ]
    source = np.asarray(names, dtype=object)[segments.row_source[rows]]
    bad = np.flatnonzero(lines.column("source").to_numpy(zero_copy_only=False) != source)
    if bad.size:
        line = int(bad[0])
        return [
            f"provenance: line {line} (row {rows[line]}) names source {lines.column('source')[line]}, the "
            f"row's is {source[line]}"
        ]
    outside = (col["start"] < 0) | (col["start"] + col["length"] > col["doc_length"])
    if outside.any():
        return [f"provenance: line {int(np.argmax(outside))} spans tokens beyond its document"]
    ids = lines.column("id").to_pylist()
    if removed and any(removal_hash(i) in removed for i in ids):
        return ["provenance: a document a takedown removed is still in the shard"]
    check.segments = lines.num_rows
    check.fingerprint = fingerprint(
        id_hashes(ids), np.full(lines.num_rows, shard_number), col["row"], col["start"], col["length"]
    )
    return []


def index_problems(build: str, stage: StageEntry, checks: list[ShardCheck], removed: set[str]) -> list[str]:
    """Return what is wrong with a stage's document index: each partition's checksum, schema, hashes (the
    ids', in their partition, sorted), no removed id, and the same segments as the shards' sidecars."""
    if not stage.document_index:
        return []
    if any(e.provenance is None for e in stage.shards):
        return [f"stage {stage.name!r} has a document index but shards without provenance"]
    problems, total, lines_seen = [], 0, 0
    parts = len(stage.document_index)
    for p, entry in enumerate(stage.document_index):
        path, found = file_problems(build, entry, f"document index {entry.path}: ")
        if path is None or found:
            problems += found
            continue
        try:
            lines = read_parquet(path)
        except GristmillError as e:
            problems.append(f"document index {entry.path}: {e.message}")
            continue
        if not lines.schema.equals(INDEX_SCHEMA):
            problems.append(f"document index {entry.path}: schema is {lines.schema}, expected {INDEX_SCHEMA}")
            continue
        ids = lines.column("id").to_pylist()
        hashes = lines.column("hash").to_numpy()
        col = {c: lines.column(c).to_numpy() for c in ("shard", "row", "start", "length")}
        if not np.array_equal(hashes, id_hashes(ids)):
            problems.append(f"document index {entry.path}: a line's hash is not its id's")
        elif (index_partition(hashes, parts) != p).any() or (hashes[1:] < hashes[:-1]).any():
            problems.append(
                f"document index {entry.path}: lines outside partition {p}, or not sorted by hash"
            )
        elif removed and any(removal_hash(i) in removed for i in ids):
            problems.append(f"document index {entry.path}: it names a document a takedown removed")
        total = (total + fingerprint(hashes, col["shard"], col["row"], col["start"], col["length"])) % (
            1 << 64
        )
        lines_seen += lines.num_rows
    if problems:
        return problems
    segments = sum(c.segments for c in checks)
    expected = sum(c.fingerprint for c in checks) % (1 << 64)
    if lines_seen != segments or total != expected:
        problems.append(
            f"stage {stage.name!r}: its document index holds {lines_seen} lines, its sidecars {segments} "
            "segments" + ("" if lines_seen != segments else ", but not the same ones")
        )
    return problems


def block_problems(
    entry: ShardEntry, names: list[str], row_source: np.ndarray, row_tokens: np.ndarray
) -> list[str]:
    """Return how a shard's rows differ from its manifest blocks: each source's rows in one block, in the
    manifest's source order, and each block's trained tokens what its passes and extra rows make."""
    stored = [b.source for b in entry.source_rows]
    order = [name for name in names if name in stored]
    if order != stored:
        return [f"source_rows are in the order {stored}, not the manifest's {order}"]
    problems, first = [], 0
    for block in entry.source_rows:
        name = block.source
        rows = slice(first, first + block.rows)
        if (row_source[rows] != names.index(name)).any():
            bad = first + int(np.argmax(row_source[rows] != names.index(name)))
            problems.append(
                f"row {bad} is not of source {name!r}, whose block is rows {first}–{rows.stop - 1}"
            )
            break
        tokens = row_tokens[rows]
        trained = block.passes * int(tokens.sum()) + int(tokens[: block.extra_rows].sum())
        if trained != block.trained_tokens:
            problems.append(
                f"the {name!r} block trains {trained} tokens, the manifest says {block.trained_tokens}"
            )
        first = rows.stop
    return problems


def _check_batch(
    batch: Batch, width: int, pad_id: int, vocab: int | None, sources: int
) -> tuple[int, str] | None:
    """Return (row in batch, problem) for the first bad row of a record batch, or None."""
    lo, values, tokens = batch.list_offsets.astype(np.int64), batch.offsets, batch.tokens
    counts = np.diff(lo)
    if (counts < 1).any():  # [0]: a row whose documents were all taken down
        return int(np.argmax(counts < 1)), "doc_offsets needs at least [0]"
    firsts = values[lo[:-1]]
    if (firsts != 0).any():
        return int(np.argmax(firsts != 0)), f"doc_offsets starts at {int(firsts[firsts != 0][0])}, not 0"
    step = np.diff(values)
    step[lo[1:-1] - 1] = 1  # the step from one row's last offset to the next row's 0 is not a step
    if (step <= 0).any():
        bad = int(np.argmax(step <= 0))
        return int(np.searchsorted(lo, bad, side="right")) - 1, "doc_offsets are not increasing"
    used = values[lo[1:] - 1]
    if (used > width).any():
        row = int(np.argmax(used > width))
        return row, f"doc_offsets ends at {int(used[row])}, beyond L + 1 = {width}"
    padding = np.arange(width)[None, :] >= used[:, None]
    bad_pad = (padding & (tokens != pad_id)).any(axis=1)
    if bad_pad.any():
        return int(np.argmax(bad_pad)), f"a token after the used length is not the pad id {pad_id}"
    if vocab is not None:
        outside = ((tokens < 0) | (tokens >= vocab)).any(axis=1)
        if outside.any():
            row = int(np.argmax(outside))
            bad = tokens[row][(tokens[row] < 0) | (tokens[row] >= vocab)][0]
            return row, f"token id {int(bad)} is outside the vocabulary (size {vocab})"
    if (batch.source >= sources).any():
        row = int(np.argmax(batch.source >= sources))
        return row, f"source {int(batch.source[row])} is not one of the manifest's {sources} sources"
    return None
