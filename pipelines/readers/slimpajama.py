"""SlimPajama: `*/chunk*/example_*.jsonl.zst`, one `{"text", "meta": {"redpajama_set_name"}}` per line."""

from __future__ import annotations

from typing import Any, ClassVar

from datatrove.data import Document

from gristmill.pipelines.readers.base import JsonLinesReader, checked_text, subset_from_meta


class SlimPajamaReader(JsonLinesReader):
    """Reads SlimPajama chunks; the subset is `meta.redpajama_set_name` (`meta` may be a JSON string).

    SlimPajama has no ids, so a document's id is `<source>/<path under the glob root>:<line>`.

    Profiles: SlimPajama is RedPajama after its makers' cleaning (CCNet's quality classifier on Common
    Crawl, C4's own rules, short and low-length documents removed, global MinHash dedupe), which TinyLlama
    used as it is: every text subset is `curated`; `RedPajamaGithub` is `code`.
    """

    default_profiles: ClassVar[dict[str, str]] = {
        "RedPajamaGithub": "code",
        "RedPajama*": "curated",
    }
    known_subsets: ClassVar[frozenset[str] | None] = frozenset(
        {
            "RedPajamaCommonCrawl",
            "RedPajamaC4",
            "RedPajamaGithub",
            "RedPajamaBook",
            "RedPajamaArXiv",
            "RedPajamaWikipedia",
            "RedPajamaStackExchange",
        }
    )

    def make_document(self, record: dict[str, Any], relative: str, line: int) -> Document:
        """Return the Document of one line; raise RecordError when the text or the subset is missing."""
        text = checked_text(record.get("text"))
        subset, meta = subset_from_meta(record, "redpajama_set_name")
        return Document(
            text=text,
            id=self.derived_id(relative, line),
            metadata={"source": self.source.name, "subset": subset, "meta": meta},
        )
