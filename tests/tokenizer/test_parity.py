"""Our tokenizer.json encodes exactly like the sentencepiece model, through tokenizers and transformers."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from tokenizers import Tokenizer as HFTokenizer

from gristmill.tokenizer.interface import Tokenizer

from .conftest import EDGE_CASES

MODES = {
    "improved": {},
    "llama2": {"profile": "llama2"},
    "counts": {"count_pretokens": "always"},
    "padded": {"pad_vocab_to_multiple_of": 128, "user_defined_symbols": ["<tool>"]},
}


def _texts(result) -> list[str]:
    import json

    heldout = (result.out_dir / "sample" / "heldout.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in heldout]
    assert len(texts) >= 5
    return texts + EDGE_CASES + ["call <tool> now", "<tool>x"]


@pytest.mark.parametrize("mode", list(MODES))
def test_tokenizer_json_gives_sentencepiece_ids(trained, mode):
    result = trained(f"sp-{mode}", **MODES[mode])
    sp = spm.SentencePieceProcessor(model_file=str(result.out_dir / "tokenizer.model"))
    hf = HFTokenizer.from_file(str(result.out_dir / "tokenizer.json"))
    ours = result.tokenizer
    assert hf.get_vocab_size() == sp.get_piece_size() == ours.vocab_size
    for text in _texts(result):
        expected = sp.encode(text)
        if "<tool>" not in text:  # user-defined symbols: exact through sentencepiece only (hf_json.py)
            assert hf.encode(text, add_special_tokens=False).ids == expected, repr(text[:80])
        assert ours.encode(text).tolist() == expected, repr(text[:80])
        assert ours.decode(expected) == text == sp.decode(expected)


@pytest.mark.parametrize("mode", ["improved", "llama2"])
def test_transformers_loads_and_encodes_the_same(trained, mode):
    from transformers import PreTrainedTokenizerFast

    result = trained(f"sp-{mode}", **MODES[mode])
    sp = spm.SentencePieceProcessor(model_file=str(result.out_dir / "tokenizer.model"))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(result.out_dir / "tokenizer.json"))
    for text in _texts(result)[:20]:
        if "<s>" in text or "</s>" in text:
            continue  # transformers registers bos/eos given to it as special tokens; this file does not
        assert fast.encode(text, add_special_tokens=False) == sp.encode(text)
        assert fast.encode(text) == [sp.bos_id(), *sp.encode(text)]  # the post-processor adds bos


def test_every_backend_loads_in_transformers(trained):
    from transformers import PreTrainedTokenizerFast

    for name, overrides in (("hf", {"backend": "hf-bpe"}), ("unigram", {"backend": "sentencepiece-unigram"})):
        result = trained(name, **overrides)
        fast = PreTrainedTokenizerFast(tokenizer_file=str(result.out_dir / "tokenizer.json"))
        text = "def f(x):\n\treturn x  # done\n"
        assert fast.decode(fast.encode(text, add_special_tokens=False)) == text
        assert result.tokenizer.decode(result.tokenizer.encode(text)) == text


def test_unigram_encodes_with_sentencepiece(trained):
    result = trained("unigram", backend="sentencepiece-unigram")
    sp = spm.SentencePieceProcessor(model_file=str(result.out_dir / "tokenizer.model"))
    for text in _texts(result):
        assert result.tokenizer.encode(text).tolist() == sp.encode(text)


def test_round_trip_is_lossless_on_whole_documents(trained):
    for name, overrides in (("sp-improved", {}), ("hf", {"backend": "hf-bpe"})):
        result = trained(name, **overrides)
        assert result.evaluation.total.lossless == result.evaluation.total.docs > 0
        reloaded = Tokenizer.load(result.out_dir)
        for text in EDGE_CASES:
            assert reloaded.decode(reloaded.encode(text)) == text
