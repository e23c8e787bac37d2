"""Quality filters: Gopher quality and repetition, C4 and FineWeb for text; StarCoder-style rules for code."""

from __future__ import annotations

from typing import Literal

from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.c4 import C4Filter
from gristmill.pipelines.filters.code import CodeFilter
from gristmill.pipelines.filters.config import FiltersConfig
from gristmill.pipelines.filters.fineweb import FineWebFilter
from gristmill.pipelines.filters.gopher_quality import GopherQualityFilter
from gristmill.pipelines.filters.gopher_repetition import GopherRepetitionFilter

__all__ = [
    "C4Filter",
    "CodeFilter",
    "DocumentFilter",
    "FineWebFilter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "make_filters",
]


def make_filters(config: FiltersConfig, kind: Literal["text", "code"]) -> list[DocumentFilter]:
    """Return the enabled rule sets for a source of `kind`, in the order they run; raise ValueError for an
    unknown kind."""
    if kind not in ("text", "code"):
        raise ValueError(f"unknown source kind {kind!r}; expected 'text' or 'code'")
    if not config.enabled:
        return []
    if kind == "code":
        return [CodeFilter(config.code)] if config.code.enabled else []
    text = config.text
    candidates = [
        (text.gopher_quality, GopherQualityFilter),
        (text.gopher_repetition, GopherRepetitionFilter),
        (text.c4, C4Filter),
        (text.fineweb, FineWebFilter),
    ]
    return [cls(rules) for rules, cls in candidates if rules.enabled]
