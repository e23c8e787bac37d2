"""Training: llama2 profile fields, newline/tab pieces, reproducibility, counts mode, padding, errors."""

from __future__ import annotations

import json

import pytest
from sentencepiece import sentencepiece_model_pb2 as pb

from gristmill.errors import InputError
from gristmill.tokenizer.sentences import Escapes, SplitCount, count_pretokens, sentences, split_long
from gristmill.tokenizer.train import train_tokenizer

from .conftest import small_config


def _proto(result) -> pb.ModelProto:
    proto = pb.ModelProto()
    proto.ParseFromString((result.out_dir / "tokenizer.model").read_bytes())
    return proto


def test_llama2_profile_fields(trained):
    proto = _proto(trained("sp-llama2", profile="llama2"))
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    assert spec.model_type == pb.TrainerSpec.BPE and spec.vocab_size == 600
    assert spec.byte_fallback and spec.split_digits and spec.allow_whitespace_only_pieces
    assert spec.split_by_unicode_script and spec.split_by_whitespace and spec.split_by_number
    assert spec.character_coverage == pytest.approx(0.99995)
    assert spec.max_sentencepiece_length == 16 and spec.max_sentence_length == 4192
    assert (spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id) == (0, 1, 2, -1)
    assert (spec.unk_piece, spec.bos_piece, spec.eos_piece) == ("<unk>", "<s>", "</s>")
    assert norm.name == "identity" and norm.add_dummy_prefix and not norm.remove_extra_whitespaces
    assert not spec.treat_whitespace_as_suffix and spec.num_sub_iterations == 2


def test_newline_and_tab_get_pieces_only_in_the_improved_mode(trained):
    improved = trained("sp-improved").tokenizer
    llama2 = trained("sp-llama2", profile="llama2").tokenizer
    for piece in ("\n", "\t", "\n\n", ":\n", "\t\t"):
        assert improved.token_to_id(piece) is not None, repr(piece)
    # one line is one sentence: no piece can hold a newline (a tab inside a line can get one)
    assert not any("\n" in (llama2.id_to_token(i) or "") for i in range(llama2.vocab_size))
    text = "def f():\n\treturn 1\n"
    assert "<0x0A>" not in [improved.id_to_token(i) for i in improved.encode(text)]
    assert "<0x0A>" in [llama2.id_to_token(i) for i in llama2.encode(text)]


def test_improved_mode_has_less_byte_fallback_and_compresses_better(trained):
    improved = trained("sp-improved").evaluation.total
    llama2 = trained("sp-llama2", profile="llama2").evaluation.total
    assert improved.byte_fallback < llama2.byte_fallback
    assert improved.summary()["bytes_per_token"] > llama2.summary()["bytes_per_token"]


