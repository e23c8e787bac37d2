"""Our rule sets as datatrove filters, for plain datatrove pipelines: `GristmillGopherQualityFilter()` etc.

Each runs our batched implementation (`batch_size` documents at a time, 256 by default) and drops with our
reason, which datatrove counts as the statistic `dropped_<name>:<rule>`.
"""

from __future__ import annotations

from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.c4 import C4Filter
from gristmill.pipelines.filters.code import CodeFilter
from gristmill.pipelines.filters.config import (
    C4Config,
    CodeConfig,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from gristmill.pipelines.filters.fineweb import FineWebFilter
from gristmill.pipelines.filters.gopher_quality import GopherQualityFilter
from gristmill.pipelines.filters.gopher_repetition import GopherRepetitionFilter


class _GristmillFilter(BaseFilter):
    """A datatrove filter that asks one of our rule sets about whole batches.

    Documents' file paths (metadata `path_key`, Starcoderdata's `repo_path` by default) go to the rule set
    too; those that judge by file type use them, the others ignore them.
    """

    def __init__(
        self,
        rules: DocumentFilter,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 256,
        path_key: str = "repo_path",
    ) -> None:
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.rules = rules
        self.path_key = path_key

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """Return True to keep each document, or (False, reason) to drop it."""
        paths = [doc.metadata.get(self.path_key) for doc in batch]
        verdicts = self.rules.check_batch([doc.text for doc in batch], paths if any(paths) else None)
        return [True if reason is None else (False, reason) for reason in verdicts]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        """Return True to keep `doc`, or (False, reason) to drop it."""
        return self.filter_batch([doc])[0]


class GristmillGopherQualityFilter(_GristmillFilter):
    """Gopher's quality rules (`gristmill.pipelines.filters.GopherQualityFilter`) as a datatrove step."""

    name = "🥇 Gristmill Gopher Quality"

    def __init__(self, config: GopherQualityConfig | None = None, **kwargs: Any) -> None:
        super().__init__(GopherQualityFilter(config), **kwargs)


class GristmillGopherRepetitionFilter(_GristmillFilter):
    """Gopher's repetition rules (`GopherRepetitionFilter`) as a datatrove step."""

    name = "👯 Gristmill Gopher Repetition"

    def __init__(self, config: GopherRepetitionConfig | None = None, **kwargs: Any) -> None:
        super().__init__(GopherRepetitionFilter(config), **kwargs)


class GristmillC4Filter(_GristmillFilter):
    """C4's document-level rules (`C4Filter`: drops, never rewrites) as a datatrove step."""

    name = "⛰ Gristmill C4"

    def __init__(self, config: C4Config | None = None, **kwargs: Any) -> None:
        super().__init__(C4Filter(config), **kwargs)


class GristmillFineWebFilter(_GristmillFilter):
    """FineWeb's rules (`FineWebFilter`) as a datatrove step."""

    name = "🍷 Gristmill FineWeb"

    def __init__(self, config: FineWebConfig | None = None, **kwargs: Any) -> None:
        super().__init__(FineWebFilter(config), **kwargs)


class GristmillCodeFilter(_GristmillFilter):
    """StarCoder-style code rules (`CodeFilter`) as a datatrove step; paths come from `path_key` metadata."""

    name = "💻 Gristmill Code"

    def __init__(self, config: CodeConfig | None = None, **kwargs: Any) -> None:
        super().__init__(CodeFilter(config), **kwargs)
