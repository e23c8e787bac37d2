"""The base of every build step whose work is writing files rather than passing documents on."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep


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
