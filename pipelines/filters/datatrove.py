"""Our rule sets as datatrove filters: the build's ingest chain, and plain datatrove pipelines alike.

`RuleSetFilter(rules)` runs one rule set's batched implementation (`batch_size` documents at a time, 256 by
default) and drops with its reason, "<rule set>:<rule>", which datatrove hands to the filter's exclusion
writer and counts as the statistic `dropped_<reason>`. `gristmill_filter_steps(recipe)` gives the build's
chain, each filter judging only the documents whose (source, subset) resolves to a profile that runs its
rule set. In a plain datatrove pipeline: `RuleSetFilter(GopherQualityFilter())`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.batching import batched
from datatrove.utils.typeshelper import StatHints

from gristmill.pipelines.config.filters import RULE_SETS
from gristmill.pipelines.filters import make_rule_set
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.guard import guarded
from gristmill.pipelines.filters.profiles import ProfileScope

if TYPE_CHECKING:
    from gristmill.pipelines.recipe import Recipe

_BATCH = 256


class RuleSetFilter(BaseFilter):
    """A datatrove filter that asks one of our rule sets about whole batches.

    With a `scope`, only documents whose (`metadata["source"]`, `metadata["subset"]`) resolves to a profile
    that runs this rule set are judged; the others pass.
    Documents' file paths (metadata `path_key`, Starcoderdata's `repo_path` by default) go to the rule set
    too; those that judge by file type use them, the others ignore them. With `max_seconds_per_document`, a
    document the rule set spends more CPU time on is dropped as `guard.Quarantined("<rule set>:time_limit")`.
    """

    def __init__(
        self,
        rules: DocumentFilter,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = _BATCH,
        path_key: str = "repo_path",
        scope: ProfileScope | None = None,
        max_seconds_per_document: float = 0,
    ) -> None:
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.rules = guarded(rules, max_seconds_per_document)  # a document over the limit is quarantined
        self.path_key = path_key
        self.scope = scope
        self.name = f"gristmill {rules.name}"

    def judges(self, doc: Document) -> bool:
        """Return True when `doc` is one this filter's rule set is for."""
        return self.scope is None or self.scope.includes(
            doc.metadata.get("source"), doc.metadata.get("subset"), self.rules.name
        )

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """Return True to keep each document, or (False, reason) to drop it."""
        judged = batch if self.scope is None else [d for d in batch if self.judges(d)]
        if not judged:
            return [True] * len(batch)
        paths = [doc.metadata.get(self.path_key) for doc in judged]
        verdicts = iter(self.rules.check_batch([doc.text for doc in judged], paths if any(paths) else None))
        if len(judged) == len(batch):
            return [True if reason is None else (False, reason) for reason in verdicts]
        results: list[bool | tuple[bool, str]] = []
        for doc in batch:
            if not self.judges(doc):
                results.append(True)
                continue
            reason = next(verdicts)
            results.append(True if reason is None else (False, reason))
        return results

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Return True to keep `doc`, or (False, reason) to drop it."""
        return self.filter_batch([doc])[0]

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """datatrove's `BaseFilter.run`, counting per batch: the same `total`, `forwarded`, `dropped` and
        `dropped_<reason>` statistics and exclusion-writer hand-off, without its per-document `doc_len`
        statistic (a third of a chain's time on short documents; the readers count documents already)."""
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for batch in batched(data, self.batch_size):
                self.stat_update("batches")
                with self.track_time("batch"):
                    verdicts = self.filter_batch(batch)
                self.stat_update(StatHints.total, value=len(batch))
                kept = 0
                for doc, verdict in zip(batch, verdicts):
                    keep, reason = get_filter_result(verdict)
                    if keep:
                        kept += 1
                        yield doc
                        continue
                    self.stat_update(StatHints.dropped)
                    if reason:
                        self.stat_update(f"dropped_{reason}")
                    if self.exclusion_writer:
                        if reason:
                            doc.metadata["filter_reason"] = reason
                        writer.write(doc, rank)
                self.stat_update(StatHints.forwarded, value=kept)


def gristmill_filter_steps(recipe: Recipe) -> list[tuple[str, RuleSetFilter]]:
    """Return the build's filters in the order they run, as (rule set name, datatrove filter): every
    enabled rule set some source's profile runs, each judging only the subsets whose profile runs it."""
    scope = ProfileScope.of_recipe(recipe)
    used = {rule_set for profile in scope.used_profiles() for rule_set in recipe.filters.profiles[profile]}
    steps: list[tuple[str, RuleSetFilter]] = []
    for name in RULE_SETS:
        rules = make_rule_set(recipe.filters, name) if name in used else None
        if rules is not None:
            limit = recipe.filters.max_seconds_per_document
            steps.append((name, RuleSetFilter(rules, scope=scope, max_seconds_per_document=limit)))
    return steps
