"""Tokenizer settings: use an existing tokenizer file, or train one (from a recipe's documents or files)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Backend = Literal["sentencepiece-bpe", "sentencepiece-unigram", "hf-bpe"]


class TokenizerTrainConfig(BaseModel):
    """How to train a tokenizer. `profile: llama2` fills in Llama 2's sentencepiece trainer settings."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = "sentencepiece-bpe"
    profile: Literal["llama2"] | None = None
    vocab_size: int = Field(32000, ge=64)
    character_coverage: float = Field(0.99995, gt=0, le=1)
    sample_bytes: int = Field(200_000_000, ge=1, description="bytes of documents drawn to train on")
    special_tokens: list[str] = Field(default_factory=list)
    user_defined_symbols: list[str] = Field(default_factory=list)
    pad_vocab_to_multiple_of: int | None = Field(None, ge=1)
    seed: int | None = Field(None, description="sampling seed; the recipe's seed when not given")


class TokenizerConfig(BaseModel):
    """Exactly one of `path` (an existing tokenizer.json or sentencepiece .model) or `train`."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    train: TokenizerTrainConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TokenizerConfig:
        if (self.path is None) == (self.train is None):
            raise ValueError("give exactly one of `path` (an existing tokenizer) or `train` (settings)")
        return self
