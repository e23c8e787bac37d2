"""The Tokenizer interface: loading (and its errors), flat batch encoding, decoding, saving."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.errors import InputError
from gristmill.tokenizer.interface import Tokenizer

from .conftest import EDGE_CASES


def test_flat_batch_equals_per_text_batch(trained):
    tokenizer = trained("sp-improved").tokenizer
    ids, offsets = tokenizer.encode_batch_flat(EDGE_CASES)
    per_text = tokenizer.encode_batch(EDGE_CASES)
    assert ids.dtype == np.int32 and offsets.dtype == np.int64 and len(offsets) == len(EDGE_CASES) + 1
    for i, expected in enumerate(per_text):
        assert expected.dtype == np.int32
        np.testing.assert_array_equal(ids[offsets[i] : offsets[i + 1]], expected)


def test_special_ids_and_decode_skips_them(trained):
    tokenizer = trained("sp-improved").tokenizer
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (1, 2, 2)
    ids = [tokenizer.bos_id, *tokenizer.encode("hello  world").tolist(), tokenizer.eos_id]
    assert tokenizer.decode(ids) == "hello  world"


@pytest.mark.parametrize("name", ["tokenizer.model", "tokenizer.json"])
def test_loads_a_single_file_and_saves(trained, tmp_path, name):
    result = trained("sp-improved")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / f"x{name[-6:]}" if name.endswith(".model") else alone / name).write_bytes(
        (result.out_dir / name).read_bytes()
    )
    loaded = Tokenizer.load(next(alone.iterdir()))
    text = "def f():\n\treturn 'ü'\n"
    assert loaded.encode(text).tolist() == result.tokenizer.encode(text).tolist()
    loaded.save(tmp_path / "saved")
    assert Tokenizer.load(tmp_path / "saved").encode(text).tolist() == loaded.encode(text).tolist()


def test_a_saved_copy_keeps_the_held_out_sample_for_its_parity_check(trained, tmp_path, monkeypatch):
    from gristmill.tokenizer import interface

    result = trained("sp-improved")
    result.tokenizer.save(tmp_path / "copy")
    assert (tmp_path / "copy" / "sample" / "heldout.jsonl").read_bytes() == (
        result.out_dir / "sample" / "heldout.jsonl"
    ).read_bytes()
    monkeypatch.setattr(interface, "_CHOSEN", {})
    note = Tokenizer.load(tmp_path / "copy").encoder_choice.note
    assert "on 0 held-out" not in note and "held-out documents" in note, note


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Tokenizer.load(tmp_path / "missing.json")
    with pytest.raises(InputError, match=r"no tokenizer\.json or tokenizer\.model"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(InputError, match="not a readable tokenizers JSON"):
        Tokenizer.load(tmp_path)
    (tmp_path / "bad.model").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="not a readable sentencepiece model"):
        Tokenizer.load(tmp_path / "bad.model")
