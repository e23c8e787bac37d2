"""Labelled documents for the classifier: texts read from files (parquet, jsonl or plain text, local or
fsspec URLs, as the tokenizer's file corpus reads them), split into training and held-out documents by a hash
of each text, so a document is held out in every run or in none."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from gristmill.errors import InputError
from gristmill.tokenizer.corpus import read_files


def read_texts(patterns: Iterable[str], what: str) -> list[str]:
    """Return the texts of every file matching `patterns`; raise InputError when there are none (`what`
    names the side, for the message: "real", "junk")."""
    patterns = list(patterns)
    texts = [text for text, _, _ in read_files(patterns)]
    if not texts:
        raise InputError(f"no {what} documents in {', '.join(patterns) or '(no files given)'}")
    return texts


def held_out(text: str, fraction: float) -> bool:
    """Return whether `text` is held out at `fraction`: a hash of its bytes, read as a number in [0, 1), is
    below it."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def split(texts: Iterable[str], fraction: float) -> tuple[list[str], list[str]]:
    """Return (training, held-out) texts, held out by `held_out`."""
    train: list[str] = []
    test: list[str] = []
    for text in texts:
        (test if held_out(text, fraction) else train).append(text)
    return train, test
