"""Train a sentencepiece model (BPE with the `llama2` profile or our newline-aware variant, or unigram).

`LLAMA2_TRAINER_SPEC` is Llama 2's `tokenizer.model` trainer_spec and normalizer_spec, field by field, except
`input_sentence_size` (we draw our own seeded sample, so sentencepiece uses every sentence given) and
`num_threads` (pinned by the config). The default mode differs from it in one thing: documents are trained
whole with newline and tab escaped (see sentences.py), so `\\n`, `\\t` and pieces like `):\\n` exist.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.errors import InputError
from gristmill.tokenizer.config import TokenizerTrainConfig
from gristmill.tokenizer.sentences import (
    Escapes,
    SplitCount,
    choose_escapes,
    count_pretokens,
    count_pretokens_parallel,
    sentences,
)

LLAMA2_TRAINER_SPEC: dict[str, Any] = {
    "model_type": "bpe",
    "vocab_size": 32000,
    "self_test_sample_size": 0,
    "character_coverage": 0.99995,
    "input_sentence_size": 200_000_000,
    "seed_sentencepiece_size": 1_000_000,
    "shrinking_factor": 0.75,
    "num_threads": 80,
    "num_sub_iterations": 2,
    "max_sentence_length": 4192,
    "shuffle_input_sentence": True,
    "max_sentencepiece_length": 16,
    "split_by_unicode_script": True,
    "split_by_whitespace": True,
    "split_by_number": True,
    "treat_whitespace_as_suffix": False,
    "split_digits": True,
    "allow_whitespace_only_pieces": True,
    "vocabulary_output_piece_score": True,
    "hard_vocab_limit": True,
    "use_all_vocab": False,
    "byte_fallback": True,
    "required_chars": "",
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    "unk_surface": " \u2047 ",
    "unk_piece": "<unk>",
    "bos_piece": "<s>",
    "eos_piece": "</s>",
    "pad_piece": "<pad>",
    "train_extremely_large_corpus": False,
    # normalizer_spec
    "normalization_rule_name": "identity",
    "add_dummy_prefix": True,
    "remove_extra_whitespaces": False,
}
UNUSED_PIECE = "<unused{}>"


@dataclass
class SentencepieceResult:
    """A trained model's bytes and how it was trained (for settings.json)."""

    model: bytes
    settings: dict[str, Any]
    escapes: Escapes
    split: SplitCount
    input_mode: str
    padded: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def trainer_settings(config: TokenizerTrainConfig) -> dict[str, Any]:
    """Return the sentencepiece trainer arguments for `config` (llama2 fields, our overrides)."""
    settings = dict(LLAMA2_TRAINER_SPEC)
    settings.update(
        vocab_size=config.vocab_size,
        character_coverage=config.character_coverage,
        num_threads=config.num_threads,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        max_sentence_length=config.max_sentence_bytes,
        minloglevel=2,
    )
    if config.backend == "sentencepiece-unigram":
        settings.update(model_type="unigram")
    if config.user_defined_symbols:
        settings["user_defined_symbols"] = list(config.user_defined_symbols)
    if config.special_tokens:
        settings["control_symbols"] = list(config.special_tokens)
    return settings


def _explain(error: Exception, config: TokenizerTrainConfig, sample_bytes: int) -> InputError:
    text = str(error)
    if "Vocabulary size" in text or "vocab_size" in text:
        return InputError(
            f"vocabulary of {config.vocab_size:,} is larger than this corpus supports "
            f"({sample_bytes:,} bytes sampled): sentencepiece says {text.strip()!r}",
            hint="lower vocab_size or sample more text (sample_bytes)",
        )
    return InputError(f"sentencepiece training failed: {text.strip()}")


def _finish_model(model: bytes, escapes: Escapes, multiple: int | None) -> tuple[bytes, int]:
    """Rename the escapes back to newline/tab and append unused pieces up to a multiple of `multiple`."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(model)
    del proto.trainer_spec.input[:]  # a temporary path: keep the model independent of where it was trained
    for piece in proto.pieces:
        piece.piece = escapes.restore(piece.piece)
    padded = (-len(proto.pieces)) % multiple if multiple else 0
    for i in range(padded):
        proto.pieces.add(piece=UNUSED_PIECE.format(i), score=0.0, type=pb.ModelProto.SentencePiece.UNUSED)
    return proto.SerializeToString(), padded


def train_sentencepiece(
    config: TokenizerTrainConfig,
    texts: list[str],
    workdir: Path,
    status: Callable[[str], None] = lambda _: None,
) -> SentencepieceResult:
    """Train on `texts` (the sampled documents) in `workdir`; raise InputError when training is impossible.

    Trains from sentences, or from pre-token counts (TSV, counted on Ray when more than one thread) when
    the sample is larger than `max_sentences_bytes` or `count_pretokens` says so.
    """
    import sentencepiece as spm

    settings = trainer_settings(config)
    escapes = choose_escapes(texts, newline=bool(config.newline_pieces), tab=bool(config.newline_pieces))
    sample_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    use_counts = config.count_pretokens == "always" or (
        config.count_pretokens == "auto" and sample_bytes > config.max_sentences_bytes
    )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    if use_counts:
        status("counting pre-tokens")
        if config.num_threads > 1 and len(texts) > 1000:
            counts, split = count_pretokens_parallel(
                texts, escapes, config.max_sentence_bytes, chunks=config.num_threads
            )
        else:
            counts, split = count_pretokens(texts, escapes, config.max_sentence_bytes)
        input_file = workdir / "pretokens.tsv"
        with input_file.open("w", encoding="utf-8") as f:
            for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
                f.write(f"{word}\t{count}\n")
        settings.update(input_format="tsv")
    else:
        status("writing sentences")
        split = SplitCount()
        input_file = workdir / "sentences.txt"
        with input_file.open("w", encoding="utf-8") as f:
            for sentence in sentences(texts, escapes, config.max_sentence_bytes, split):
                f.write(sentence)
                f.write("\n")
    timings["prepare_s"] = time.perf_counter() - started
    status(f"training sentencepiece {settings['model_type']} ({config.vocab_size:,} pieces)")
    started = time.perf_counter()
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(input=str(input_file), model_writer=model, **settings)
    except (RuntimeError, OSError) as e:
        raise _explain(e, config, sample_bytes) from None
    timings["train_s"] = time.perf_counter() - started
    finished, padded = _finish_model(model.getvalue(), escapes, config.pad_vocab_to_multiple_of)
    settings.pop("minloglevel")
    return SentencepieceResult(
        model=finished,
        settings=settings,
        escapes=escapes,
        split=split,
        input_mode="pretoken-counts" if use_counts else "sentences",
        padded=padded,
        timings=timings,
    )
