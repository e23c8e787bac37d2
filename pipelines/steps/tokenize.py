"""The tokenize step: encode every clean document, in batches, into a token file per clean file.

A token file is two files, in the clean file's document order:
- BUILD/tokens/<source>/<task>.bin: every document's ids, little-endian uint16 when the vocabulary fits
  (≤ 65,536 ids), else int32 (`shards.format.token_type_for`), one after another, framed as the tokenizer
  frames a text (`Tokenizer.framing`: bos first for sentencepiece/llama2, eos last), so every later count of
  tokens includes the framing;
- BUILD/tokens/<source>/<task>.arrow, its index: an Arrow IPC file with one row per document, `row` (int32,
  the document's row in the clean file), `id` (string), `length` (int32, its tokens in the .bin), and where
  the document came from, for the shards' provenance: `subset` (string), `file` (string, the input file
  relative to its source pattern) and `record` (int64, its line or row there), null where the clean file
  has none, and `quality` (float32, the classifier's score; null in a build without one); its schema
  metadata `gristmill.token_type` names the .bin's id type.
A flat file lets the pack step read just the documents of its shard: memory-mapped when local, ranged reads
on an object store. Beside them, <task>.json holds the task's documents, tokens, log2 length histogram and
the encoder its tokenizer chose (and why, `Tokenizer.encoder_choice`) and, in a build that scores
documents, their documents and tokens per fine score bin (`pipelines.quality.percentile`); once all tasks
end, BUILD/tokens/<source>/histogram.json sums them per source (what a stage's top fraction by score is
read from). Ids go from the encoder to the file as flat
arrays (one id buffer and offsets per batch), never as a Python list per document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline

from gristmill.errors import InputError
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.documents import SCORE_KEY
from gristmill.pipelines.quality.percentile import bin_counts, dense, score_bins, sparse
from gristmill.pipelines.steps.base import WritingStep
from gristmill.pipelines.steps.tokenizer import load_build_tokenizer
from gristmill.pipelines.tables import read_table
from gristmill.shards.format import TOKEN_TYPES, token_dtype, token_type_for
from gristmill.shards.plan import log2_histogram
from gristmill.storage import atomic_write, filesystem, is_local, read_json, read_ranges, write_json

TOKEN_INDEX_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int32(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("subset", pa.string()),
        pa.field("file", pa.string()),
        pa.field("record", pa.int64()),
        pa.field("quality", pa.float32()),
    ]
)
ORIGIN_COLUMNS = ("subset", "file", "record")  # copied from the clean file, when it has them
TOKEN_TYPE_KEY = b"gristmill.token_type"
ENCODE_BATCH = 1024


def add_histograms(counts: Sequence[Sequence[int]]) -> list[int]:
    """Return the bucket-wise sum of log2 histograms of different lengths."""
    total = np.zeros(max((len(c) for c in counts), default=0), np.int64)
    for c in counts:
        total[: len(c)] += np.asarray(c, np.int64)
    return total.tolist()


class TokenizeDocuments(WritingStep):
    """Encodes the clean file of task `rank` (inputs[rank] = (source, task)) into its token file."""

    name = "tokenize"
    type = "🔢 - TOKENIZER"

    def __init__(self, layout: BuildLayout, inputs: list[tuple[str, int]]) -> None:
        super().__init__()
        self.layout = layout
        self.inputs = inputs

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        source, task = self.inputs[rank]
        tokenizer = load_build_tokenizer(self.layout)
        framing = tokenizer.framing
        token_type = token_type_for(tokenizer.vocab_size)
        dtype = token_dtype(token_type)
        lengths: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        indexes: list[pa.RecordBatch] = []
        row = 0
        fs, inner = filesystem(self.layout.clean_file(source, task))
        with fs.open(inner, "rb") as f, atomic_write(self.layout.token_file(source, task, "bin")) as out:
            clean = pq.ParquetFile(f)
            origin = [c for c in ORIGIN_COLUMNS if c in clean.schema_arrow.names]
            scored = SCORE_KEY in clean.schema_arrow.names
            columns = ["id", "text", *origin, *([SCORE_KEY] if scored else [])]
            for batch in clean.iter_batches(batch_size=ENCODE_BATCH, columns=columns):
                texts = batch.column("text").to_pylist()
                ids, offsets = framing.frame_flat(*tokenizer.encode_batch_flat(texts))
                sizes = np.diff(offsets)
                out.write(memoryview(ids.astype(dtype, copy=False)).cast("B"))
                rows = pa.array(np.arange(row, row + len(sizes), dtype=np.int32))
                where = [
                    batch.column(c).cast(kind) if c in origin else pa.nulls(len(sizes), kind)
                    for c, kind in ((c, TOKEN_INDEX_SCHEMA.field(c).type) for c in ORIGIN_COLUMNS)
                ]
                score = (
                    batch.column(SCORE_KEY).cast(pa.float32())
                    if scored
                    else pa.nulls(len(sizes), pa.float32())
                )
                scores.append(score.to_numpy(zero_copy_only=False).astype(np.float32))
                indexes.append(
                    pa.RecordBatch.from_arrays(
                        [rows, batch.column("id"), pa.array(sizes.astype(np.int32)), *where, score],
                        schema=TOKEN_INDEX_SCHEMA,
                    )
                )
                row += len(sizes)
                lengths.append(sizes)
                self.stat_update("documents", value=len(sizes))
                self.stat_update("tokens", value=int(sizes.sum()))
        schema = TOKEN_INDEX_SCHEMA.with_metadata({TOKEN_TYPE_KEY: token_type.encode()})
        with (
            atomic_write(self.layout.token_file(source, task)) as out,
            pa.ipc.new_file(out, schema) as writer,
        ):
            for index in indexes:
                writer.write_batch(index)
        sizes = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        bins = score_bins(np.concatenate(scores) if scores else np.zeros(0, np.float32))
        write_json(
            self.layout.token_file(source, task, "json"),
            {
                "documents": len(sizes),
                "tokens": int(sizes.sum()),
                "log2_histogram": log2_histogram(sizes),
                "encoder": tokenizer.encoder_choice.encoder.name,
                "encoder_note": tokenizer.encoder_choice.note,
                **(
                    {"score_documents": bin_counts(bins), "score_tokens": bin_counts(bins, sizes)}
                    if (bins >= 0).any()
                    else {}
                ),
            },
        )


def write_source_histograms(layout: BuildLayout, inputs: list[tuple[str, int]]) -> None:
    """Sum the per-task stats into BUILD/tokens/<source>/histogram.json for every source, with each token
    file's documents and tokens (what the plan is sliced by)."""
    by_source: dict[str, dict[int, dict]] = {}
    for source, task in inputs:
        by_source.setdefault(source, {})[task] = read_json(layout.token_file(source, task, "json"))
    for source, stats in by_source.items():
        write_json(
            layout.histogram_file(source),
            {
                "documents": sum(s["documents"] for s in stats.values()),
                "tokens": sum(s["tokens"] for s in stats.values()),
                "log2_histogram": add_histograms([s["log2_histogram"] for s in stats.values()]),
                "bucket": "log2_histogram[b] counts documents of [2^b, 2^(b+1)) tokens, bos/eos included",
                "files": [[task, s["documents"], s["tokens"]] for task, s in sorted(stats.items())],
                "encoders": sorted({s["encoder"] for s in stats.values() if "encoder" in s}),
                **{
                    key: sparse(dense(s[key] for s in stats.values() if key in s))
                    for key in ("score_documents", "score_tokens")
                    if any(key in s for s in stats.values())
                },
            },
        )