@pytest.mark.parametrize("backend", ["sentencepiece-bpe", "sentencepiece-unigram", "hf-bpe"])
def test_same_seed_gives_the_same_tokenizer(tmp_path, documents, quiet, backend):
    config = small_config(backend=backend, sample_bytes=300_000)
    files = ("tokenizer.json", "sample-manifest.json", "settings.json", "sample/train.jsonl")
    runs = [train_tokenizer(config, documents, tmp_path / name, seed=3, console=quiet) for name in "ab"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert runs[0].tokenizer.content_hash == runs[1].tokenizer.content_hash
    other = train_tokenizer(config, documents, tmp_path / "c", seed=4, console=quiet)
    assert other.sample["train_sha256"] != runs[0].sample["train_sha256"]


def test_pretoken_counts_train_the_same_vocabulary_as_sentences(trained):
    sentences_model = _proto(trained("sp-improved"))
    counts_model = _proto(trained("sp-counts", count_pretokens="always"))
    assert [p.piece for p in counts_model.pieces] == [p.piece for p in sentences_model.pieces]
    assert trained("sp-counts", count_pretokens="always").settings["input"] == "pretoken-counts"


@pytest.mark.ray
def test_pretoken_counts_on_ray_equal_counts_in_process(ray_local, documents):
    from gristmill.tokenizer.sentences import count_pretokens_parallel

    texts = [text for text, _, _ in documents]
    escapes = Escapes("\ue000", "\ue001")
    assert count_pretokens_parallel(texts, escapes, 4192, chunks=3) == count_pretokens(texts, escapes, 4192)


def test_vocabulary_padded_to_a_multiple_with_unused_tokens(trained):
    result = trained("sp-padded", pad_vocab_to_multiple_of=128, user_defined_symbols=["<tool>"])
    assert result.tokenizer.vocab_size == 640
    assert result.settings["padded_with_unused"] == 40
    assert result.tokenizer.id_to_token(639) == "<unused39>"
    hf = trained("hf", backend="hf-bpe")
    assert hf.tokenizer.vocab_size == 600 and hf.tokenizer.bos_id is None
    assert hf.tokenizer.id_to_token(hf.tokenizer.eos_id) == "<|endoftext|>"


@pytest.mark.parametrize(
    ("name", "pretokenizer", "splits"),
    [
        ("hf", "llama3", ["x", "=", "123", "456", "7", ".append", "(_", "name", ")\n", " DON", "'T"]),
        (
            "hf-bounded",
            "bounded",
            ["x", "=", *"1234567", ".", "append", "(_", "name", ")", "\n", " DON", "'", "T"],
        ),
    ],
)
def test_hf_pretokenizer_is_llama3s_by_default_and_the_bounded_one_on_request(
    trained, name, pretokenizer, splits
):
    from tokenizers import Tokenizer as HFTokenizer

    overrides = {"hf_pretokenizer": "bounded"} if pretokenizer == "bounded" else {}
    result = trained(name, backend="hf-bpe", **overrides)
    assert result.settings["trainer"]["pretokenizer"] == pretokenizer
    hf = HFTokenizer.from_file(str(result.out_dir / "tokenizer.json"))
    pieces = [p for p, _ in hf.pre_tokenizer.pre_tokenize_str("x=1234567.append(_name)\n DON'T")]
    assert [hf.decoder.decode([p]) for p in pieces] == splits


def test_literal_end_of_text_in_a_document_is_not_eos(trained):
    tokenizer = trained("hf", backend="hf-bpe").tokenizer
    assert tokenizer.eos_id not in tokenizer.encode("a <|endoftext|> b").tolist()


def test_long_lines_are_split_and_counted_never_dropped():
    split = SplitCount()
    line = ("word " * 3000).strip()
    parts = split_long(line, 1000, split)
    assert "".join(parts) == line and all(len(p.encode()) <= 1000 for p in parts)
    assert split.lines == 1 and split.parts == len(parts) > 1
    blob = "é" * 3000  # one long word of 2-byte characters
    assert "".join(split_long(blob, 999, split)) == blob
    out = list(sentences(["short\n" + line], Escapes(None, None), 1000, SplitCount()))
    assert out[0] == "short" and "".join(out[1:]) == line


def test_vocabulary_larger_than_the_corpus_supports_is_explained(tmp_path, quiet):
    docs = [("a small corpus with few distinct characters", "s", "")] * 3
    with pytest.raises(InputError, match="larger than this corpus supports"):
        train_tokenizer(small_config(vocab_size=5000, heldout_fraction=0), docs, tmp_path, console=quiet)
    with pytest.raises(InputError, match="larger than this corpus supports"):
        train_tokenizer(
            small_config(vocab_size=5000, heldout_fraction=0, backend="hf-bpe"),
            docs,
            tmp_path / "hf",
            console=quiet,
        )


def test_empty_corpus_is_an_error(tmp_path, quiet):
    with pytest.raises(InputError, match="corpus is empty"):
        train_tokenizer(small_config(), [], tmp_path, console=quiet)


def test_outputs_and_evaluation(trained):
    result = trained("sp-improved")
    names = {p.name for p in result.out_dir.iterdir()}
    assert {
        "tokenizer.json",
        "tokenizer.model",
        "settings.json",
        "sample-manifest.json",
        "evaluation.json",
    } <= names
    evaluation = json.loads((result.out_dir / "evaluation.json").read_text())
    assert set(evaluation["sources"]) == {"prose", "code"}
    assert evaluation["total"]["round_trip_lossless"] is True
    assert 1.5 < evaluation["total"]["bytes_per_token"] < 6
    assert 0 < evaluation["vocab_use"] <= 1
    assert any(key.startswith("code/") for key in evaluation["subsets"])
