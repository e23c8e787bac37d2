"""Each encoder `Tokenizer` may choose gives the reference ids, for every backend; a mismatch, a model an
encoder refuses, or an encoder that is not installed falls back, and the choice says which and why."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm
from tokenizers import Tokenizer as HFTokenizer

from gristmill.tokenizer import interface
from gristmill.tokenizer.encoders import (
    PARITY_EDGE_CASES,
    _flat_of_awkward,
    choose_encoder,
    flatten,
    gigatoken_document,
    gigatoken_encoder,
    heldout_texts,
    kitoken_encoder,
    sentencepiece_encoder,
    tokenizers_encoder,
)
from gristmill.tokenizer.hf_json import sentencepiece_to_json
from gristmill.tokenizer.interface import Tokenizer

from .conftest import EDGE_CASES

BACKENDS = {
    "sp-improved": {},
    "sp-llama2": {"profile": "llama2"},
    "sp-padded": {"pad_vocab_to_multiple_of": 128, "user_defined_symbols": ["<tool>"]},
    "unigram": {"backend": "sentencepiece-unigram"},
    "hf": {"backend": "hf-bpe"},
    "hf-bounded": {"backend": "hf-bpe", "hf_pretokenizer": "bounded"},
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


def _per_text(flat) -> list[list[int]]:
    ids, offsets = flat
    return [ids[a:b].tolist() for a, b in itertools.pairwise(offsets)]


@pytest.fixture
def fresh_choice(monkeypatch):
    """Forget the encoders chosen so far in this process, so the next load checks again."""
    monkeypatch.setattr(interface, "_CHOSEN", {})


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_chosen_encoder_gives_reference_ids(trained, backend):
    result = trained(backend, **BACKENDS[backend])
    tokenizer = Tokenizer.load(result.out_dir)
    texts = _texts(result.out_dir)
    expected = _per_text(_reference(result.out_dir).encode(texts))
    for text, ids, want in zip(texts, tokenizer.encode_batch(texts), expected):
        assert ids.dtype == np.int32 and ids.tolist() == want, (tokenizer.encoder_choice.note, text[:80])
    flat, offsets = tokenizer.encode_batch_flat(texts)
    assert flat.dtype == np.int32 and offsets.dtype == np.int64
    assert flat.tolist() == [i for want in expected for i in want] and offsets[-1] == len(flat)


@pytest.mark.parametrize(
    ("backend", "chosen"),
    [
        ("sp-improved", "gigatoken"),
        ("sp-llama2", "gigatoken"),
        ("hf", "gigatoken"),  # Llama 3's split pattern, which gigatoken knows
        ("sp-padded", "kitoken"),  # gigatoken normalises around user-defined symbols differently
        ("hf-bounded", "kitoken"),  # a split pattern gigatoken does not know
        ("unigram", "sentencepiece"),  # gigatoken refuses unigram; kitoken breaks Viterbi ties differently
    ],
)
def test_each_model_gets_the_fastest_exact_encoder_and_says_why(trained, backend, chosen):
    result = trained(backend, **BACKENDS[backend])
    choice = Tokenizer.load(result.out_dir).encoder_choice
    assert choice.encoder.name == chosen, choice.note
    assert choice.note.startswith(chosen)
    if chosen != "gigatoken":
        assert "gigatoken: " in choice.note, choice.note  # why the faster one was passed over


@pytest.mark.parametrize("backend", ["sp-improved", "sp-llama2", "hf"])
def test_gigatoken_alone_equals_the_reference(trained, backend):
    result = trained(backend, **BACKENDS[backend])
    if backend.startswith("sp"):  # written from the model itself, as for a bare .model
        model = (result.out_dir / "tokenizer.model").read_bytes()
        document = gigatoken_document(json.loads(sentencepiece_to_json(model)), sentencepiece=True)
    else:
        document = gigatoken_document(json.loads((result.out_dir / "tokenizer.json").read_text()))
    texts = _texts(result.out_dir)
    ids, offsets = gigatoken_encoder(document, threads=1).encode(texts)
    assert ids.dtype == np.int32 and offsets.dtype == np.int64 and len(offsets) == len(texts) + 1
    assert _per_text((ids, offsets)) == _per_text(_reference(result.out_dir).encode(texts))


@pytest.mark.parametrize("backend", ["sp-improved", "hf"])
def test_without_gigatoken_the_same_ids_come_from_kitoken(trained, monkeypatch, fresh_choice, backend):
    """An install without gigatoken (its import fails) encodes with kitoken, the same ids, and says so."""
    result = trained(backend, **BACKENDS[backend])
    texts = _texts(result.out_dir)
    with_it = Tokenizer.load(result.out_dir)
    assert with_it.encoder_choice.encoder.name == "gigatoken", with_it.encoder_choice.note
    monkeypatch.setattr(interface, "_CHOSEN", {})
    monkeypatch.setitem(sys.modules, "gigatoken", None)  # `import gigatoken` raises ImportError
    without = Tokenizer.load(result.out_dir)
    assert without.encoder_choice.encoder.name == "kitoken"
    assert "gigatoken: ModuleNotFoundError" in without.encoder_choice.note, without.encoder_choice.note
    for mine, theirs in zip(with_it.encode_batch_flat(texts), without.encode_batch_flat(texts)):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("backend", ["sp-improved", "unigram"])
def test_every_candidate_that_passes_is_exact(trained, backend):
    """Candidates are checked one by one: each one the check accepts agrees with the reference everywhere."""
    result = trained(backend, **BACKENDS[backend])
    reference = _reference(result.out_dir)
    hf = HFTokenizer.from_file(str(result.out_dir / "tokenizer.json"))
    hf.encode_special_tokens = True
    model = result.out_dir / "tokenizer.model"
    texts = _texts(result.out_dir)
    want = _per_text(reference.encode(texts))
    spec = json.loads(sentencepiece_to_json(model.read_bytes()))
    for label, make in (
        ("gigatoken", lambda: gigatoken_encoder(gigatoken_document(spec, sentencepiece=True), 1)),
        ("kitoken", lambda: kitoken_encoder(model)),
        ("tokenizers", lambda: tokenizers_encoder(hf)),
    ):
        choice = choose_encoder(reference, [(label, make)], heldout_texts(result.out_dir))
        if choice.encoder.name == label:
            assert _per_text(choice.encoder.encode(texts)) == want, choice.note


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


def test_literal_special_token_text_stays_text_in_gigatoken(trained):
    """tokenizers encodes `<|endoftext|>` in a document as text (encode_special_tokens); so must gigatoken,
    which would otherwise match its added tokens."""
    directory = trained("hf", backend="hf-bpe").out_dir
    texts = ["a<|endoftext|>b", "<|endoftext|>", "<unused0>"]
    document = gigatoken_document(json.loads((directory / "tokenizer.json").read_text()))
    ids = _per_text(gigatoken_encoder(document, 1).encode(texts))
    assert ids == _per_text(_reference(directory).encode(texts))
    assert all(len(i) > 1 for i in ids[:2])


def test_reference_mode_and_reload_reuse_the_choice(trained):
    result = trained("sp-improved")
    assert Tokenizer.load(result.out_dir, encoder="reference").encoder_choice.encoder.name == "sentencepiece"
    first, again = Tokenizer.load(result.out_dir), Tokenizer.load(result.out_dir)
    assert first.encoder_choice is again.encoder_choice  # checked once per process
    with pytest.raises(ValueError, match="encoder must be"):
        Tokenizer.load(result.out_dir, encoder="fastest")


def test_flat_ids_of_lists_and_of_awkward_arrays():
    ak = pytest.importorskip("awkward")
    lists = [[5, 6], [], [7, 8, 9]]
    for ids, offsets in (
        flatten(lists),
        _flat_of_awkward(ak.Array(np.asarray([[1], *lists], dtype=object).tolist())[1:]),  # offsets from 1
        _flat_of_awkward(ak.values_astype(ak.Array(lists), np.uint32)),
    ):
        assert ids.dtype == np.int32 and offsets.dtype == np.int64
        assert ids.tolist() == [5, 6, 7, 8, 9] and offsets.tolist() == [0, 2, 2, 5]
    ids, offsets = flatten([])
    assert len(ids) == 0 and offsets.tolist() == [0]


_THREADS_CHILD = """
import json, os, sys
from gristmill.threads import limit_threads
if sys.argv[2] != "free":
    limit_threads(int(sys.argv[2]))
