"""Generic JSON-lines and parquet sources: the `fields` mapping says where the text, id and subset are."""

from __future__ import annotations

from typing import Any

from datatrove.data import Document

from gristmill.pipelines.readers.base import (
    FormatReader,
    JsonLinesReader,
    ParquetRowsReader,
    checked_text,
    dig,
    native_id,
)
from gristmill.pipelines.recipe import FieldMapping

DEFAULT_SUBSET = "default"


def _document(reader: FormatReader, record: dict[str, Any], relative: str, position: int) -> Document:
    """Return the Document of a record under the field mapping; other top-level fields go to `meta`."""
    fields = reader.source.fields or FieldMapping()
    text = checked_text(dig(record, fields.text), fields.text)
    native = native_id(dig(record, fields.id), fields.id) if fields.id else None
    doc_id = f"{reader.source.name}/{native}" if native is not None else reader.derived_id(relative, position)
    subset = dig(record, fields.subset) if fields.subset else None
    text_root = fields.text.split(".", 1)[0]
    meta = {k: v for k, v in record.items() if k != text_root}
    return Document(
        text=text,
        id=doc_id,
        metadata={
            "source": reader.source.name,
            "subset": str(subset) if subset not in (None, "") else DEFAULT_SUBSET,
            "meta": meta,
        },
    )


class GenericJsonlReader(JsonLinesReader):
    """Reads JSON lines (plain, .zst or .gz) with a field mapping (default: `text`, no id, subset "default").

    Ids are `<source>/<id field>` where the mapping names one and the record has it, else derived from the
    path and line; a record without the mapped subset is in subset "default".
    """

    def make_document(self, record: dict[str, Any], relative: str, line: int) -> Document:
        """Return the Document of one line; raise RecordError when the mapped text is missing or unusable."""
        return _document(self, record, relative, line)


class GenericParquetReader(ParquetRowsReader):
    """Reads parquet files with a field mapping; ids and subsets as `GenericJsonlReader`, rows for lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields = self.source.fields or FieldMapping()
        self.required_columns = [fields.text.split(".", 1)[0]]
        self.text_column = fields.text if "." not in fields.text else None

    def make_document(self, row: dict[str, Any], path: str, relative: str, index: int) -> Document:
        """Return the Document of one row; raise RecordError when the mapped text is missing or unusable."""
        return _document(self, row, relative, index)
