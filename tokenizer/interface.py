"""One `Tokenizer` interface over every backend, used by the pipeline (tokenize stage) and the trainer.

A tokenizer directory holds `tokenizer.json` (HF `tokenizers`) and, for sentencepiece-trained tokenizers,
`tokenizer.model`. The reference encoder is sentencepiece for a `.model` and `tokenizers` for a bare
`tokenizer.json`; `Tokenizer` encodes with the fastest library whose ids equal the reference's on the
tokenizer's held-out sample and edge cases (encoders.py: gigatoken, kitoken, then `tokenizers` on our exact
json for sentencepiece BPE), else with the reference; ids come back flat (one array and offsets). Decoding
uses `tokenizers` where our json is exact (BPE without user-defined symbols, hf_json.py) and sentencepiece
otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gristmill.errors import InputError
from gristmill.threads import task_cpus
from gristmill.tokenizer.byte_lengths import TokenBytes, from_sentencepiece, from_tokenizer_json
from gristmill.tokenizer.encoders import (
    HELDOUT_PATH,
    EncoderChoice,
    choose_encoder,
    gigatoken_document,
    gigatoken_encoder,
    heldout_texts,
    kitoken_encoder,
    sentencepiece_encoder,
    tokenizers_encoder,
)
from gristmill.tokenizer.framing import DocumentFraming
from gristmill.tokenizer.hf_json import sentencepiece_to_json

HF_FILE = "tokenizer.json"
SP_FILE = "tokenizer.model"
_EOS_NAMES = ("</s>", "<|endoftext|>", "<eos>", "<|end_of_text|>")
_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>")
_PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]")
_UNK_NAMES = ("<unk>", "[UNK]", "<|unk|>")
# The encoder chosen per (content hash, mode, threads) in this process: a reload skips the parity check.
_CHOSEN: dict[tuple[str, str], EncoderChoice] = {}


def _file_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _load_hf(path: Path):
    from tokenizers import Tokenizer as HFTokenizer

    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as e:
        raise InputError(
            f"not a readable tokenizers JSON file: {e}",
            path=str(path),
            hint="give a tokenizer directory, tokenizer.json or sentencepiece .model",
        ) from None
    hf.encode_special_tokens = True  # a literal `<|endoftext|>` in a document is text, never a boundary
    return hf


def _load_sp(path: Path):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(str(path))
    except Exception as e:
        raise InputError(f"not a readable sentencepiece model: {e}", path=str(path)) from None
    return sp


def _user_symbols(proto) -> list[str]:
    """Return the model's user-defined symbols (always one piece, wherever they appear in text)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    return [p.piece for p in proto.pieces if p.type == pb.ModelProto.SentencePiece.USER_DEFINED]


def _model_proto(sp):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(sp.serialized_model_proto())
    return proto


