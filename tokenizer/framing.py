"""How a document's ids are framed in training rows: bos first or not, eos last.

The framing is the tokenizer's own: a document starts with bos exactly when the tokenizer prepends bos to
a text it encodes with its special tokens (the post-processor of its tokenizer.json, which is also what
transformers' `AutoTokenizer` does at inference). The llama2 profile's sentencepiece tokenizers do
(`<s> doc … </s>`, as TinyLlama trained); HF byte-level BPE does not (`doc … <|endoftext|>`), so its
documents are separated by eos alone. The tokenize step writes the framed ids, so every count of tokens
(lengths, budgets, histograms) includes the framing; the shards and the manifest record it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOS_EOS = "bos+eos"
EOS_ONLY = "eos"
FRAMINGS = (BOS_EOS, EOS_ONLY)


@dataclass(frozen=True)
class DocumentFraming:
    """A document's framing: `bos_id` first (None: no bos), `eos_id` last."""

    bos_id: int | None
    eos_id: int

    @property
    def name(self) -> str:
        """Return "bos+eos" or "eos" (the shard metadata's and the manifest's spelling)."""
        return BOS_EOS if self.bos_id is not None else EOS_ONLY

    @property
    def extra_tokens(self) -> int:
        """Return the tokens the framing adds to each document (2 with bos, else 1)."""
        return 1 if self.bos_id is None else 2

    def frame(self, ids: np.ndarray) -> np.ndarray:
        """Return `ids` (int32) framed: `[bos] + ids + [eos]`, or `ids + [eos]`."""
        head = [] if self.bos_id is None else [self.bos_id]
        out = np.empty(len(ids) + self.extra_tokens, np.int32)
        out[: len(head)] = head
        out[len(head) : -1] = ids
        out[-1] = self.eos_id
        return out

    def frame_flat(self, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return flat ids (`Tokenizer.encode_batch_flat`: document i is ids[offsets[i]:offsets[i + 1]]) with
        every document framed, as (int32 ids, int64 offsets), without a Python object per document."""
        offsets = np.asarray(offsets, np.int64)
        ids = ids[offsets[0] : offsets[-1]]
        framed = offsets - offsets[0] + np.arange(len(offsets), dtype=np.int64) * self.extra_tokens
        out = np.empty(int(framed[-1]), np.int32)
        is_text = np.ones(len(out), bool)
        if self.bos_id is not None:
            out[framed[:-1]] = self.bos_id
            is_text[framed[:-1]] = False
        out[framed[1:] - 1] = self.eos_id
        is_text[framed[1:] - 1] = False
        out[is_text] = ids
        return out, framed
