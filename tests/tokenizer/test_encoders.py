"""Each encoder `Tokenizer` may choose gives the reference ids, for every backend; a mismatch falls back."""

from __future__ import annotations

import logging

import pytest
import sentencepiece as spm
from tokenizers import Tokenizer as HFTokenizer

from gristmill.tokenizer.encoders import (
    PARITY_EDGE_CASES,
    choose_encoder,
    heldout_texts,
    kitoken_encoder,
    sentencepiece_encoder,
    tokenizers_encoder,
)
from gristmill.tokenizer.interface import Tokenizer

from .conftest import EDGE_CASES

BACKENDS = {
    "sp-improved": {},
    "sp-llama2": {"profile": "llama2"},
    "sp-padded": {"pad_vocab_to_multiple_of": 128, "user_defined_symbols": ["<tool>"]},
    "unigram": {"backend": "sentencepiece-unigram"},
    "hf": {"backend": "hf-bpe"},
}
EXTRA = ["call <tool> now", "<tool>x", "\t\ttabs\r\n\u00a0nbsp e\u0301 🦀 <s></s><|endoftext|>"]


def _reference(directory):
    """Return the reference encoder of a trained tokenizer directory."""
    if (directory / "tokenizer.model").exists():
        sp = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
        return sentencepiece_encoder(sp, 1)
    hf = HFTokenizer.from_file(str(directory / "tokenizer.json"))
    hf.encode_special_tokens = True
    return tokenizers_encoder(hf)


def _texts(directory) -> list[str]:
    texts = heldout_texts(directory)
    assert len(texts) >= 5
    return [*texts, *EDGE_CASES, *PARITY_EDGE_CASES, *EXTRA]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_chosen_encoder_gives_reference_ids(trained, backend):
    result = trained(backend, **BACKENDS[backend])
    reference = _reference(result.out_dir)
    tokenizer = Tokenizer.load(result.out_dir)
    texts = _texts(result.out_dir)
    expected = reference.encode(texts)
    got = tokenizer.encode_batch(texts)
    for text, ids, want in zip(texts, got, expected):
        assert ids.tolist() == list(want), (tokenizer.encoder_choice.note, repr(text[:80]))
    flat, offsets = tokenizer.encode_batch_flat(texts)
    assert flat.tolist() == [i for want in expected for i in want] and offsets[-1] == len(flat)


@pytest.mark.parametrize("backend", ["sp-improved", "sp-llama2", "hf"])
def test_bpe_models_encode_with_kitoken(trained, backend):
    """kitoken is the fastest exact encoder on BPE (bench/tokenizer_bench.py); its ids match on these
    models."""
    result = trained(backend, **BACKENDS[backend])
    tokenizer = Tokenizer.load(result.out_dir)
    assert tokenizer.encoder_choice.encoder.name == "kitoken", tokenizer.encoder_choice.note
    model = result.out_dir / ("tokenizer.model" if backend.startswith("sp") else "tokenizer.json")
    texts = _texts(result.out_dir)
    assert [list(ids) for ids in kitoken_encoder(model).encode(texts)] == [
        list(ids) for ids in _reference(result.out_dir).encode(texts)
    ]


@pytest.mark.parametrize("backend", ["sp-improved", "unigram"])
def test_every_candidate_that_passes_is_exact(trained, backend):
    """Candidates are checked one by one: each one the check accepts agrees with the reference everywhere."""
    result = trained(backend, **BACKENDS[backend])
    reference = _reference(result.out_dir)
    hf = HFTokenizer.from_file(str(result.out_dir / "tokenizer.json"))
    hf.encode_special_tokens = True
    texts = _texts(result.out_dir)
    for label, make in (
        ("kitoken", lambda: kitoken_encoder(result.out_dir / "tokenizer.model")),
        ("tokenizers", lambda: tokenizers_encoder(hf)),
    ):
        choice = choose_encoder(reference, [(label, make)], heldout_texts(result.out_dir))
        if choice.encoder.name == label:
            want = [list(i) for i in reference.encode(texts)]
            assert [list(i) for i in choice.encoder.encode(texts)] == want, choice.note


def test_mismatch_falls_back_to_the_reference_and_says_so(trained, caplog):
    sp_dir, hf_dir = trained("sp-improved").out_dir, trained("hf", backend="hf-bpe").out_dir
    reference = _reference(sp_dir)
    wrong = ("kitoken", lambda: kitoken_encoder(hf_dir / "tokenizer.json"))  # another model: other ids
    broken = ("kitoken", lambda: kitoken_encoder(sp_dir / "missing.model"))
    with caplog.at_level(logging.WARNING):
        choice = choose_encoder(reference, [wrong, broken], heldout_texts(sp_dir))
    assert choice.encoder is reference
    assert "ids differ from sentencepiece" in choice.note and "No such file" in choice.note
    assert "falls back to its reference encoder" in caplog.text


def test_reference_mode_and_reload_reuse_the_choice(trained):
    result = trained("sp-improved")
    assert Tokenizer.load(result.out_dir, encoder="reference").encoder_choice.encoder.name == "sentencepiece"
    first, again = Tokenizer.load(result.out_dir), Tokenizer.load(result.out_dir)
    assert first.encoder_choice is again.encoder_choice  # checked once per process
    with pytest.raises(ValueError, match="encoder must be"):
        Tokenizer.load(result.out_dir, encoder="fastest")
