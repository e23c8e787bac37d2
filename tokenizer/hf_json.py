"""Write a `tokenizer.json` (HF `tokenizers`) that encodes exactly like a sentencepiece model.

What makes the ids identical (the parity tests check them):
- normaliser: prepend `▁` (sentencepiece's dummy prefix, added only to non-empty text) and replace each
  space by `▁`; nothing else, matching the identity normalisation with `remove_extra_whitespaces=false`;
- pre-tokenizer: split before each `▁` that follows a non-`▁` character. No sentencepiece piece contains
  such a boundary (`split_by_whitespace`: `▁` only leads a piece, or the piece is all `▁`), so the split
  never changes the result and lets `tokenizers` cache words;
- BPE merges: every split of every normal piece into two pieces, ranked by the merged piece's score, which
  is the order in which sentencepiece's encoder merges;
- control pieces (`<s>`, `</s>`, `<unk>`) and unused pieces stay plain vocabulary entries, never added
  tokens: sentencepiece encodes a literal `<s>` in text as characters, and so does this file;
- user-defined symbols are normalised added tokens. `tokenizers` normalises the text between added tokens
  piece by piece, so around a symbol its `▁` handling differs from sentencepiece: `Tokenizer` encodes such
  models with sentencepiece, and this file is exact only on text without the symbols;
- byte fallback for characters outside the vocabulary; bos added by the post-processor.
"""

from __future__ import annotations

import json
from typing import Any

_BPE_DECODER = {
    "type": "Sequence",
    "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ],
}


def _added(token_id: int, content: str, special: bool, normalized: bool) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": normalized,
        "special": special,
    }


def _merges(pieces: list[tuple[str, float, int]], vocab: dict[str, int], normal: int) -> list[list[str]]:
    ranked = sorted(
        ((score, -i, piece) for i, (piece, score, kind) in enumerate(pieces) if kind == normal), reverse=True
    )
    merges = []
    for _, _, piece in ranked:
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                merges.append([left, right])
    return merges


def sentencepiece_to_json(model: bytes) -> str:
    """Return the tokenizer.json text for a sentencepiece BPE or unigram model (its serialized bytes)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(model)
    kinds = pb.ModelProto.SentencePiece
    pieces = [(p.piece, p.score, p.type) for p in proto.pieces]
    vocab = {piece: i for i, (piece, _, _) in enumerate(pieces)}
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    if norm.name not in ("identity", "") or norm.remove_extra_whitespaces or not spec.split_by_whitespace:
        raise ValueError(
            "only identity normalisation, remove_extra_whitespaces=false and "
            "split_by_whitespace are supported"
        )
    unk = spec.unk_piece
    normalizers = [{"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]
    if norm.add_dummy_prefix:
        normalizers.insert(0, {"type": "Prepend", "prepend": "▁"})
    added = [
        _added(i, piece, special=False, normalized=True)
        for i, (piece, _, kind) in enumerate(pieces)
        if kind == kinds.USER_DEFINED
    ]
    if spec.model_type == pb.TrainerSpec.BPE:
        model_json: dict[str, Any] = {
            "type": "BPE",
            "dropout": None,
            "unk_token": unk,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": spec.byte_fallback,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": _merges(pieces, vocab, kinds.NORMAL),
        }
    elif spec.model_type == pb.TrainerSpec.UNIGRAM:
        model_json = {
            "type": "Unigram",
            "unk_id": spec.unk_id,
            "byte_fallback": spec.byte_fallback,
            "vocab": [[piece, score] for piece, score, _ in pieces],
        }
    else:
        raise ValueError(f"unsupported sentencepiece model type {spec.model_type}")
    bos = spec.bos_piece if spec.bos_id >= 0 else None
    post = None
    if bos is not None:
        first, second = ({"SpecialToken": {"id": bos, "type_id": t}} for t in (0, 1))
        a, b = ({"Sequence": {"id": s, "type_id": t}} for s, t in (("A", 0), ("B", 1)))
        post = {
            "type": "TemplateProcessing",
            "single": [first, a],
            "pair": [first, a, second, b],
            "special_tokens": {bos: {"id": bos, "ids": [spec.bos_id], "tokens": [bos]}},
        }
    document = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": "▁*[^▁]+|▁+"},
            "behavior": "Isolated",
            "invert": False,
        },
        "post_processor": post,
        "decoder": _BPE_DECODER,
        "model": model_json,
    }
    return json.dumps(document, ensure_ascii=False, indent=None)
