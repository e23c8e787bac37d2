"""The encoders behind `Tokenizer`, and the parity check that picks the fastest exact one per model.

Each tokenizer has a reference encoder: sentencepiece for a sentencepiece `.model`, `tokenizers` for a bare
`tokenizer.json`. Faster libraries are candidates, fastest first (measured per core, one thread, by
bench/tokenizer_bench.py): gigatoken, kitoken, then `tokenizers` on our exact tokenizer.json (sentencepiece
BPE models), then the reference. A candidate is used only when its ids equal the reference's on the
tokenizer's held-out sample (`sample/heldout.jsonl`, first `PARITY_BYTES`) and on `PARITY_EDGE_CASES`; any
mismatch, load error or missing library moves to the next candidate, and the choice says why
(`EncoderChoice.note`). The choice is remembered per process by the tokenizer's content hash, so a task that
loads the tokenizer again pays for the check once.

Every encoder returns flat ids (`FlatIds`): one int32 array of every text's ids and the offsets where each
text's ids begin. gigatoken hands over its own buffers (an awkward array is one id buffer plus offsets);
the libraries that return a list per text are flattened here.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PARITY_BYTES = 1_000_000
HELDOUT_PATH = "sample/heldout.jsonl"  # in a tokenizer directory, as training writes it (sample.py)
# What encoders most often disagree on: whitespace runs, tabs, CRLF, NBSP, combining marks, emoji (ZWJ and
# flags), literal special-token text (always text, never a boundary), scripts without spaces, long runs,
# and what the standard pre-tokenizer patterns treat specially (contractions in any case, digit runs,
# punctuation before letters or newlines).
PARITY_EDGE_CASES = (
    "",
    " ",
    "  ",
    " leading",
    "trailing ",
    "double  space",
    "\t",
    "a\tb\t\tc",
    "x\r\ny\r\n",
    "\r\n\r\n",
    "non\u00a0breaking\u00a0space",
    "\u00a0",
    "e\u0301 cafe\u0301 n\u0303",
    "emoji 🦀 🎉👩‍👩‍👧 🇫🇷",
    "<s> </s> <unk> <pad>",
    "a<s>b</s>c",
    "<|endoftext|> x <|im_start|>",
    "日本語のテキスト",
    "\n\n\n",
    "    def f(x):\n\treturn x\n",
    "\x00\x01\x7f",
    "\ufeffbom",
    "ﬁ ligature Ａ full width",
    "\u2028sep\u2029",
    "x" * 3000,
    "digits 1234567890 3.14159",
    "It's 'quoted'; DON'T, we'LL, they've",
    "x=1234567;\r\n  y.append(_z)  \n\t \n  :\n",
)

FlatIds = tuple[np.ndarray, np.ndarray]  # (ids: int32, offsets: int64 of len(texts) + 1)
Encode = Callable[[Sequence[str]], FlatIds]


@dataclass(frozen=True)
class Encoder:
    """One way to encode: `encode(texts)` returns (ids, offsets): every text's ids (no bos/eos) in one int32
    array, text i's at ids[offsets[i]:offsets[i + 1]]; `name` says which library."""

    name: str
    encode: Encode


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder a tokenizer uses, the reference it was checked against, and what the check found."""

    encoder: Encoder
    reference: str
    note: str


def flatten(lists: Sequence[Sequence[int]]) -> FlatIds:
    """Return the flat ids and offsets of one id list per text (what list-returning libraries give)."""
    offsets = np.zeros(len(lists) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, lists), np.int64, len(lists)), out=offsets[1:])
    ids = np.fromiter(itertools.chain.from_iterable(lists), np.int32, int(offsets[-1]))
    return ids, offsets


def sentencepiece_encoder(sp, threads: int) -> Encoder:
    """Return sentencepiece's batch encoder on `threads` threads."""
    return Encoder("sentencepiece", lambda texts: flatten(sp.encode(list(texts), num_threads=threads)))


def tokenizers_encoder(hf) -> Encoder:
    """Return `tokenizers`' batch encoder (its pool size follows TOKENIZERS_PARALLELISM/RAYON_NUM_THREADS)."""
    return Encoder(
        "tokenizers",
        lambda texts: flatten([e.ids for e in hf.encode_batch_fast(list(texts), add_special_tokens=False)]),
    )


def kitoken_encoder(path: Path) -> Encoder:
    """Return kitoken's encoder for a sentencepiece `.model` or a `tokenizer.json` (one thread: encode_all
    runs on the calling thread). Literal special-token text is encoded as text, like the references."""
    from kitoken import Kitoken

    if path.suffix == ".model":
        model = Kitoken.from_sentencepiece_file(str(path))
    else:
        model = Kitoken.from_tokenizers_file(str(path))
    return Encoder("kitoken", lambda texts: flatten(model.encode_all(list(texts), False)))


