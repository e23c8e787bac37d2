"""A token's bytes are the text's: the bytes of a document's tokens add up to its UTF-8 bytes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gristmill.errors import InputError
from gristmill.tokenizer.byte_lengths import byte_level_alphabet, from_tokenizer_json
from gristmill.tokenizer.interface import Tokenizer

TEXTS = [
    "Hello world, naïve café — 東京 🎉\n\n  x",
    "    def f(x):\n        return x  # ok\n",
    "  two leading spaces, a trailing one ",
    "non\u00a0breaking\u00a0space and combining e\u0301",
    "日本語のテキスト Ünïcödé ß 🦀👩‍💻",
    "<s> literal </s> <|endoftext|>",
    "x" * 3000,
    "a",
]


def _document_bytes(tokenizer: Tokenizer, text: str) -> int:
    ids = tokenizer.encode(text)
    start = np.zeros(len(ids), dtype=bool)
    start[:1] = True  # the first token of a document carries the dummy prefix, if the tokenizer adds one
    return int(tokenizer.token_bytes().text_bytes(ids, start).sum())


@pytest.mark.parametrize(
    ("name", "overrides"), [("sp-llama2", {"profile": "llama2"}), ("hf", {"backend": "hf-bpe"})]
)
def test_the_bytes_of_a_documents_tokens_are_its_utf8_bytes(trained, name, overrides):
    tokenizer = trained(name, **overrides).tokenizer
    assert tokenizer.token_bytes().dummy_prefix == (name == "sp-llama2")
    for text in TEXTS:
        assert _document_bytes(tokenizer, text) == len(text.encode("utf-8")), text
    specials = [tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id]
    assert not tokenizer.token_bytes().lengths[[i for i in specials if i is not None]].any()


def test_a_sentencepiece_tokenizer_json_alone_reads_the_same_bytes(trained):
    """Without the .model, the pieces of our tokenizer.json (Metaspace-like: ▁, <0xNN>, Prepend ▁) say the
    same bytes as sentencepiece does."""
    directory = trained("sp-llama2", profile="llama2").out_dir
    from_model = Tokenizer.load(directory).token_bytes()
    from_json = Tokenizer.load(directory / "tokenizer.json").token_bytes()
    assert from_json.dummy_prefix
    np.testing.assert_array_equal(from_json.lengths, from_model.lengths)
    np.testing.assert_array_equal(from_json.starts_with_space, from_model.starts_with_space)


def test_byte_level_alphabet_is_a_bijection_of_the_256_bytes():
    alphabet = byte_level_alphabet()
    assert sorted(alphabet.values()) == list(range(256))
    assert alphabet["Ġ"] == ord(" ") and alphabet["a"] == ord("a")


def test_a_tokenizer_whose_pieces_say_no_bytes_is_refused():
    spec = {
        "model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1, "##b": 2}},
        "decoder": {"type": "WordPiece"},
    }
    with pytest.raises(InputError, match="cannot tell the bytes") as e:
        from_tokenizer_json(json.loads(json.dumps(spec)), 3, "wordpiece/tokenizer.json")
    assert "wordpiece/tokenizer.json" in str(e.value)