class Tokenizer:
    """Encode text to int32 ids in batches, decode ids, and name the special ids, whatever the backend.

    Build one with `Tokenizer.load(path)`; `path` is a tokenizer directory, a `tokenizer.json`, or a
    sentencepiece `.model`. `encoder="auto"` encodes with the fastest exact library (`encoder_choice` says
    which, and why); `"reference"` with the reference encoder. Encoders use `threads` threads (default: the
    CPUs of the Ray task or process, `gristmill.threads.task_cpus`).
    """

    def __init__(
        self, files: list[Path], hf=None, sp=None, threads: int | None = None, encoder: str = "auto"
    ) -> None:
        if encoder not in ("auto", "reference"):
            raise ValueError(f"encoder must be 'auto' or 'reference', got {encoder!r}")
        self.files = files
        self._hf = hf
        self._sp = sp
        self._threads = threads or task_cpus()
        self.content_hash = _file_hash(files)
        if hf is not None:
            self.vocab_size = hf.get_vocab_size(with_added_tokens=True)
            self.bos_id = self._find(_BOS_NAMES)
            eos = self._find(_EOS_NAMES)
            pad = self._find(_PAD_NAMES)
            self.unk_id: int | None = self._find(_UNK_NAMES)
        else:
            self.vocab_size = sp.get_piece_size()
            self.bos_id = sp.bos_id() if sp.bos_id() >= 0 else None
            eos = sp.eos_id() if sp.eos_id() >= 0 else None
            pad = sp.pad_id() if sp.pad_id() >= 0 else None
            self.unk_id = sp.unk_id() if sp.unk_id() >= 0 else None
        if eos is None:
            raise InputError(
                f"the tokenizer has no end-of-document token (one of {', '.join(_EOS_NAMES)})",
                path=str(files[0]),
            )
        self.eos_id: int = eos
        self.pad_id: int = pad if pad is not None else eos  # padding carries no loss, so eos serves
        # sentencepiece's control pieces are plain vocabulary entries in our tokenizer.json (hf_json.py)
        self._skip_on_decode = {i for i in (self.bos_id, self.eos_id, self.pad_id) if i is not None}
        # tokenizers breaks unigram Viterbi ties differently, and normalises the text around user-defined
        # symbols piece by piece (one dummy prefix per piece): only sentencepiece decodes those models
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = _model_proto(sp) if sp is not None else None
        self._user_symbols = _user_symbols(proto) if proto is not None else []
        # our json is exact for BPE without user-defined symbols (hf_json.py)
        self._json_exact = proto is None or (
            hf is not None and not self._user_symbols and proto.trainer_spec.model_type == pb.TrainerSpec.BPE
        )
        key = (self.content_hash, encoder, self._threads)
        if key not in _CHOSEN:
            _CHOSEN[key] = self._choose(encoder)
        self.encoder_choice = _CHOSEN[key]
        self._encode = self.encoder_choice.encoder.encode
        self._token_bytes: TokenBytes | None = None

    def _choose(self, mode: str) -> EncoderChoice:
        """Check the candidate encoders against the reference on the held-out sample; return the choice."""
        by_suffix = {f.suffix: f for f in self.files}
        if self._sp is not None:
            reference = sentencepiece_encoder(self._sp, self._threads)
            candidates = [
                ("gigatoken", lambda: gigatoken_encoder(self._gigatoken_document(), self._threads)),
                ("kitoken", lambda: kitoken_encoder(by_suffix[".model"])),
            ]
            if self._json_exact:
                candidates.append(("tokenizers", lambda: tokenizers_encoder(self._hf)))
        else:
            reference = tokenizers_encoder(self._hf)
            candidates = [
                ("gigatoken", lambda: gigatoken_encoder(self._gigatoken_document(), self._threads)),
                ("kitoken", lambda: kitoken_encoder(by_suffix[".json"])),
            ]
        if mode == "reference":
            return EncoderChoice(reference, reference.name, f"{reference.name} (the reference, as asked)")
        texts = heldout_texts(self.files[0].parent)
        if self._sp is not None:  # user-defined symbols inside words and between spaces
            texts += [f"a{s}b {s} {s}{s}\n" for s in self._user_symbols]
        return choose_encoder(reference, candidates, texts)

    def _gigatoken_document(self) -> dict:
        """Return the tokenizer.json document gigatoken loads (`gigatoken_document`): a bare tokenizer.json
        as it is; for a sentencepiece model our json, the one beside it where that is exact (hf_json.py wrote
        it from this model), else written from the model now."""
        sentencepiece = self._sp is not None
        if self._json_exact:
            text = next(f for f in self.files if f.suffix == ".json").read_text("utf-8")
        else:
            text = sentencepiece_to_json(self._sp.serialized_model_proto())
        return gigatoken_document(json.loads(text), sentencepiece=sentencepiece)

    @property
    def framing(self) -> DocumentFraming:
        """Return how training frames a document: bos first exactly when this tokenizer prepends bos to an
        encoded text (its tokenizer.json post-processor; a bare sentencepiece model: when it has bos, as
        Llama's tokenizers do), eos last."""
        if self.bos_id is None:
            return DocumentFraming(None, self.eos_id)
        if self._hf is None:
            return DocumentFraming(self.bos_id, self.eos_id)
        with_specials = self._hf.encode("a", add_special_tokens=True).ids
        adds_bos = bool(with_specials) and with_specials[0] == self.bos_id
        return DocumentFraming(self.bos_id if adds_bos else None, self.eos_id)

    def _find(self, names: Sequence[str]) -> int | None:
        for name in names:
            token_id = self._hf.token_to_id(name)
            if token_id is not None:
                return token_id
        return None

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: str = "auto", threads: int | None = None) -> Tokenizer:
        """Load a tokenizer directory, tokenizer.json or sentencepiece .model (see the class for `encoder`
        and `threads`); InputError if unreadable."""
        path = Path(path)
        if path.is_dir():
            hf_file, sp_file = path / HF_FILE, path / SP_FILE
            if not hf_file.exists() and not sp_file.exists():
                raise InputError(f"no {HF_FILE} or {SP_FILE} in the tokenizer directory", path=str(path))
        elif not path.exists():
            raise InputError("tokenizer file not found", path=str(path))
        elif path.suffix == ".model":
            hf_file, sp_file = path.with_name(HF_FILE), path
            if path.name != SP_FILE:
                hf_file = Path("/nonexistent")
        else:
            hf_file, sp_file = path, Path("/nonexistent")
        hf = _load_hf(hf_file) if hf_file.exists() else None
        sp = _load_sp(sp_file) if sp_file.exists() else None
        files = [f for f in (hf_file, sp_file) if f.exists()]
        return cls(files, hf=hf, sp=sp, threads=threads, encoder=encoder)

    def encode_batch_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return all ids concatenated (int32) and offsets (int64, n + 1): text i is ids[o[i]:o[i+1]], without
        bos/eos (the tokenize step frames them). No list per text is made here: gigatoken's buffers are
        returned as they are."""
        return self._encode(texts)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Return the ids of each text as an int32 array (views of one flat array), without bos/eos."""
        ids, offsets = self.encode_batch_flat(texts)
        return [ids[a:b] for a, b in itertools.pairwise(offsets.tolist())]

    def encode(self, text: str) -> np.ndarray:
        """Return the ids of one text as an int32 array, without bos/eos."""
        return self.encode_batch([text])[0]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Return the text of `ids` (bos, eos and pad skipped)."""
        ids = [int(i) for i in ids if int(i) not in self._skip_on_decode]
        if self._json_exact:
            return self._hf.decode(ids, skip_special_tokens=True)
        return self._sp.decode(ids)

    def token_bytes(self) -> TokenBytes:
        """Return the bytes of text each token id stands for (bits per byte's denominator; special tokens
        none). Raises InputError for a tokenizer.json whose pieces do not say their bytes."""
        if self._token_bytes is None:
            if self._sp is not None:
                found = from_sentencepiece(self._sp, _model_proto(self._sp))
            else:
                found = from_tokenizer_json(
                    json.loads(self._hf.to_str()), self.vocab_size, str(self.files[0])
                )
            specials = [i for i in (self.bos_id, self.eos_id, self.pad_id, self.unk_id) if i is not None]
            found.lengths[specials] = 0
            self._token_bytes = found
        return self._token_bytes

    def id_to_token(self, token_id: int) -> str | None:
        """Return the piece for an id, or None when out of range."""
        if self._hf is not None:
            return self._hf.id_to_token(token_id)
        return self._sp.IdToPiece(token_id) if 0 <= token_id < self.vocab_size else None

    def token_to_id(self, token: str) -> int | None:
        """Return the id of a piece, or None when it is not in the vocabulary."""
        if self._hf is not None:
            return self._hf.token_to_id(token)
        token_id = self._sp.PieceToId(token)
        return None if token_id == self._sp.unk_id() and token != self._sp.IdToPiece(token_id) else token_id

    def save(self, directory: str | os.PathLike) -> None:
        """Copy the tokenizer's files into `directory` (as tokenizer.json / tokenizer.model), with its
        held-out sample when it has one, so that the copy's encoder is checked on the same text."""
        os.makedirs(directory, exist_ok=True)
        for f in self.files:
            target = HF_FILE if f.suffix == ".json" else SP_FILE
            shutil.copyfile(f, Path(directory) / target)
        heldout = self.files[0].parent / HELDOUT_PATH
        if heldout.is_file():
            (Path(directory) / HELDOUT_PATH).parent.mkdir(exist_ok=True)
            shutil.copyfile(heldout, Path(directory) / HELDOUT_PATH)
