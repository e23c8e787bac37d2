"""One `Tokenizer` interface over every backend, used by the pipeline (tokenize stage) and the trainer.

A tokenizer directory holds `tokenizer.json` (HF `tokenizers`, the fast path for batch encoding) and, for
sentencepiece-trained tokenizers, `tokenizer.model`. A bare sentencepiece `.model` file is served by
sentencepiece itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gristmill.errors import InputError

HF_FILE = "tokenizer.json"
SP_FILE = "tokenizer.model"
_EOS_NAMES = ("</s>", "<|endoftext|>", "<eos>", "<|end_of_text|>")
_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>")
_PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]")


def _file_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


class Tokenizer:
    """Encode text to int32 ids in batches, decode ids, and name the special ids, whatever the backend.

    Build one with `Tokenizer.load(path)`; `path` is a tokenizer directory, a `tokenizer.json`, or a
    sentencepiece `.model`.
    """

    def __init__(self, files: list[Path], hf=None, sp=None) -> None:
        self.files = files
        self._hf = hf
        self._sp = sp
        self.content_hash = _file_hash(files)
        if hf is not None:
            self.vocab_size = hf.get_vocab_size(with_added_tokens=True)
            self.bos_id = self._find(_BOS_NAMES)
            eos = self._find(_EOS_NAMES)
        else:
            self.vocab_size = sp.get_piece_size()
            self.bos_id = sp.bos_id() if sp.bos_id() >= 0 else None
            eos = sp.eos_id() if sp.eos_id() >= 0 else None
        if eos is None:
            raise InputError("the tokenizer has no end-of-document token (one of "
                             f"{', '.join(_EOS_NAMES)})", path=str(files[0]))
        self.eos_id: int = eos
        pad = self._find(_PAD_NAMES) if hf is not None else (sp.pad_id() if sp.pad_id() >= 0 else None)
        self.pad_id: int = pad if pad is not None else eos  # padding carries no loss, so eos serves

    def _find(self, names: Sequence[str]) -> int | None:
        for name in names:
            token_id = self._hf.token_to_id(name)
            if token_id is not None:
                return token_id
        return None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load a tokenizer directory, `tokenizer.json` or sentencepiece `.model`; raise InputError if unreadable."""
        path = Path(path)
        if path.is_dir():
            hf_file, sp_file = path / HF_FILE, path / SP_FILE
            if not hf_file.exists() and not sp_file.exists():
                raise InputError(f"no {HF_FILE} or {SP_FILE} in the tokenizer directory", path=str(path))
        elif path.suffix == ".model":
            hf_file, sp_file = path.with_name(HF_FILE), path
            hf_file = hf_file if hf_file.exists() and path.name == SP_FILE else Path("/nonexistent")
        elif path.exists():
            hf_file, sp_file = path, Path("/nonexistent")
        else:
            raise InputError("tokenizer file not found", path=str(path))
        if hf_file.exists():
            from tokenizers import Tokenizer as HFTokenizer

            try:
                hf = HFTokenizer.from_file(str(hf_file))
            except Exception as e:
                raise InputError(f"not a readable tokenizers JSON file: {e}", path=str(hf_file)) from None
            files = [hf_file] + ([sp_file] if sp_file.exists() else [])
            return cls(files, hf=hf)
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor()
        try:
            sp.Load(str(sp_file))
        except Exception as e:
            raise InputError(f"not a readable sentencepiece model: {e}", path=str(sp_file)) from None
        return cls([sp_file], sp=sp)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Return the ids of each text as an int32 array, without bos/eos (the packer adds eos)."""
        if self._hf is not None:
            encodings = self._hf.encode_batch_fast(list(texts), add_special_tokens=False)
            return [np.asarray(e.ids, dtype=np.int32) for e in encodings]
        return [np.asarray(ids, dtype=np.int32) for ids in self._sp.EncodeAsIds(list(texts))]

    def encode(self, text: str) -> np.ndarray:
        """Return the ids of one text as an int32 array, without bos/eos."""
        return self.encode_batch([text])[0]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Return the text of `ids` (special tokens skipped)."""
        ids = [int(i) for i in ids]
        if self._hf is not None:
            return self._hf.decode(ids, skip_special_tokens=True)
        return self._sp.DecodeIds(ids)

    def id_to_token(self, token_id: int) -> str | None:
        """Return the piece for an id, or None when out of range."""
        if self._hf is not None:
            return self._hf.id_to_token(token_id)
        return self._sp.IdToPiece(token_id) if 0 <= token_id < self.vocab_size else None

    def save(self, directory: str | os.PathLike) -> None:
        """Copy the tokenizer's files into `directory` (as tokenizer.json / tokenizer.model)."""
        os.makedirs(directory, exist_ok=True)
        for f in self.files:
            target = HF_FILE if f.suffix == ".json" else SP_FILE
            shutil.copyfile(f, Path(directory) / target)
