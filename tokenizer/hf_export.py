"""Write a tokenizer directory for transformers' `AutoTokenizer`: the tokenizer's files and a
tokenizer_config.json whose special tokens and bos/eos flags match the document framing of training."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gristmill.tokenizer.interface import Tokenizer

CONFIG_FILE = "tokenizer_config.json"


def hf_tokenizer_config(tokenizer: Tokenizer, model_max_length: int) -> dict:
    """Return tokenizer_config.json's content: a text is encoded as a training document begins (bos first
    exactly when the framing has it; never eos, which ends a document rather than a prompt)."""
    special = {"bos": tokenizer.bos_id, "eos": tokenizer.eos_id, "pad": tokenizer.pad_id}
    names = {f"{k}_token": tokenizer.id_to_token(v) for k, v in special.items() if v is not None}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        **names,
        "add_bos_token": tokenizer.framing.bos_id is not None,
        "add_eos_token": False,
    }


def export_hf_tokenizer(
    source: str | os.PathLike, out: str | os.PathLike, model_max_length: int
) -> Tokenizer:
    """Copy the tokenizer directory `source` into `out` with its tokenizer_config.json; return the tokenizer.

    Raises InputError when `source` holds no readable tokenizer."""
    tokenizer = Tokenizer.load(source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for file in Path(source).iterdir():
        if file.is_file() and file.name != CONFIG_FILE:
            shutil.copyfile(file, out / file.name)
    (out / CONFIG_FILE).write_text(json.dumps(hf_tokenizer_config(tokenizer, model_max_length), indent=2))
    return tokenizer
