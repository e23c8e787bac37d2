"""Quality filters: Gopher quality and repetition, C4 and FineWeb for web text; StarCoder-style rules for
code; the curated rules for text that is already clean. A profile names which of them judge a subset."""

from __future__ import annotations

from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.c4 import C4Filter
from gristmill.pipelines.filters.code import CodeFilter
from gristmill.pipelines.filters.config import RULE_SETS, FiltersConfig
from gristmill.pipelines.filters.curated import CuratedFilter
from gristmill.pipelines.filters.fineweb import FineWebFilter
from gristmill.pipelines.filters.gopher_quality import GopherQualityFilter
from gristmill.pipelines.filters.gopher_repetition import GopherRepetitionFilter

__all__ = [
    "C4Filter",
    "CodeFilter",
    "CuratedFilter",
    "DocumentFilter",
    "FineWebFilter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "make_filters",
    "make_rule_set",
]

_LEGACY_KINDS = {"text": "web"}  # a source's `kind: text` read the web rules before profiles existed


def make_rule_set(config: FiltersConfig, name: str) -> DocumentFilter | None:
    """Return the rule set called `name` with the recipe's thresholds, or None when it is switched off;
    raise ValueError for an unknown name."""
    text = config.text
    settings = {
        "curated": (config.curated, CuratedFilter),
        "gopher_quality": (text.gopher_quality, GopherQualityFilter),
        "gopher_repetition": (text.gopher_repetition, GopherRepetitionFilter),
        "c4": (text.c4, C4Filter),
        "fineweb": (text.fineweb, FineWebFilter),
        "code": (config.code, CodeFilter),
    }
    if name not in settings:
        raise ValueError(f"unknown rule set {name!r}; expected one of {', '.join(RULE_SETS)}")
    rules, cls = settings[name]
    return cls(rules) if config.enabled and rules.enabled else None


def make_filters(config: FiltersConfig, profile: str) -> list[DocumentFilter]:
    """Return the enabled rule sets of `profile` (a name in `config.profiles`; `text` is the old name of
    `web`) in the order the chain runs them; raise ValueError for an unknown profile."""
    profile = _LEGACY_KINDS.get(profile, profile)
    if profile not in config.profiles:
        raise ValueError(f"unknown filter profile {profile!r}; expected one of {', '.join(config.profiles)}")
    wanted = set(config.profiles[profile])
    built = (make_rule_set(config, name) for name in RULE_SETS if name in wanted)
    return [rules for rules in built if rules is not None]
