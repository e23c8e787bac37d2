"""The shard format: the contract between the pipeline that writes shards and the trainer that reads them.

A shard is an Arrow IPC *file* (random access, memory-mappable, uncompressed), in record batches of a few
MiB. One row is one training sequence of its stage's length L:

  column        type                          meaning
  tokens        fixed_size_list<int32>[L+1]   input ids and the shifted targets in one (row[:-1], row[1:])
  doc_offsets   list<int32>                   cu_seqlens of the documents in the row: first 0, last the used
                                              length u ≤ L+1; tokens at positions ≥ u are padding, no loss
  source        uint8                         index into the manifest's `sources` list

Documents: each document's tokens are its ids followed by eos; no bos is written (eos separates documents,
so a row reads `doc … eos doc … eos`). A document longer than a row is split over rows (pieces of a split
document do not end with eos, except its last); a document that fits a row is never split. A row holds
documents of one source only. A stage's and a shard's `tokens` (manifest) count the tokens stored in rows,
padding excluded; `padding_tokens` = rows × (L + 1) − tokens. Which documents fill which rows:
shards/plan.py and shards/pack.py.

Schema metadata (all values UTF-8 decimal or hex strings):
  gristmill.format_version   FORMAT_VERSION
  gristmill.seq_len          L
  gristmill.pad_id           id written into padding positions
  gristmill.eos_id           id that ends every document
  gristmill.tokenizer_hash   content hash of the tokenizer the ids come from
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

FORMAT_VERSION = 1
TOKEN_TYPE = pa.int32()  # int32, not uint16: Fox-1's vocabulary is 256K
ROWS_PER_BATCH_BYTES = 4 << 20  # aim record batches at ~4 MiB

_META_PREFIX = "gristmill."


@dataclass(frozen=True)
class ShardMeta:
    """The schema-level facts every shard of a stage carries."""

    seq_len: int
    pad_id: int
    eos_id: int
    tokenizer_hash: str
    format_version: int = FORMAT_VERSION

    def to_metadata(self) -> dict[bytes, bytes]:
        """Return the Arrow schema metadata for these facts."""
        fields = {
            "format_version": self.format_version,
            "seq_len": self.seq_len,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
            "tokenizer_hash": self.tokenizer_hash,
        }
        return {f"{_META_PREFIX}{k}".encode(): str(v).encode() for k, v in fields.items()}

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> ShardMeta:
        """Read the facts back from a shard's schema; raise ValueError when any is missing or malformed."""
        meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
        try:
            return cls(
                seq_len=int(meta[_META_PREFIX + "seq_len"]),
                pad_id=int(meta[_META_PREFIX + "pad_id"]),
                eos_id=int(meta[_META_PREFIX + "eos_id"]),
                tokenizer_hash=meta[_META_PREFIX + "tokenizer_hash"],
                format_version=int(meta[_META_PREFIX + "format_version"]),
            )
        except KeyError as e:
            raise ValueError(f"shard schema metadata lacks {e.args[0]}") from None
        except ValueError as e:
            raise ValueError(f"shard schema metadata is malformed: {e}") from None


def shard_schema(meta: ShardMeta) -> pa.Schema:
    """Return the Arrow schema of a shard of sequence length `meta.seq_len`."""
    return pa.schema(
        [
            pa.field("tokens", pa.list_(TOKEN_TYPE, meta.seq_len + 1), nullable=False),
            pa.field("doc_offsets", pa.list_(pa.int32()), nullable=False),
            pa.field("source", pa.uint8(), nullable=False),
        ],
        metadata=meta.to_metadata(),
    )
