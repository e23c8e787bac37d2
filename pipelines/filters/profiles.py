"""Which profile, so which rule sets, judge a document: resolved from its (source, subset), once per pair.

A source's subsets get their profile from the first matching pattern of, in order: the recipe's own
`profiles`, its reader's defaults (what the corpus's makers did), then `*` by the source's `kind`
(`resolved_profiles`). `ProfileScope` is the one place that answers it for a document.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from gristmill.pipelines.readers import READERS

if TYPE_CHECKING:
    from gristmill.pipelines.recipe import Recipe

# The profile of subsets that neither the recipe nor the reader's defaults name, by the source's `kind`.
KIND_PROFILES = {"text": "web", "code": "code"}


def resolved_profiles(fmt: str, kind: str, given: dict[str, str] | None = None) -> dict[str, str]:
    """Return a source's subset pattern → profile map in the order the patterns are tried: `given` (the
    recipe's own), then the reader's defaults for layout `fmt`, then `*` by `kind` ("text" or "code")."""
    resolved = dict(given or {})
    for pattern, profile in READERS[fmt].default_profiles.items():
        resolved.setdefault(pattern, profile)
    resolved.setdefault("*", KIND_PROFILES[kind])
    return resolved


def match_profile(patterns: dict[str, str], subset: str) -> str | None:
    """Return the profile of the first pattern (a subset name or an fnmatch glob, case-sensitive) in
    `patterns` that `subset` matches, or None when none does."""
    for pattern, profile in patterns.items():
        if fnmatchcase(subset, pattern):
            return profile
    return None


class ProfileScope:
    """A recipe's (source, subset) → profile → rule sets, cached per (source, subset).

    Every rule set in the build's chain asks it whether a document is one its profile includes; documents of
    sources the recipe does not name (plain datatrove pipelines) resolve to no profile and are not judged.
    """

    def __init__(self, source_patterns: dict[str, dict[str, str]], profiles: dict[str, list[str]]) -> None:
        self.source_patterns = source_patterns
        self.profiles = {name: frozenset(rule_sets) for name, rule_sets in profiles.items()}
        self._cache: dict[tuple[str, str], str | None] = {}

    @classmethod
    def of_recipe(cls, recipe: Recipe) -> ProfileScope:
        """Return the scope of `recipe`'s sources (their profiles resolved) and `filters.profiles`."""
        patterns = {s.name: resolved_profiles(s.format, s.kind, s.profiles) for s in recipe.sources}
        return cls(patterns, recipe.filters.profiles)

    def profile(self, source: str | None, subset: str | None) -> str | None:
        """Return the profile of documents of `subset` in `source`, or None for a source not in the recipe."""
        key = (source or "", subset or "")
        if key not in self._cache:
            patterns = self.source_patterns.get(key[0])
            self._cache[key] = None if patterns is None else match_profile(patterns, key[1])
        return self._cache[key]

    def includes(self, source: str | None, subset: str | None, rule_set: str) -> bool:
        """Return True when the profile of (`source`, `subset`) runs `rule_set`."""
        profile = self.profile(source, subset)
        return profile is not None and rule_set in self.profiles.get(profile, ())

    def used_profiles(self) -> set[str]:
        """Return every profile some pattern of some source names (what the build may run)."""
        return {profile for patterns in self.source_patterns.values() for profile in patterns.values()}
