"""Make a tokenizer directory loadable by transformers' `AutoTokenizer`: a tokenizer_config.json whose special
tokens (bos, eos, unk, pad) and bos/eos flags match the document framing of training. The build writes one
beside its tokenizer (BUILD/tokenizer/), and `gristmill export` beside the model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gristmill.tokenizer.interface import HF_FILE, SP_FILE, Tokenizer

CONFIG_FILE = "tokenizer_config.json"


def hf_tokenizer_config(tokenizer: Tokenizer, model_max_length: int) -> dict:
    """Return tokenizer_config.json's content: a text is encoded as a training document begins (bos first
    exactly when the framing has it; never eos, which ends a document rather than a prompt)."""
    special = {
        "bos": tokenizer.bos_id,
        "eos": tokenizer.eos_id,
        "unk": tokenizer.unk_id,
        "pad": tokenizer.pad_id,
    }
    names = {f"{k}_token": tokenizer.id_to_token(v) for k, v in special.items() if v is not None}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        **names,
        "add_bos_token": tokenizer.framing.bos_id is not None,
        "add_eos_token": False,
    }


def write_tokenizer_config(directory: str | os.PathLike, tokenizer: Tokenizer, model_max_length: int) -> None:
    """Write `directory`/tokenizer_config.json for `tokenizer` (whose files are in `directory`)."""
    config = hf_tokenizer_config(tokenizer, model_max_length)
    (Path(directory) / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def export_hf_tokenizer(
    source: str | os.PathLike, out: str | os.PathLike, model_max_length: int
) -> Tokenizer:
    """Copy the tokenizer's own files (tokenizer.json, and tokenizer.model for sentencepiece) from the
    directory `source` into `out` with a tokenizer_config.json; return the tokenizer. What else the
    directory holds (its training sample, settings, evaluation) stays behind.

    Raises InputError when `source` holds no readable tokenizer."""
    tokenizer = Tokenizer.load(source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in tokenizer.files:  # not Tokenizer.save, which copies the held-out sample too
        shutil.copyfile(f, out / (HF_FILE if f.suffix == ".json" else SP_FILE))
    write_tokenizer_config(out, tokenizer, model_max_length)
    return tokenizer
