"""Quality filters: Gopher quality and repetition, C4 and FineWeb for web text; StarCoder-style rules for
code; the curated rules for text that is already clean. A profile names which of them judge a subset.

`RULE_SET_CLASSES` is the registry: rule set name → its `DocumentFilter` class, whose settings are the
`FiltersConfig` field of the same name (`gristmill.pipelines.config.filters`). Everything else — the chain's
order, the profiles' validation, the build's datatrove filters — is derived from the two.
"""

from __future__ import annotations

from gristmill.pipelines.config.filters import RULE_SETS, FiltersConfig
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.c4 import C4Filter
from gristmill.pipelines.filters.code import CodeFilter
from gristmill.pipelines.filters.curated import CuratedFilter
from gristmill.pipelines.filters.fineweb import FineWebFilter
from gristmill.pipelines.filters.gopher_quality import GopherQualityFilter
from gristmill.pipelines.filters.gopher_repetition import GopherRepetitionFilter

__all__ = [
    "RULE_SET_CLASSES",
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

RULE_SET_CLASSES: dict[str, type[DocumentFilter]] = {
    cls.name: cls
    for cls in (
        CuratedFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        C4Filter,
        FineWebFilter,
        CodeFilter,
    )
}


def make_rule_set(config: FiltersConfig, name: str) -> DocumentFilter | None:
    """Return the rule set called `name` with the recipe's thresholds, or None when it is switched off;
    raise ValueError for an unknown name."""
    settings = config.rule_set(name)
    return RULE_SET_CLASSES[name](settings) if config.enabled and settings.enabled else None


def make_filters(config: FiltersConfig, profile: str) -> list[DocumentFilter]:
    """Return the enabled rule sets of `profile` (a name in `config.profiles`) in the order the chain runs
    them; raise ValueError for an unknown profile."""
    if profile not in config.profiles:
        raise ValueError(f"unknown filter profile {profile!r}; expected one of {', '.join(config.profiles)}")
    wanted = set(config.profiles[profile])
    built = (make_rule_set(config, name) for name in RULE_SETS if name in wanted)
    return [rules for rules in built if rules is not None]
