"""The shard format: the contract between the pipeline that writes shards and the trainer that reads them.

A shard is an Arrow IPC *file* (random access, memory-mappable, uncompressed), in record batches of a few
MiB. One row is one training sequence of its stage's length L:

  column        type                            meaning
  tokens        fixed_size_list<T>[L+1]         input ids and the shifted targets in one (row[:-1], row[1:]);
                                                T is uint16 when every id fits (a vocabulary of ≤ 65,536:
                                                the llama2 profile's 32K), else int32 (Fox-1's 256K)
  doc_offsets   list<int32>                     cu_seqlens of the documents in the row: first 0, last the used
                                                length u ≤ L+1; tokens at positions ≥ u are padding, no loss;
                                                [0] (u = 0, all padding) for a row whose documents were all
                                                taken down (`gristmill shards takedown`)
  source        uint8                           index into the manifest's `sources` list

The rows of a shard come in one block per source, blocks in the manifest's source order (each block in a
seeded random order): the manifest's `ShardEntry.source_rows` says how many rows each block has and how often
a stage's walk visits them (shards/visits.py), so a stage is stored once however many epochs it trains.

Documents are framed as the tokenizer frames a text at inference (`gristmill.framing`, from
tokenizer/framing.py): "bos+eos" (sentencepiece, the llama2 profile: `bos doc … eos bos doc … eos`, as
TinyLlama trained) or "eos" (byte-level BPE: `doc … eos doc … eos`). The framing tokens are part of the
document and counted with it everywhere. A document longer than a row is split over rows (only its first
piece starts with bos, only its last ends with eos); a document that fits a row is never split. A row holds
documents of one source only. A stage's and a shard's `tokens` (manifest) count the tokens stored in rows,
padding excluded; `padding_tokens` = rows × (L + 1) − tokens. Which documents fill which rows:
shards/plan.py and shards/pack.py; which document each segment of a row holds: the shard's provenance
sidecar (shards/provenance.py).

Schema metadata (all values UTF-8 decimal or hex strings):
  gristmill.format_version   FORMAT_VERSION
  gristmill.seq_len          L
  gristmill.pad_id           id written into padding positions
  gristmill.eos_id           id that ends every document
  gristmill.framing          "bos+eos" or "eos": whether each document starts with bos
  gristmill.bos_id           id that starts every document, or "none" when the framing is "eos"
  gristmill.tokenizer_hash   content hash of the tokenizer the ids come from
  gristmill.token_type       "uint16" or "int32": the type T of the token ids

Format version 2 added the framing (version 1 shards had no bos, and are refused: rebuild); version 3 the
token type and the rows in source blocks (version 2 shards are refused: rebuild).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gristmill.tokenizer.framing import BOS_EOS, EOS_ONLY, FRAMINGS

FORMAT_VERSION = 3
TOKEN_TYPES = {"uint16": pa.uint16(), "int32": pa.int32()}
ROWS_PER_BATCH_BYTES = 4 << 20  # aim record batches at ~4 MiB


def token_type_for(vocab_size: int) -> str:
    """Return the narrowest token type that holds every id of a vocabulary: "uint16" up to 65,536 ids."""
    return "uint16" if vocab_size <= 1 << 16 else "int32"


def token_dtype(token_type: str) -> np.dtype:
    """Return the little-endian numpy dtype of a token type ("uint16" or "int32")."""
    return np.dtype(TOKEN_TYPES[token_type].to_pandas_dtype()).newbyteorder("<")


_META_PREFIX = "gristmill."


@dataclass(frozen=True)
class ShardMeta:
    """The schema-level facts every shard of a stage carries."""

    seq_len: int
    pad_id: int
    eos_id: int
    tokenizer_hash: str
    bos_id: int | None = None  # None: documents do not start with bos (framing "eos")
    token_type: str = "int32"  # "uint16" or "int32" (`token_type_for` the vocabulary)
    format_version: int = FORMAT_VERSION

    @property
    def framing(self) -> str:
        """Return the document framing: "bos+eos" or "eos"."""
        return EOS_ONLY if self.bos_id is None else BOS_EOS

    def to_metadata(self) -> dict[bytes, bytes]:
        """Return the Arrow schema metadata for these facts."""
        fields = {
            "format_version": self.format_version,
            "seq_len": self.seq_len,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
            "framing": self.framing,
            "bos_id": "none" if self.bos_id is None else self.bos_id,
            "tokenizer_hash": self.tokenizer_hash,
            "token_type": self.token_type,
        }
        return {f"{_META_PREFIX}{k}".encode(): str(v).encode() for k, v in fields.items()}

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> ShardMeta:
        """Read the facts back from a shard's schema; raise ValueError when any is missing or malformed."""
        meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}

        def field(name: str, default: str | None = None) -> str:
            value = meta.get(_META_PREFIX + name, default)
            if value is None:
                raise KeyError(_META_PREFIX + name)
            return value

        try:
            seq_len, pad_id, eos_id = (int(field(name)) for name in ("seq_len", "pad_id", "eos_id"))
            tokenizer_hash = field("tokenizer_hash")
            version = int(field("format_version"))
            # version 1 had no framing fields (and no bos); the reader refuses it by its version
            framing = field("framing", EOS_ONLY if version < 2 else None)
            bos = field("bos_id", "none" if version < 2 else None)
            if framing not in FRAMINGS or (framing == EOS_ONLY) != (bos == "none"):
                raise ValueError(f"framing {framing!r} with bos_id {bos!r}")
            token_type = field("token_type", "int32" if version < 3 else None)
            if token_type not in TOKEN_TYPES:
                raise ValueError(f"token_type {token_type!r} is not one of {', '.join(TOKEN_TYPES)}")
            return cls(
                seq_len=seq_len,
                pad_id=pad_id,
                eos_id=eos_id,
                tokenizer_hash=tokenizer_hash,
                bos_id=None if bos == "none" else int(bos),
                token_type=token_type,
                format_version=version,
            )
        except KeyError as e:
            raise ValueError(f"shard schema metadata lacks {e.args[0]}") from None
        except ValueError as e:
            raise ValueError(f"shard schema metadata is malformed: {e}") from None


def shard_schema(meta: ShardMeta) -> pa.Schema:
    """Return the Arrow schema of a shard of sequence length `meta.seq_len`."""
    return pa.schema(
        [
            pa.field("tokens", pa.list_(TOKEN_TYPES[meta.token_type], meta.seq_len + 1), nullable=False),
            pa.field("doc_offsets", pa.list_(pa.int32()), nullable=False),
            pa.field("source", pa.uint8(), nullable=False),
        ],
        metadata=meta.to_metadata(),
    )
