"""The Pile: `*.jsonl.zst`, one `{"text", "meta": {"pile_set_name"}}` per line."""

from __future__ import annotations

from typing import Any

from datatrove.data import Document

from gristmill.pipelines.readers.base import JsonLinesReader, checked_text, subset_from_meta


class PileReader(JsonLinesReader):
    """Reads Pile files; the subset is `meta.pile_set_name`.

    The Pile has no ids, so a document's id is `<source>/<path under the glob root>:<line>`.
    """

    def make_document(self, record: dict[str, Any], relative: str, line: int) -> Document:
        """Return the Document of one line; raise RecordError when the text or the subset is missing."""
        text = checked_text(record.get("text"))
        subset, meta = subset_from_meta(record, "pile_set_name")
        return Document(text=text, id=self.derived_id(relative, line),
                        metadata={"source": self.source.name, "subset": subset, "meta": meta})
