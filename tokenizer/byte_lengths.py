"""How many bytes of text each token id stands for: the denominator of bits per byte.

Bits per byte compares models whose tokenizers differ, so the bytes must be the text's, whatever the
tokens. A token's bytes are read from its piece:
- sentencepiece pieces (and our tokenizer.json of them, or any Metaspace tokenizer.json): `▁` is a space,
  a byte-fallback piece `<0xNN>` is one byte, control and unknown pieces none;
- byte-level BPE (GPT-2's alphabet, `ByteLevel` in tokenizer.json): one character of the piece per byte;
- special tokens: none.
A tokenizer that prepends a dummy `▁` to the text it encodes (sentencepiece's `add_dummy_prefix`) spells
one byte more than the text at the start of a document; `dummy_prefix` says so, and `text_bytes` takes that
byte off the first token of each document, so for a tokenizer that does not normalise the text (the llama2
profile, byte-level BPE) the bytes of a document's tokens are exactly its UTF-8 bytes (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gristmill.errors import InputError

SPACE_MARK = "▁"


@dataclass(frozen=True)
class TokenBytes:
    """Bytes per token id (int64, 0 for special tokens), and whether encoding adds a dummy-prefix space."""

    lengths: np.ndarray
    dummy_prefix: bool
    starts_with_space: np.ndarray  # bool per id: the piece begins with the space mark (the dummy prefix)

    def text_bytes(self, ids: np.ndarray, document_start: np.ndarray | None = None) -> np.ndarray:
        """Return the text bytes of each token of `ids` (int64), one fewer for a token that begins a
        document (`document_start`, bool like ids) after the tokenizer's dummy prefix."""
        ids = np.asarray(ids, dtype=np.int64)
        out = self.lengths[ids]
        if self.dummy_prefix and document_start is not None:
            out = out - (document_start & self.starts_with_space[ids])
        return out


def byte_level_alphabet() -> dict[str, int]:
    """Return GPT-2's byte-level alphabet: the printable character standing for each byte, → the byte."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


def from_sentencepiece(sp: Any, proto: Any) -> TokenBytes:
    """Return the byte lengths of a sentencepiece model's pieces."""
    size = sp.get_piece_size()
    lengths = np.zeros(size, dtype=np.int64)
    starts = np.zeros(size, dtype=bool)
    for i in range(size):
        if sp.IsControl(i) or sp.IsUnknown(i):
            continue
        piece = sp.IdToPiece(i)
        lengths[i] = 1 if sp.IsByte(i) else len(piece.replace(SPACE_MARK, " ").encode("utf-8"))
        starts[i] = piece.startswith(SPACE_MARK)
    return TokenBytes(lengths, bool(proto.normalizer_spec.add_dummy_prefix), starts)


def from_tokenizer_json(spec: dict[str, Any], vocab_size: int, path: str) -> TokenBytes:
    """Return the byte lengths of a tokenizer.json's tokens (`spec`: its parsed JSON).

    Raises InputError for a tokenizer that is neither byte-level nor Metaspace (sentencepiece-like): its
    pieces do not say which bytes they stand for."""
    kinds = _component_types(spec.get("pre_tokenizer")) | _component_types(spec.get("decoder"))
    vocab = dict(spec.get("model", {}).get("vocab") or {})
    if isinstance(spec.get("model", {}).get("vocab"), list):  # unigram: [[piece, score], …]
        vocab = {piece: i for i, (piece, _score) in enumerate(spec["model"]["vocab"])}
    special = set()
    for added in spec.get("added_tokens") or []:
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special.add(added["id"])
    lengths = np.zeros(vocab_size, dtype=np.int64)
    starts = np.zeros(vocab_size, dtype=bool)
    if "ByteLevel" in kinds:
        alphabet = byte_level_alphabet()
        for piece, i in vocab.items():
            if 0 <= i < vocab_size and i not in special:
                lengths[i] = sum(1 if ch in alphabet else len(ch.encode("utf-8")) for ch in piece)
        return TokenBytes(lengths, False, starts)
    if kinds & {"Metaspace", "Replace", "ByteFallback"}:
        for piece, i in vocab.items():
            if not 0 <= i < vocab_size or i in special:
                continue
            is_byte = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")
            lengths[i] = 1 if is_byte else len(piece.replace(SPACE_MARK, " ").encode("utf-8"))
            starts[i] = piece.startswith(SPACE_MARK)
        return TokenBytes(lengths, _adds_dummy_prefix(spec), starts)
    raise InputError(
        "cannot tell the bytes of this tokenizer's tokens (neither byte-level nor sentencepiece-like)",
        path=path,
        hint="bits per byte needs a byte-level BPE or a sentencepiece tokenizer",
    )


def _component_types(component: Any) -> set[str]:
    if not isinstance(component, dict):
        return set()
    found = {component.get("type")}
    for key in ("pretokenizers", "decoders", "normalizers"):
        for sub in component.get(key) or []:
            found |= _component_types(sub)
    return {k for k in found if isinstance(k, str)}


def _adds_dummy_prefix(spec: dict[str, Any]) -> bool:
    normalizer = spec.get("normalizer")
    parts = [normalizer, *(normalizer or {}).get("normalizers", [])] if isinstance(normalizer, dict) else []
    if any(
        isinstance(p, dict) and p.get("type") == "Prepend" and p.get("prepend") == SPACE_MARK for p in parts
    ):
        return True
    pre = spec.get("pre_tokenizer")
    pres = [pre, *(pre or {}).get("pretokenizers", [])] if isinstance(pre, dict) else []
    for p in pres:
        if isinstance(p, dict) and p.get("type") == "Metaspace":
            return p.get("prepend_scheme", "always") != "never" and p.get("add_prefix_space", True)
    return False
