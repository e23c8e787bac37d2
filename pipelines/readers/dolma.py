"""Dolma: `*.json.gz`, one `{"id", "text", "source", "added", "created", "metadata"}` per line."""

from __future__ import annotations

from typing import Any, ClassVar

from datatrove.data import Document

from gristmill.pipelines.readers.base import JsonLinesReader, RecordError, checked_text, native_id


class DolmaReader(JsonLinesReader):
    """Reads Dolma files; the subset is the record's `source` (e.g. `c4`, `wiki`, `gutenberg`).

    The id is `<source>/<dolma source>/<dolma id>`. Dolma ids are not unique (the same id can appear in two
    files), so nothing downstream may rely on ids being unique; a record without an id (missing, null or "")
    gets a derived one, an integer id is written in decimal, and an id of any other type (`true`, `1.5`, a
    list) is quarantined (`native_id`).

    Profiles (Soldaini et al. 2024): Dolma's web subsets (`common-crawl`, `cc_*`, `c4`, `falcon-*`) went
    through Gopher and C4 rules, which `web` runs again; its code (`stack`, `starcoder`, `algebraic-stack`)
    through StarCoder-style rules, `code`; everything else (`wiki`, `gutenberg`, `books`, `pes2o`, `arxiv`,
    `stackexchange`, `open-web-math`, `reddit`, `megawika`, `tulu_flan`, …) is `curated`.
    """

    default_profiles: ClassVar[dict[str, str]] = {
        "common-crawl": "web",
        "cc_*": "web",
        "c4": "web",
        "falcon*": "web",
        "stack": "code",
        "starcoder": "code",
        "algebraic-stack": "code",
        "*": "curated",
    }

    def make_document(self, record: dict[str, Any], relative: str, line: int) -> Document:
        """Return the Document of one line; raise RecordError when the text or the `source` is missing."""
        text = checked_text(record.get("text"))
        subset = record.get("source")
        if not isinstance(subset, str) or not subset:
            raise RecordError("missing `source` (the Dolma subset)")
        native = native_id(record.get("id"))
        doc_id = (
            f"{self.source.name}/{subset}/{native}" if native is not None else self.derived_id(relative, line)
        )
        metadata = {"source": self.source.name, "subset": subset}
        for key in ("added", "created"):
            if record.get(key) is not None:
                metadata[key] = record[key]
        if record.get("metadata"):
            metadata["meta"] = record["metadata"]
        return Document(text=text, id=doc_id, metadata=metadata)
