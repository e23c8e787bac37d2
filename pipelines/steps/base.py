"""The bases of build steps: `WritingStep` (its work is writing files rather than passing documents on) and
`JudgingFilter` (a filter in the ingest chain that judges documents in its own `run`)."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.typeshelper import StatHints


class WritingStep(PipelineStep):
    """A pipeline's last step: `write` consumes the input (if any) for task `rank` and writes its files.

    It yields no documents, so datatrove's executor has nothing left to drain after it.
    """

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        self.write(data, rank, world_size)
        return iter(())

    @abstractmethod
    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        """Do task `rank`'s work; everything it produces is a file (written atomically)."""


class JudgingFilter(BaseFilter):
    """A datatrove filter whose `run` judges documents itself (whole batches, or changing a document as it
    goes), keeping BaseFilter's drop statistics and exclusion writer; `filter` and `filter_batch` are not
    used."""

    def excluded(self) -> contextlib.AbstractContextManager[Any]:
        """Return the exclusion writer to open around `run`'s loop (a null context, giving None, without
        one)."""
        return self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()

    def drop(self, doc: Document, reason: str, writer: Any, rank: int) -> None:
        """Count `doc` as dropped for `reason` and, with an exclusion writer (`writer` from `excluded`), write
        it there with its reason."""
        self.stat_update(StatHints.dropped)
        self.stat_update(f"dropped_{reason}")
        if writer is not None:
            doc.metadata["filter_reason"] = reason
            writer.write(doc, rank)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError(f"{type(self).__name__} judges documents in run()")

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        raise NotImplementedError(f"{type(self).__name__} judges documents in run()")
