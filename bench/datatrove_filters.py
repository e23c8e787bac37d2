"""The reference our filters are held to: datatrove's own filter classes, run on the same documents.

Used by the agreement tests (loaded by path) and by `bench/filters_bench.py`; nothing in the package
imports it. Running datatrove's English filters needs spaCy (`pip install spacy`), which they use to split
words and sentences. The documents they are compared on come from `gristmill.sample.text`.
"""

from __future__ import annotations

from typing import Any

from gristmill.pipelines.config.filters import (
    C4Config,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)

RULE_SETS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")

# Our rule name -> datatrove's reason for the same drop (for reporting which rule disagreed).
DATATROVE_REASONS = {
    "gopher_quality": {
        "min_doc_words": "gopher_short_doc",
        "max_doc_words": "gopher_long_doc",
        "min_avg_word_length": "gopher_below_avg_threshold",
        "max_avg_word_length": "gopher_above_avg_threshold",
        "hash_ratio": "gopher_too_many_hashes",
        "ellipsis_ratio": "gopher_too_many_ellipsis",
        "bullet_lines": "gopher_too_many_bullets",
        "ellipsis_lines": "gopher_too_many_end_ellipsis",
        "alpha_words": "gopher_below_alpha_threshold",
        "stop_words": "gopher_enough_stop_words",
    },
    "gopher_repetition": {
        "empty": "empty",
        "dup_para_frac": "dup_para_frac",
        "dup_para_char_frac": "dup_para_char_frac",
        "dup_line_frac": "dup_line_frac",
        "dup_line_char_frac": "dup_line_char_frac",
        **{f"top_{n}_gram": f"top_{n}_gram" for n in range(1, 21)},
        **{f"dup_{n}_gram": f"duplicated_{n}_n_grams" for n in range(1, 21)},
    },
    "c4": {
        "lorem_ipsum": "lorem_ipsum",
        "curly_bracket": "curly_bracket",
        "min_num_sentences": "too_few_sentences",
    },
    "fineweb": {
        "empty": "empty",
        "line_punct_ratio": "line_punct_ratio",
        "short_line_ratio": "short_line_ratio",
        "char_dup_ratio": "char_dup_ratio",
        "new_line_ratio": "list_ratio",
    },
}


def datatrove_filter(rule_set: str, config: Any = None) -> Any:
    """Return datatrove's filter for `rule_set` with `config`'s thresholds (published defaults if None).

    Our config models name every threshold exactly as datatrove's constructors do, so the thresholds are
    passed through as they are (n-gram settings as tuples).
    """
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    classes = {
        "gopher_quality": (GopherQualityConfig, GopherQualityFilter),
        "gopher_repetition": (GopherRepetitionConfig, GopherRepetitionFilter),
        "c4": (C4Config, C4QualityFilter),
        "fineweb": (FineWebConfig, FineWebQualityFilter),
    }
    if rule_set not in classes:
        raise ValueError(f"unknown rule set {rule_set!r}; expected one of {', '.join(RULE_SETS)}")
    config_class, filter_class = classes[rule_set]
    config = config or config_class()
    if getattr(config, "alpha_words", "tokens") != "tokens":
        raise ValueError("datatrove counts alpha_words over spaCy's tokens only (alpha_words: tokens)")
    thresholds = config.model_dump(exclude={"enabled", "alpha_words"})  # ours only: no datatrove argument
    kwargs = {k: tuple(map(tuple, v)) if isinstance(v, list) else v for k, v in thresholds.items()}
    return filter_class(**kwargs)


def datatrove_verdicts(rule_set: str, texts: list[str], config: Any = None) -> list[str | None]:
    """Return datatrove's verdict per text: None if kept, else its drop reason.

    datatrove's C4 filter keeps a document after deleting some of its lines; that counts as kept here,
    since our C4 filter only decides whether a document goes (docs/filters.md, "C4").
    """
    from datatrove.data import Document

    flt = datatrove_filter(rule_set, config)
    verdicts: list[str | None] = []
    for i, text in enumerate(texts):
        result = flt.filter(Document(text=text, id=str(i)))
        verdicts.append(None if result is True else (result[1] if isinstance(result, tuple) else "dropped"))
    return verdicts
