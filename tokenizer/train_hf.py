"""Train an HF `tokenizers` byte-level BPE (GPT-2 style), pre-split by one of two patterns.

- `llama3` (the default): Llama 3's pattern (tiktoken's cl100k): contractions in any case, a letter run with
  one leading non-letter (`_name`, `.append`), digits in groups of up to three, punctuation runs with their
  line ends, newline runs. It is a pattern the fastest encoder knows (gigatoken, tokenizer/encoders.py),
  and on held-out prose and code its tokens carry 19% more bytes than `bounded`'s (docs/tokenizer.md).
- `bounded` (gristmill's earlier default): GPT-2's pattern with digits one by one and every run of
  letters or other characters cut at 16. The trainer keeps one entry per distinct pre-token, so bounding
  the runs bounds its memory on code and data-like text (`llama3` makes 31% more distinct pre-tokens on
  our 50 MB sample); no piece could be longer anyway. gigatoken does not know it: kitoken encodes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gristmill.errors import InputError
from gristmill.tokenizer.config import TokenizerTrainConfig

EOS = "<|endoftext|>"
# Written exactly as Llama 3's tokenizer.json has it: encoders recognise the pattern by its text.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
# GPT-2's pattern with letter/other runs capped at 16 characters and digits split one by one.
BOUNDED_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}{1,16}| ?\p{N}| ?[^\s\p{L}\p{N}]{1,16}|\s+(?!\S)|\s+"
SPLIT_PATTERNS = {"llama3": LLAMA3_PATTERN, "bounded": BOUNDED_PATTERN}


@dataclass
class HFResult:
    """A trained tokenizer.json text and how it was trained."""

    tokenizer_json: str
    settings: dict[str, Any]
    padded: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def build_untrained(config: TokenizerTrainConfig):
    """Return an untrained byte-level BPE `tokenizers.Tokenizer` and its trainer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERNS[config.hf_pretokenizer]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = [EOS, *[t for t in config.special_tokens if t != EOS]]
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=16,
    )
    if config.user_defined_symbols:
        tokenizer.add_tokens(list(config.user_defined_symbols))
    return tokenizer, trainer


def _pad(tokenizer, multiple: int | None) -> int:
    from tokenizers import AddedToken

    padded = (-tokenizer.get_vocab_size(with_added_tokens=True)) % multiple if multiple else 0
    tokenizer.add_special_tokens([AddedToken(f"<unused{i}>", special=True) for i in range(padded)])
    return padded


def train_hf(
    config: TokenizerTrainConfig, texts: list[str], status: Callable[[str], None] = lambda _: None
) -> HFResult:
    """Train on `texts`; raise InputError when the corpus cannot fill the vocabulary."""
    tokenizer, trainer = build_untrained(config)
    status(f"training HF byte-level BPE ({config.vocab_size:,} tokens)")
    started = time.perf_counter()

    def batches() -> Iterator[list[str]]:
        for i in range(0, len(texts), 1000):
            yield texts[i : i + 1000]

    tokenizer.train_from_iterator(batches(), trainer=trainer, length=len(texts))
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size < config.vocab_size:
        raise InputError(
            f"vocabulary of {config.vocab_size:,} is larger than this corpus supports: "
            f"training stopped at {size:,} tokens",
            hint="lower vocab_size or sample more text",
        )
    padded = _pad(tokenizer, config.pad_vocab_to_multiple_of)
    settings = {
        "model": "BPE",
        "byte_level": True,
        "pretokenizer": config.hf_pretokenizer,
        "split_pattern": SPLIT_PATTERNS[config.hf_pretokenizer],
        "vocab_size": config.vocab_size,
        "special_tokens": [EOS, *config.special_tokens],
        "max_token_length": 16,
    }
    return HFResult(
        tokenizer_json=json.dumps(json.loads(tokenizer.to_str()), ensure_ascii=False),
        settings=settings,
        padded=padded,
        timings={"train_s": time.perf_counter() - started},
    )
