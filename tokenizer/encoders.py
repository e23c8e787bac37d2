"""The encoders behind `Tokenizer`, and the parity check that picks the fastest exact one per model.

Each tokenizer has a reference encoder: sentencepiece for a sentencepiece `.model`, `tokenizers` for a bare
`tokenizer.json`. Faster libraries are candidates, fastest first (measured per core, one thread, by
bench/tokenizer_bench.py): kitoken, then `tokenizers` on our exact tokenizer.json (sentencepiece BPE models),
then the reference. A candidate is used only when its ids equal the reference's on the tokenizer's held-out
sample (`sample/heldout.jsonl`, first `PARITY_BYTES`) and on `PARITY_EDGE_CASES`; any mismatch or load error
moves to the next candidate, and the choice says why (`EncoderChoice.note`). The choice is remembered per
process by the tokenizer's content hash, so a task that loads the tokenizer again pays for the check once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PARITY_BYTES = 1_000_000
# What encoders most often disagree on: whitespace runs, tabs, CRLF, NBSP, combining marks, emoji (ZWJ and
# flags), literal special-token text (always text, never a boundary), scripts without spaces, long runs.
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
)

Encode = Callable[[Sequence[str]], list[Sequence[int]]]


@dataclass(frozen=True)
class Encoder:
    """One way to encode: `encode(texts)` returns each text's ids (no bos/eos), `name` says which library."""

    name: str
    encode: Encode


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder a tokenizer uses, the reference it was checked against, and what the check found."""

    encoder: Encoder
    reference: str
    note: str


def sentencepiece_encoder(sp, threads: int) -> Encoder:
    """Return sentencepiece's batch encoder on `threads` threads."""
    return Encoder("sentencepiece", lambda texts: sp.encode(list(texts), num_threads=threads))


def tokenizers_encoder(hf) -> Encoder:
    """Return `tokenizers`' batch encoder (its pool size follows TOKENIZERS_PARALLELISM/RAYON_NUM_THREADS)."""
    return Encoder(
        "tokenizers",
        lambda texts: [e.ids for e in hf.encode_batch_fast(list(texts), add_special_tokens=False)],
    )


def kitoken_encoder(path: Path) -> Encoder:
    """Return kitoken's encoder for a sentencepiece `.model` or a `tokenizer.json` (one thread: encode_all
    runs on the calling thread). Literal special-token text is encoded as text, like the references."""
    from kitoken import Kitoken

    if path.suffix == ".model":
        model = Kitoken.from_sentencepiece_file(str(path))
    else:
        model = Kitoken.from_tokenizers_file(str(path))
    return Encoder("kitoken", lambda texts: model.encode_all(list(texts), False))


def heldout_texts(directory: Path, max_bytes: int = PARITY_BYTES) -> list[str]:
    """Return the first `max_bytes` of the tokenizer's held-out documents (none when it has no sample)."""
    path = directory / "sample" / "heldout.jsonl"
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
    for text, ours, theirs in zip(texts, candidate.encode(texts), reference.encode(texts)):
        if list(ours) != list(theirs):
            return repr(text[:60])
    return None


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
        except Exception as e:  # a library that cannot load or encode this model
            rejected.append(f"{label}: {type(e).__name__}: {e}")
            continue
        if mismatch is None:
            note = (
                f"{candidate.name}: ids identical to {reference.name} on {len(texts)} held-out documents "
                f"and {len(PARITY_EDGE_CASES)} edge cases"
            )
            return EncoderChoice(candidate, reference.name, "; ".join([note, *rejected]))
        rejected.append(f"{candidate.name}: ids differ from {reference.name} on {mismatch}")
    note = "; ".join([f"{reference.name} (the reference)", *rejected])
    if rejected:
        log.warning("tokenizer falls back to its reference encoder: %s", note)
    return EncoderChoice(reference, reference.name, note)
