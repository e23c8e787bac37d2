"""Document framing follows the tokenizer profile; the exported HF tokenizer frames a text the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gristmill.tokenizer.framing import DocumentFraming
from gristmill.tokenizer.hf_export import export_hf_tokenizer

TEXT = "Packed rows start documents the way inference starts a prompt."


def test_frame_adds_bos_and_eos_or_eos_alone():
    ids = np.asarray([7, 8, 9], np.int32)
    np.testing.assert_array_equal(DocumentFraming(1, 2).frame(ids), [1, 7, 8, 9, 2])
    np.testing.assert_array_equal(DocumentFraming(None, 2).frame(ids), [7, 8, 9, 2])
    assert DocumentFraming(1, 2).frame(ids).dtype == np.int32
    assert (DocumentFraming(1, 2).name, DocumentFraming(None, 2).name) == ("bos+eos", "eos")
    assert DocumentFraming(1, 2).frame(np.zeros(0, np.int32)).tolist() == [1, 2]


@pytest.mark.parametrize("framing", [DocumentFraming(1, 2), DocumentFraming(None, 0)])
def test_frame_flat_equals_framing_each_document(framing):
    docs = [np.asarray(d, np.int32) for d in ([7, 8, 9], [], [5], [], [3, 4])]
    lengths = [len(d) for d in docs]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids, framed_offsets = framing.frame_flat(np.concatenate(docs), offsets)
    want = [framing.frame(d) for d in docs]
    assert ids.dtype == np.int32 and framed_offsets.dtype == np.int64
    assert ids.tolist() == np.concatenate(want).tolist()
    assert np.diff(framed_offsets).tolist() == [len(w) for w in want] and framed_offsets[0] == 0
    empty, at = framing.frame_flat(np.zeros(0, np.int32), np.zeros(1, np.int64))
    assert len(empty) == 0 and at.tolist() == [0]


@pytest.mark.parametrize(
    ("name", "overrides", "framing"),
    [
        ("sp-llama2", {"profile": "llama2"}, "bos+eos"),  # TinyLlama's: <s> doc … </s>
        ("hf", {"backend": "hf-bpe"}, "eos"),  # GPT-2's: doc … <|endoftext|>
    ],
)
def test_framing_follows_the_profile_and_the_exported_tokenizer(trained, tmp_path, name, overrides, framing):
    transformers = pytest.importorskip("transformers")
    tokenizer = trained(name, **overrides).tokenizer
    assert tokenizer.framing.name == framing
    document = tokenizer.framing.frame(tokenizer.encode(TEXT))  # what the tokenize step writes
    if framing == "bos+eos":
        assert document[0] == tokenizer.bos_id == tokenizer.token_to_id("<s>")

    export_hf_tokenizer(tokenizer.files[0].parent, tmp_path, model_max_length=64)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["add_bos_token"] == (framing == "bos+eos") and config["add_eos_token"] is False
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    # a prompt is a document without its end: the training ids up to eos, bos included where trained
    assert hf(TEXT)["input_ids"] == document[:-1].tolist()
    assert document[-1] == tokenizer.eos_id
