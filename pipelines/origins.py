"""Check a build's provenance against its inputs: each segment's record, read again, gives its tokens.

For each segment of each row, `check_origins` reads the record the shard's sidecar names again — the input
file its `file` names (relative to the source's patterns, as ids use it), at its `record` (line or row),
with the source's own reader — tokenizes and frames it with the build's tokenizer, and checks that tokens
[start, start + length) of the framed document are the segment's tokens in the row, that the document's id
is the sidecar's and its framed length the sidecar's `doc_length`.

Three passes, so that nothing holds more than one input file's documents at a time: the sidecars (which
spans of which records are needed), the input files (each read once; each needed record tokenized and the
xxh3 of each needed span kept), the shards (each segment's tokens hashed and compared).

Decontamination's `cut` changes a document on purpose (BUILD/decontamination/removed/ names each one): its
segments are counted as `changed`, not compared. A document any other recipe step changed after reading does
not round-trip; it is reported as a mismatch, as is a record whose input file is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq
import xxhash

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.readers import reader_for, source_files
from gristmill.pipelines.readers.base import ORIGIN_RECORD
from gristmill.pipelines.recipe import Recipe
from gristmill.shards.manifest import Manifest, read_manifest
from gristmill.shards.reader import open_shard
from gristmill.storage import exists, filesystem
from gristmill.tokenizer.interface import Tokenizer

ENCODE_BATCH = 512
Span = tuple[str, str, int, int, int]  # (source, file, record, start, length)


@dataclass
class OriginReport:
    """How many segments round-tripped, and the first problems found."""

    segments: int = 0
    matched: int = 0
    changed: int = 0  # segments of documents decontamination cut (not comparable with their input record)
    documents: int = 0  # distinct records read again
    input_files: int = 0
    problems: list[str] = field(default_factory=list)  # the first `max_problems`
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        """Return True when every segment round-tripped (or was cut by decontamination)."""
        return self.segments == self.matched + self.changed and not self.problem_count

    def problem(self, text: str, limit: int) -> None:
        """Count a problem, keeping its description while fewer than `limit` are kept."""
        self.problem_count += 1
        if len(self.problems) < limit:
            self.problems.append(text)


def span_hash(tokens: np.ndarray) -> int:
    """Return the xxh3-64 of token ids as little-endian int32 (whatever their stored type)."""
    return xxhash.xxh3_64_intdigest(np.ascontiguousarray(tokens, "<i4").tobytes())


def check_origins(
    build: str,
    recipe: Recipe,
    *,
    max_problems: int = 20,
    progress: Callable[[str], None] | None = None,
) -> OriginReport:
    """Return how every segment of the local `build` round-trips to its input record (`recipe`: the build's,
    with paths that reach its inputs from here)."""
    manifest = read_manifest(build)
    report = OriginReport()
    cut = _cut_documents(build)
    needed = _needed_spans(build, manifest, cut)
    tokenizer = Tokenizer.load(f"{build.rstrip('/')}/{manifest.tokenizer.path}")
    expected: dict[Span, int] = {}
    for source in recipe.sources:
        reader = reader_for(source)
        files = {reader.relative_path(path): path for path in source_files(source)}
        for relative, records in sorted(needed.get(source.name, {}).items()):
            if relative not in files:
                report.problem(
                    f"{source.name}: input file {relative!r} is not among the source's files", max_problems
                )
                continue
            report.input_files += 1
            if progress:
                progress(f"reading {files[relative]} ({len(records)} records)")
            expected.update(
                _spans_of_file(
                    reader, files[relative], source.name, relative, records, tokenizer, report, max_problems
                )
            )
    _compare_shards(build, manifest, expected, cut, report, max_problems)
    return report


def _cut_documents(build: str) -> set[str]:
    """Return the ids of the documents decontamination cut (from BUILD/decontamination/removed/)."""
    removed = BuildLayout(build).decontam("removed")
    if not exists(removed):
        return set()
    fs, inner = filesystem(removed)
    cut: set[str] = set()
    for path in sorted(fs.find(inner)):
        if path.endswith(".parquet"):
            with fs.open(path, "rb") as f:
                table = pq.read_table(f, columns=["id", "action"]).to_pydict()
            cut.update(i for i, action in zip(table["id"], table["action"]) if action == "cut")
    return cut


def _needed_spans(
    build: str, manifest: Manifest, cut: set[str]
) -> dict[str, dict[str, dict[int, tuple[str, int, set]]]]:
    """Return source → file → record → (id, doc_length, {(start, length)}) over every sidecar, but for the
    documents decontamination `cut`."""
    needed: dict = {}
    for stage in manifest.stages:
        for entry in stage.shards:
            lines = pq.read_table(f"{build.rstrip('/')}/{entry.provenance.path}").to_pydict()
            for source, file, record, doc_id, start, length, doc_length in zip(
                lines["source"],
                lines["file"],
                lines["record"],
                lines["id"],
                lines["start"],
                lines["length"],
                lines["doc_length"],
            ):
                if file is None or doc_id in cut:
                    continue
                slot = needed.setdefault(source, {}).setdefault(file, {})
                slot.setdefault(record, (doc_id, doc_length, set()))[2].add((start, length))
    return needed


def _spans_of_file(
    reader, path, source, relative, records, tokenizer, report, max_problems
) -> dict[Span, int]:
    """Read one input file and return the xxh3 of every needed span of its needed records."""
    found: dict[Span, int] = {}
    batch = []

    def flush() -> None:
        framed = [tokenizer.framing.frame(ids) for ids in tokenizer.encode_batch([d.text for d in batch])]
        for doc, ids in zip(batch, framed):
            record = doc.metadata[ORIGIN_RECORD]
            doc_id, doc_length, spans = records[record]
            if doc.id != doc_id or len(ids) != doc_length:
                report.problem(
                    f"{source}/{relative}:{record}: read again it is {doc.id!r} of {len(ids)} tokens, the "
                    f"sidecar says {doc_id!r} of {doc_length}",
                    max_problems,
                )
                continue
            tokens = np.asarray(ids, np.int64)
            for start, length in spans:
                found[(source, relative, record, start, length)] = span_hash(tokens[start : start + length])
        report.documents += len(batch)
        batch.clear()

    for item in reader.iter_file(path):
        if getattr(item, "metadata", {}).get(ORIGIN_RECORD) in records:
            batch.append(item)
            if len(batch) >= ENCODE_BATCH:
                flush()
    flush()
    return found


def _compare_shards(build, manifest, expected, cut, report, max_problems) -> None:
    """Hash every segment of every shard and compare it with the span read again (segments of the documents
    decontamination `cut` are counted as changed)."""
    for stage in manifest.stages:
        for entry in stage.shards:
            lines = pq.read_table(
                f"{build.rstrip('/')}/{entry.provenance.path}",
                columns=["source", "file", "record", "start", "length", "id"],
            ).to_pydict()
            shard = open_shard(f"{build.rstrip('/')}/{entry.path}", seq_len=stage.seq_len, rows=entry.rows)
            k = 0
            for batch in shard.batches():
                for r in range(len(batch.source)):
                    cuts = batch.offsets[batch.list_offsets[r] : batch.list_offsets[r + 1]]
                    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
                        key = (
                            lines["source"][k],
                            lines["file"][k],
                            lines["record"][k],
                            lines["start"][k],
                            lines["length"][k],
                        )
                        doc_id = lines["id"][k]
                        k += 1
                        report.segments += 1
                        if doc_id in cut:
                            report.changed += 1
                            continue
                        want = expected.get(key)
                        if want is not None and want == span_hash(batch.tokens[r, a:b]):
                            report.matched += 1
                        else:
                            why = "no record was read again for it" if want is None else "its tokens differ"
                            report.problem(f"{entry.path} row segment {key}: {why}", max_problems)