def gigatoken_document(document: dict, sentencepiece: bool = False) -> dict:
    """Return a parsed tokenizer.json as gigatoken should load it: without its special added tokens, so that
    a literal `<|endoftext|>` in text is encoded as text (as `encode_special_tokens` makes `tokenizers` do;
    text never encodes to a special token's id either way; non-special added tokens stay). For our json of a
    sentencepiece BPE model (hf_json.py), also without its pre-tokenizer: gigatoken's sentencepiece backend
    merges across the whole normalised text, as sentencepiece does, and takes none; ours only splits where
    no piece crosses anyway."""
    document = {
        **document,
        "added_tokens": [t for t in document.get("added_tokens") or [] if not t.get("special")],
    }
    if sentencepiece:
        if document["model"]["type"] != "BPE":
            raise ValueError(f"gigatoken encodes BPE models only, not {document['model']['type']}")
        document["pre_tokenizer"] = None
    return document


def _flat_of_awkward(array) -> FlatIds:
    """Return gigatoken's list array as flat ids (its uint32 buffer viewed as int32: every id < 2**31) and
    offsets, without copying them."""
    import awkward as ak

    layout = array.layout
    if not isinstance(layout, ak.contents.ListOffsetArray):  # not what gigatoken 0.10 returns
        counts = np.asarray(ak.to_numpy(ak.num(array)), np.int64)
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return np.asarray(ak.to_numpy(ak.flatten(array)), np.int32), offsets
    offsets = np.asarray(layout.offsets.data, np.int64)
    ids = np.asarray(layout.content.data)[offsets[0] : offsets[-1]]
    if offsets[0]:
        offsets = offsets - offsets[0]
    return (ids.view(np.int32) if ids.dtype.itemsize == 4 else ids.astype(np.int32)), offsets


def gigatoken_encoder(document: dict, threads: int) -> Encoder:
    """Return gigatoken's batch encoder for a tokenizer.json document (`gigatoken_document`).

    With one thread it encodes on the calling thread (`parallel=False`) and never starts its pool. With more,
    on its rayon pool, sized by RAYON_NUM_THREADS when the pool starts (`limit_threads` sets it at the start
    of every task), except in a forked child or a multiprocessing worker, where gigatoken's own check keeps
    it on the calling thread (a pool started before a fork has no threads in the child)."""
    import gigatoken

    model = gigatoken.Tokenizer.from_json(json.dumps(document, ensure_ascii=False))
    parallel = None if threads > 1 else False
    return Encoder(
        "gigatoken", lambda texts: _flat_of_awkward(model.encode_batch(list(texts), parallel=parallel))
    )


def heldout_texts(directory: Path, max_bytes: int = PARITY_BYTES) -> list[str]:
    """Return the first `max_bytes` of the tokenizer's held-out documents (none when it has no sample)."""
    path = directory / HELDOUT_PATH
    if not path.is_file():
        return []
    texts, total = [], 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                text = json.loads(line).get("text")
            except (ValueError, AttributeError):  # not our sample's format: check on what is readable
                continue
            if not isinstance(text, str):
                continue
            texts.append(text)
            total += len(text.encode("utf-8", "surrogatepass"))
            if total >= max_bytes:
                break
    return texts


def first_mismatch(candidate: Encoder, reference: Encoder, texts: Sequence[str]) -> str | None:
    """Return the first text (shortened) on which the two encoders' ids differ, or None when all agree."""
    (ours, ours_at), (theirs, theirs_at) = candidate.encode(texts), reference.encode(texts)
    if np.array_equal(ours_at, theirs_at) and np.array_equal(ours, theirs):
        return None
    for i, text in enumerate(texts):
        if not np.array_equal(ours[ours_at[i] : ours_at[i + 1]], theirs[theirs_at[i] : theirs_at[i + 1]]):
            return repr(text[:60])
    return f"the batch's offsets ({len(ours_at) - 1} texts returned for {len(texts)})"


def choose_encoder(
    reference: Encoder, candidates: Sequence[tuple[str, Callable[[], Encoder]]], texts: Sequence[str]
) -> EncoderChoice:
    """Return the first candidate (name, factory) whose ids equal the reference's on `texts` and the edge
    cases, else the reference; `note` names each rejected candidate and why."""
    checked = [*texts, *PARITY_EDGE_CASES]
    rejected = []
    for label, make in candidates:
        try:
            candidate = make()
            mismatch = first_mismatch(candidate, reference, checked)
        except Exception as e:  # a library that is not installed, or cannot load or encode this model
            first_line = next(iter(str(e).splitlines()), "")  # gigatoken appends its Rust source location
            rejected.append(f"{label}: {type(e).__name__}: {first_line}")
            continue
        if mismatch is None:
            note = (
                f"{candidate.name}: ids identical to {reference.name} on {len(texts)} held-out documents "
                f"and {len(PARITY_EDGE_CASES)} edge cases"
            )
            note = "; ".join([note, *rejected])
            log.info("tokenizer encodes with %s", note)
            return EncoderChoice(candidate, reference.name, note)
        rejected.append(f"{candidate.name}: ids differ from {reference.name} on {mismatch}")
    note = "; ".join([f"{reference.name} (the reference)", *rejected])
    if rejected:
        log.warning("tokenizer falls back to its reference encoder: %s", note)
    return EncoderChoice(reference, reference.name, note)