def token_counts(layout: BuildLayout, sources: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """Return (documents, tokens) of every token file of `sources`, from their histogram.json."""
    counts = {}
    for source in sources:
        for task, documents, tokens in read_json(layout.histogram_file(source))["files"]:
            counts[(source, task)] = (documents, tokens)
    return counts


@dataclass
class TokenFile:
    """A token file's index (each document's length, and where its tokens start in the .bin); `read` gets
    the tokens of chosen documents only."""

    tokens_path: str
    ids: list[str] | None
    lengths: np.ndarray  # int64 per document
    start: np.ndarray  # int64 per document: its first token in the .bin
    dtype: np.dtype  # of the ids in the .bin
    scores: np.ndarray | None = None  # float32 per document (NaN: unscored), when asked for

    @classmethod
    def open(
        cls, layout: BuildLayout, source: str, task: int, with_ids: bool = False, with_scores: bool = False
    ) -> TokenFile:
        """Open the index of the token file of (source, task); raise InputError when it is absent."""
        columns = ["length", *(["id"] if with_ids else []), *([SCORE_KEY] if with_scores else [])]
        table = read_table(layout.token_file(source, task), columns)
        lengths = table.column("length").to_numpy().astype(np.int64)
        start = np.zeros(len(lengths), np.int64)
        np.cumsum(lengths[:-1], out=start[1:])
        ids = table.column("id").to_pylist() if with_ids else None
        token_type = (table.schema.metadata or {}).get(TOKEN_TYPE_KEY, b"int32").decode()
        if token_type not in TOKEN_TYPES:
            raise InputError(
                f"token type {token_type!r} is not one of {', '.join(TOKEN_TYPES)}",
                path=layout.token_file(source, task),
            )
        scores = None
        if with_scores:
            scores = table.column(SCORE_KEY).to_numpy(zero_copy_only=False).astype(np.float32)
        return cls(
            layout.token_file(source, task, "bin"), ids, lengths, start, token_dtype(token_type), scores
        )

    def read(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (tokens, where each of `docs` begins in tokens): document d's ids are
        tokens[begin[i]:begin[i] + lengths[d]] for d = docs[i].

        Only those documents are read (ranged reads; on an object store neighbours are fetched together), so
        a pack task holds its shard's tokens, not every token file it draws from: a memory map of whole
        files would count every page the kernel reads ahead in the task's memory.
        """
        unique, inverse = np.unique(np.asarray(docs, np.int64), return_inverse=True)
        sizes = self.lengths[unique]
        begin = np.zeros(len(unique), np.int64)
        np.cumsum(sizes[:-1], out=begin[1:])
        tokens = np.empty(int(sizes.sum()), self.dtype)
        item = self.dtype.itemsize
        starts, ends = self.start[unique] * item, (self.start[unique] + sizes) * item
        if is_local(self.tokens_path):
            out = memoryview(tokens).cast("B")
            with open(self.tokens_path.removeprefix("file://"), "rb") as f:
                for s, e, b in zip(starts.tolist(), ends.tolist(), (begin * item).tolist()):
                    f.seek(s)
                    f.readinto(out[b : b + e - s])
        else:
            pieces = read_ranges(self.tokens_path, starts.tolist(), ends.tolist())
            for piece, b in zip(pieces, begin.tolist()):
                tokens[b : b + len(piece) // item] = np.frombuffer(piece, self.dtype)
        return tokens, begin[inverse]

    def document(self, d: int) -> np.ndarray:
        """Return the tokens of document `d` (framing included)."""
        tokens, begin = self.read(np.asarray([d]))
        return np.asarray(tokens[begin[0] : begin[0] + self.lengths[d]])


def token_file_origins(layout: BuildLayout, source: str, task: int, docs: np.ndarray) -> pa.Table:
    """Return `id`, `length` and the origin columns (subset, file, record) of documents `docs` of the token
    file of (source, task), in the order of `docs`."""
    table = read_table(layout.token_file(source, task), ["id", "length", *ORIGIN_COLUMNS])
    return table.take(pa.array(np.asarray(docs, np.int64)))
