"""Starcoderdata: parquet files in one folder per language, with `content` and `max_stars_repo_*` columns."""

from __future__ import annotations

import re
from typing import Any

from datatrove.data import Document

from gristmill.pipelines.readers.base import ParquetRowsReader, checked_text

# `<reponame>owner/repo<filename>path/to/f.py<gh_stars>10-100\n`: any of the three tags, in this order, on the
# first line (StarCoder's training format put repository metadata in front of some files).
_VALUE = r"(?:(?!<reponame>|<filename>|<gh_stars>)[^\n])*"
_HEADER = re.compile(rf"(<reponame>{_VALUE})?(<filename>{_VALUE})?(<gh_stars>{_VALUE})?(?:\n|\Z)")
_METADATA_COLUMNS = {
    "max_stars_repo_name": "repo_name",
    "max_stars_repo_path": "repo_path",
    "max_stars_count": "stars",
}


def strip_header(content: str) -> str:
    """Return `content` without a leading `<reponame>…<filename>…<gh_stars>…` line, if it has one."""
    if not content.startswith("<"):
        return content
    match = _HEADER.match(content)
    if match is None or not any(match.groups()):
        return content
    return content[match.end() :]


class StarcoderReader(ParquetRowsReader):
    """Reads Starcoderdata; the subset is the language folder the file is in (`python/train-….parquet`).

    The id is `<source>/<language>/<id column>`, or `<source>/<path under the glob root>:<row>` without one.
    Metadata keeps the repository name, the file's path in it and its star count.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.required_columns = ["content"]
        self.text_column = "content"

    def make_document(self, row: dict[str, Any], path: str, relative: str, index: int) -> Document:
        """Return the Document of one row, header stripped; raise RecordError when `content` is unusable."""
        text = strip_header(checked_text(row.get("content"), "content"))
        language = path.rstrip("/").split("/")[-2] if "/" in path else "default"
        native = row.get("id")
        doc_id = (
            f"{self.source.name}/{language}/{native}"
            if native is not None and native != ""
            else self.derived_id(relative, index)
        )
        metadata: dict[str, Any] = {"source": self.source.name, "subset": language}
        for column, key in _METADATA_COLUMNS.items():
            if row.get(column) is not None:
                metadata[key] = row[column]
        return Document(text=text, id=doc_id, metadata=metadata)