import awkward, gigatoken, kitoken, ray, sentencepiece, tokenizers  # whatever threads importing starts
from gristmill.tokenizer.interface import Tokenizer
texts = ["the quick brown fox, number %d, jumps over the lazy dog. " % i * 40 for i in range(2000)]
before = len(os.listdir("/proc/self/task"))
tokenizer = Tokenizer.load(sys.argv[1])  # the parity check encodes too
tokenizer.encode_batch_flat(texts)
added = len(os.listdir("/proc/self/task")) - before
print(json.dumps({"encoder": tokenizer.encoder_choice.encoder.name, "added_threads": added}))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 or more cores to tell")
def test_gigatoken_encodes_on_the_tasks_cpus(trained, tmp_path):
    """A one-CPU task encodes with gigatoken on its own thread; the same process free of the limit starts
    gigatoken's pool (so the count can see one), and a two-CPU task's pool has two threads."""
    # sentencepiece as the reference: its threads end with each call, where tokenizers' pool would stay
    directory = str(trained("sp-improved").out_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")}
    seen = {}
    for mode in ("1", "2", "free"):
        done = subprocess.run(
            [sys.executable, "-c", _THREADS_CHILD, directory, mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        seen[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(s["encoder"] == "gigatoken" for s in seen.values()), seen
    assert seen["1"]["added_threads"] == 0, seen
    assert seen["2"]["added_threads"] == 2, seen
    assert seen["free"]["added_threads"] >= 1, seen  # rayon's default size: the CPUs it may use
