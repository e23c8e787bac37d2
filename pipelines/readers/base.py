"""The reader contract: a format reader turns one file into Documents, or BadRecords for what it can't read."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from datatrove.data import Document

from gristmill.pipelines.recipe import SourceConfig


@dataclass(frozen=True)
class BadRecord:
    """A record (or a stretch of a file) that could not be read, and why.

    `where` locates it in the file: "line 12", "row 40", "byte 1048576", or "file" for the whole file.
    `excerpt` holds at most a few hundred characters of the raw input, for a person to look at.
    """

    path: str
    where: str
    reason: str
    excerpt: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return the record as a JSON-ready dict."""
        return asdict(self)


class FormatReader(ABC):
    """Reads the files of one native layout. Never loads a whole file in memory; never raises on bad data.

    `iter_file` yields a Document per good record (metadata holds at least `source` and `subset`, and the id
    is stable: from the data where it has one, else derived from path and line/row) and a BadRecord per bad
    one, in file order, and carries on after a bad record wherever the format allows it.
    """

    def __init__(self, source: SourceConfig) -> None:
        self.source = source

    @abstractmethod
    def iter_file(self, path: str) -> Iterator[Document | BadRecord]:
        """Yield the file's records in order: Documents for good ones, BadRecords for bad ones."""
