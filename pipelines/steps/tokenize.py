"""The tokenize step: encode every clean document, in batches, into a token file per clean file.

BUILD/tokens/<source>/<task>.arrow is an Arrow IPC file with one row per document, in the clean file's
order: `row` (int32, the document's row in the clean file), `id` (string) and `tokens` (list<int32>: the ids
framed as the tokenizer frames a text, `Tokenizer.framing`: bos first for sentencepiece/llama2, eos last, so
every later count of tokens includes the framing). Beside it, <task>.json holds the task's documents, tokens
and log2 length histogram; once all tasks end, BUILD/tokens/<source>/histogram.json sums them per source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.steps.base import WritingStep
from gristmill.shards.plan import log2_histogram
from gristmill.storage import atomic_write, filesystem, read_json, write_json
from gristmill.tokenizer.interface import Tokenizer

TOKEN_FILE_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int32(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("tokens", pa.list_(pa.int32()), nullable=False),
    ]
)
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
        tokenizer = Tokenizer.load(self.layout.tokenizer_dir)
        framing = tokenizer.framing
        lengths: list[np.ndarray] = []
        row = 0
        fs, inner = filesystem(self.layout.clean_file(source, task))
        with (
            fs.open(inner, "rb") as f,
            atomic_write(self.layout.token_file(source, task)) as out,
            pa.ipc.new_file(out, TOKEN_FILE_SCHEMA) as writer,
        ):
            for batch in pq.ParquetFile(f).iter_batches(batch_size=ENCODE_BATCH, columns=["id", "text"]):
                ids = tokenizer.encode_batch(batch.column("text").to_pylist())
                docs = [framing.frame(d) for d in ids]
                sizes = np.fromiter((len(d) for d in docs), np.int64, len(docs))
                offsets = np.zeros(len(docs) + 1, np.int32)
                np.cumsum(sizes, out=offsets[1:])
                tokens = pa.ListArray.from_arrays(
                    pa.array(offsets), pa.array(np.concatenate(docs) if docs else np.zeros(0, np.int32))
                )
                writer.write_batch(
                    pa.RecordBatch.from_arrays(
                        [
                            pa.array(np.arange(row, row + len(docs), dtype=np.int32)),
                            batch.column("id"),
                            tokens,
                        ],
                        schema=TOKEN_FILE_SCHEMA,
                    )
                )
                row += len(docs)
                lengths.append(sizes)
                self.stat_update("documents", value=len(docs))
                self.stat_update("tokens", value=int(sizes.sum()))
        sizes = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        write_json(
            self.layout.token_file(source, task, "json"),
            {"documents": len(sizes), "tokens": int(sizes.sum()), "log2_histogram": log2_histogram(sizes)},
        )


def write_source_histograms(layout: BuildLayout, inputs: list[tuple[str, int]]) -> None:
    """Sum the per-task stats into BUILD/tokens/<source>/histogram.json for every source."""
    by_source: dict[str, list[dict]] = {}
    for source, task in inputs:
        by_source.setdefault(source, []).append(read_json(layout.token_file(source, task, "json")))
    for source, stats in by_source.items():
        write_json(
            layout.histogram_file(source),
            {
                "documents": sum(s["documents"] for s in stats),
                "tokens": sum(s["tokens"] for s in stats),
                "log2_histogram": add_histograms([s["log2_histogram"] for s in stats]),
                "bucket": "log2_histogram[b] counts documents of [2^b, 2^(b+1)) tokens, bos/eos included",
            },
        )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


@dataclass
class TokenFile:
    """A token file opened by memory map: each document's length, and where its tokens lie.

    `blocks[block[d]][start[d]:start[d] + lengths[d]]` are the tokens of document d (one block per record
    batch).
    """

    path: str
    ids: list[str] | None
    lengths: np.ndarray  # int64 per document
    block: np.ndarray  # int32 per document
    start: np.ndarray  # int64 per document
    blocks: list[np.ndarray]

    @classmethod
    def open(cls, path: str, with_ids: bool = False) -> TokenFile:
        """Open a token file (local path); raise FileNotFoundError when absent."""
        reader = pa.ipc.open_file(pa.memory_map(path, "r"))
        lengths, block, start, blocks, ids = [], [], [], [], []
        for b in range(reader.num_record_batches):
            tokens = reader.get_batch(b).column("tokens")
            offsets = tokens.offsets.to_numpy().astype(np.int64)
            lengths.append(np.diff(offsets))
            start.append(offsets[:-1])
            block.append(np.full(len(tokens), b, np.int32))
            blocks.append(tokens.values.to_numpy())
            if with_ids:
                ids.extend(reader.get_batch(b).column("id").to_pylist())
        return cls(
            path,
            ids if with_ids else None,
            _concat(lengths, np.int64),
            _concat(block, np.int32),
            _concat(start, np.int64),
            blocks,
        )

    def document(self, d: int) -> np.ndarray:
        """Return the tokens of document `d` (framing included)."""
        s = self.start[d]
        return self.blocks[self.block[d]][s : s + self.lengths[d]]
