"""The Pile: `*.jsonl.zst`, one `{"text", "meta": {"pile_set_name"}}` per line."""

from __future__ import annotations

from typing import Any, ClassVar

from datatrove.data import Document

from gristmill.pipelines.readers.base import JsonLinesReader, checked_text, subset_from_meta


class PileReader(JsonLinesReader):
    """Reads Pile files; the subset is `meta.pile_set_name`.

    The Pile has no ids, so a document's id is `<source>/<path under the glob root>:<line>`.

    Profiles: the Pile's makers cleaned each component in its own way (Gao et al. 2020): its web pages,
    `Pile-CC` (jusText extraction and a classifier) and `OpenWebText2` (pages linked from Reddit), are
    `web`; `Github` is `code`; the curated components (books, papers, Wikipedia, StackExchange, subtitles,
    mathematics, …) are `curated`.
    """

    default_profiles: ClassVar[dict[str, str]] = {
        "Pile-CC": "web",
        "OpenWebText2": "web",
        "Github": "code",
        "*": "curated",
    }
    known_subsets: ClassVar[frozenset[str] | None] = frozenset(
        {
            "Pile-CC",
            "PubMed Central",
            "Books3",
            "OpenWebText2",
            "ArXiv",
            "Github",
            "FreeLaw",
            "StackExchange",
            "USPTO Backgrounds",
            "PubMed Abstracts",
            "Gutenberg (PG-19)",
            "OpenSubtitles",
            "Wikipedia (en)",
            "DM Mathematics",
            "Ubuntu IRC",
            "BookCorpus2",
            "EuroParl",
            "HackerNews",
            "YoutubeSubtitles",
            "PhilPapers",
            "NIH ExPorter",
            "Enron Emails",
        }
    )

    def make_document(self, record: dict[str, Any], relative: str, line: int) -> Document:
        """Return the Document of one line; raise RecordError when the text or the subset is missing."""
        text = checked_text(record.get("text"))
        subset, meta = subset_from_meta(record, "pile_set_name")
        return Document(
            text=text,
            id=self.derived_id(relative, line),
            metadata={"source": self.source.name, "subset": subset, "meta": meta},
        )
