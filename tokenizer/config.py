"""Tokenizer settings: use an existing tokenizer file, or train one (from a recipe's documents or files)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gristmill.models import StrictModel

Backend = Literal["sentencepiece-bpe", "sentencepiece-unigram", "hf-bpe"]


class TokenizerTrainConfig(StrictModel):
    """How to train a tokenizer. `profile: llama2` fills in Llama 2's sentencepiece trainer settings."""

    backend: Backend = "sentencepiece-bpe"
    profile: Literal["llama2"] | None = Field(
        None, description="llama2: Llama 2's trainer settings exactly (one line = one sentence)"
    )
    vocab_size: int = Field(32000, ge=64)
    character_coverage: float = Field(0.99995, gt=0, le=1)
    sample_bytes: int = Field(200_000_000, ge=1, description="bytes of documents drawn to train on")
    heldout_bytes: int = Field(2_000_000, ge=0, description="held-out bytes to evaluate on")
    heldout_fraction: float = Field(0.02, ge=0, lt=1, description="share of documents held out")
    special_tokens: list[str] = Field(default_factory=list)
    user_defined_symbols: list[str] = Field(default_factory=list)
    pad_vocab_to_multiple_of: int | None = Field(None, ge=1)
    seed: int | None = Field(None, description="sampling seed; the recipe's seed when not given")
    newline_pieces: bool | None = Field(
        None,
        description="sentencepiece: train on whole documents so \\n and \\t get pieces; "
        "default on, off for profile llama2",
    )
    count_pretokens: Literal["auto", "always", "never"] = Field(
        "auto",
        description="sentencepiece: train from pre-token counts (TSV) instead of sentences; "
        "auto when the sample exceeds `max_sentences_bytes`",
    )
    max_sentences_bytes: int = Field(
        1_000_000_000,
        ge=1,
        description="largest sample trained from sentences (sentencepiece holds "
        "about 11x the text in memory)",
    )
    max_sentence_bytes: int = Field(4192, ge=64, description="longer lines are split, never skipped")
    num_threads: int = Field(2, ge=1, description="trainer threads (pinned so unigram is reproducible)")
    hf_pretokenizer: Literal["llama3", "bounded"] = Field(
        "llama3",
        description="hf-bpe: Llama 3's split pattern, or gristmill's earlier one with runs cut at 16 "
        "characters (less trainer memory; not served by the fastest encoder): tokenizer/train_hf.py",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TokenizerTrainConfig:
        if self.profile == "llama2" and self.backend != "sentencepiece-bpe":
            raise ValueError("profile llama2 needs backend sentencepiece-bpe")
        if self.newline_pieces is None:
            self.newline_pieces = self.profile != "llama2"
        return self


class TokenizerConfig(StrictModel):
    """Exactly one of `path` (an existing tokenizer.json or sentencepiece .model) or `train`."""

    path: str | None = None
    train: TokenizerTrainConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TokenizerConfig:
        if (self.path is None) == (self.train is None):
            raise ValueError("give exactly one of `path` (an existing tokenizer) or `train` (settings)")
        return self
