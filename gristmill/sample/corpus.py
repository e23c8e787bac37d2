"""The sample corpus (`gristmill sample`): a few MB in the four native layouts, cut from the standard library.

Starcoderdata gets the standard library's own source (Python, plus its shell and PowerShell scripts) and
README-like Markdown; SlimPajama, Dolma and the Pile get real prose: the paragraphs of the language reference
shipped in `pydoc_data.topics`, of module docstrings and of comment blocks that read as running text (code,
grammar and symbol-heavy paragraphs are left out, so most documents pass the default quality filters as real
web text does). Planted on purpose and listed in PLANTED.json: exact duplicates (within a source and across
sources), near-duplicates across sources (a copy with about 1% of its words changed: Jaccard ≈ 0.9 on word
5-gram shingles), low-quality documents of the kinds the filters target, long documents (20–60K characters)
for long-context stages, and Dolma records that share an id (as real Dolma has). Every planted duplicate, long
document and shared id is chosen among documents that pass the default filters of their subset's profile (as
recipes/demo.yaml reads them, by the readers' default profiles: Starcoderdata, Pile `Github` and Dolma `stack`
as code, SlimPajama and the curated subsets as curated text, Common Crawl subsets as web text), so the demo
build shows the dedupe and the curriculum at work rather than the filters.

The same seed gives byte-identical files on the same Python version (the material is that version's standard
library): fixed compression levels, gzip mtime 0, fixed parquet settings, no clocks.
"""

from __future__ import annotations

import gzip
import inspect
import io
import json
import os
import re
import sysconfig
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from gristmill.pipelines.config.filters import FiltersConfig
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.filters.text_stats import word_classes, words
from gristmill.sample.planted import jaccard
from gristmill.sample.text import LOREM, python_modules
from gristmill.storage import atomic_write, write_json

SOURCES = ("slimpajama", "starcoderdata", "dolma", "pile")
_DRAFTS = 8  # prose drafts tried for a document that must pass the filters before giving up
PLANTED_FILE = "PLANTED.json"
_ZSTD_LEVEL = 3  # the zstd command's default, as the corpora were written
_EXCLUDED_DIRS = {
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "encodings",
    "pydoc_data",
    "site-packages",
    "ensurepip",
    "__pycache__",
    "lib2to3",
    "turtledemo",
    "lib-dynload",
}
_OTHER_CODE = {
    "shell": [
        "venv/scripts/common/activate",
        "venv/scripts/posix/activate.fish",
        "venv/scripts/posix/activate.csh",
    ],
    "powershell": ["venv/scripts/common/Activate.ps1"],
}
_WORD = re.compile(r"\w+")
_DOCSTRING = re.compile(r'"""(.*?)"""', re.S)
_NOT_COMMENT = re.compile(r"^(?![ \t]*#(?!!)).*$", re.M)  # any line but a whole-line comment (not `#!`)
_COMMENT_MARK = re.compile(r"^[ \t]*#[ \t]?", re.M)
# Gopher's alpha_words rule wants 80% of a document's words (punctuation tokens included) to hold a letter:
# a document made of paragraphs that each clear it clears it too.
_MIN_LETTER_WORDS = 0.8
_LETTER_OR_SPACE = re.compile(r"[^\W\d_]|\s")
_NOT_PROSE = ("{", "}", "#", "...", "…", ">>>", "lorem ipsum", "javascript")
_MARKDOWN_WIDTH = 79


@dataclass
class _Doc:
    """One document to write: where it goes and, once written, its line or row and its reader's id."""

    source: str
    file: str  # path under out_dir/<source>
    subset: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    position: int = 0
    id: str = ""

    def ref(self) -> dict[str, Any]:
        """Return how PLANTED.json points at this document."""
        where = "row" if self.source == "starcoderdata" else "line"
        return {
            "id": self.id,
            "source": self.source,
            "subset": self.subset,
            "file": f"{self.source}/{self.file}",
            where: self.position,
        }


class _Material:
    """The standard library's code and prose, handed out without repeats so only planted copies repeat."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        root = Path(sysconfig.get_paths()["stdlib"])
        modules = python_modules(root, frozenset(_EXCLUDED_DIRS))
        self.code = [(name, text) for name, text in modules if _usable_code(text)]
        rng.shuffle(self.code)
        self.other_code = {
            lang: [(p, (root / p).read_text("utf-8")) for p in paths if (root / p).is_file()]
            for lang, paths in _OTHER_CODE.items()
        }
        self.paragraphs = _prose_paragraphs(modules, rng)
        self.vocabulary = sorted(
            {
                w
                for _, p in self.paragraphs[:400]
                for w in _WORD.findall(p.lower())
                if w.isalpha() and len(w) > 2
            }
        )

    def take_code(self, min_chars: int = 0, max_chars: int = 60_000) -> tuple[str, str]:
        """Return (stdlib path, source) of an unused module of the given size."""
        for i, (_, text) in enumerate(self.code):
            if min_chars <= len(text) <= max_chars:
                return self.code.pop(i)
        raise ValueError(f"no unused standard-library module of {min_chars}-{max_chars} characters left")

    def take_prose(self, chars: int) -> str:
        """Return unused prose paragraphs joined by blank lines: `chars` characters or more, or all left."""
        return "\n\n".join(paragraph for _, paragraph in self._take(chars))

    def take_markdown(self, chars: int) -> str:
        """Return unused prose as a README-like Markdown file: a heading per section, lines wrapped at 79."""
        lines: list[str] = []
        section = None
        for title, paragraph in self._take(chars):
            if title != section:
                lines += [f"{'#' if section is None else '##'} {title}", ""]
                section = title
            lines += [textwrap.fill(paragraph, _MARKDOWN_WIDTH), ""]
        return "\n".join(lines)

    def _take(self, chars: int) -> list[tuple[str, str]]:
        """Return unused (section title, paragraph) pairs of `chars` characters or more, or all left."""
        taken: list[tuple[str, str]] = []
        total = 0
        while self.paragraphs and total < chars:
            taken.append(self.paragraphs.pop())
            total += len(taken[-1][1]) + 2
        if not taken:
            raise ValueError("the standard library's prose is used up")
        return taken


class _Corpus:
    """The documents planned so far, and the record of what was planted among them."""

    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        self.material = _Material(self.rng)
        self.docs: list[_Doc] = []
        self.exact: list[tuple[str, list[_Doc]]] = []
        self.near: list[tuple[_Doc, _Doc]] = []
        self.junk: list[tuple[str, _Doc]] = []
        self.shared_ids: list[list[_Doc]] = []
        config = FiltersConfig()
        self.filters = {profile: make_filters(config, profile) for profile in config.profiles}
        self._verdicts: dict[tuple[str, str], str | None] = {}

    def verdict(self, text: str, source: str, subset: str) -> str | None:
        """Return the first reason the default filters of the subset's profile give `text` (None: passes)."""
        profile = demo_profile(source, subset)
        if (profile, text) not in self._verdicts:
            reasons = (rules.check_batch([text])[0] for rules in self.filters[profile])
            self._verdicts[profile, text] = next((r for r in reasons if r is not None), None)
        return self._verdicts[profile, text]

    def add(self, source: str, file: str, subset: str, text: str, **fields: Any) -> _Doc:
        """Plan one document and return it."""
        doc = _Doc(source, file, subset, text, fields)
        self.docs.append(doc)
        return doc

    def prose(self, source: str, file: str, subset: str, lengths: tuple[int, int], count: int) -> list[_Doc]:
        """Plan `count` prose documents of a length drawn from `lengths` (characters)."""
        return [
            self.add(source, file, subset, self.material.take_prose(self.rng.randint(*lengths)))
            for _ in range(count)
        ]

    def passing_prose(self, source: str, file: str, subset: str, lengths: tuple[int, int]) -> _Doc:
        """Plan one prose document that passes `source`'s default filters; raise ValueError if none does."""
        for _ in range(_DRAFTS):
            text = self.material.take_prose(self.rng.randint(*lengths))
            if self.verdict(text, source, subset) is None:
                return self.add(source, file, subset, text)
        raise ValueError(f"{_DRAFTS} drafts of {source}/{subset} prose all fail the default filters")

    def markdown(
        self, source: str, file: str, subset: str, lengths: tuple[int, int], count: int
    ) -> list[_Doc]:
        """Plan `count` README-like Markdown files of a length drawn from `lengths` (characters)."""
        return [
            self.add(
                source,
                file,
                subset,
                self.material.take_markdown(self.rng.randint(*lengths)),
                repo_path=self.rng.choice(["README.md", "docs/index.md", "docs/guide.md"]),
            )
            for _ in range(count)
        ]

    def code(
        self, source: str, file: str, subset: str, count: int, min_chars: int = 300, max_chars: int = 20_000
    ) -> list[_Doc]:
        """Plan `count` documents of standard-library Python source."""
        docs = []
        for _ in range(count):
            name, text = self.material.take_code(min_chars, max_chars)
            docs.append(self.add(source, file, subset, text, stdlib_path=name))
        return docs

    def copy(self, doc: _Doc, source: str, file: str, subset: str, kind: str) -> _Doc:
        """Plan an exact copy of `doc` elsewhere and record the pair."""
        fields = {k: v for k, v in doc.fields.items() if k != "header"}
        twin = self.add(source, file, subset, doc.text, **fields)
        self.exact.append((kind, [doc, twin]))
        return twin

    def near_copy(self, doc: _Doc, edited: str, source: str, file: str, subset: str) -> _Doc:
        """Plan `edited`, a lightly edited copy of `doc`, elsewhere and record the pair."""
        twin = self.add(source, file, subset, edited)
        self.near.append((doc, twin))
        return twin

    def planted(self, doc: _Doc) -> bool:
        """Return whether `doc` is already one of a planted duplicate group or pair."""
        return any(doc in docs for _, docs in self.exact) or any(doc in pair for pair in self.near)

    def plant_junk(self, kind: str, source: str, file: str, subset: str, text: str, **fields: Any) -> _Doc:
        """Plan a low-quality document and record its kind."""
        doc = self.add(source, file, subset, text, **fields)
        self.junk.append((kind, doc))
        return doc


def write_sample(out_dir: str, seed: int = 0) -> dict[str, Any]:
    """Write the sample corpus under `out_dir` (one folder per source, plus PLANTED.json); return a summary.

    The summary holds the files written, records and bytes per source, records per subset and the number of
    planted documents of each kind.
    """
    corpus = _Corpus(seed)
    _plan_starcoder(corpus)
    _plan_slimpajama(corpus)
    _plan_pile(corpus)
    _plan_dolma(corpus)
    _plant(corpus)
    written = _write(corpus, Path(out_dir))
    planted = _planted(corpus, seed)
    write_json(os.path.join(out_dir, PLANTED_FILE), planted)
    records: dict[str, Counter] = {s: Counter() for s in SOURCES}
    for doc in corpus.docs:
        records[doc.source][doc.subset] += 1
    return {
        "out_dir": out_dir,
        "seed": seed,
        "files": {s: sorted(f for f in written if f.startswith(s + "/")) for s in SOURCES},
        "bytes": {s: sum(n for f, n in written.items() if f.startswith(s + "/")) for s in SOURCES},
        "records": {s: dict(sorted(c.items())) for s, c in records.items()},
        "planted": {k: len(v) for k, v in planted.items() if isinstance(v, list)},
    }


# --- what goes where ---------------------------------------------------------------------------------------


def _plan_starcoder(c: _Corpus) -> None:
    for i in range(2):
        file = f"python/train-0000{i}-of-00002.parquet"
        c.code("starcoderdata", file, "python", 120, max_chars=30_000)
        c.code("starcoderdata", file, "python", 3, min_chars=20_000, max_chars=60_000)
    for lang, scripts in c.material.other_code.items():
        for path, text in scripts:
            c.add("starcoderdata", f"{lang}/train-00000-of-00001.parquet", lang, text, stdlib_path=path)
    c.markdown("starcoderdata", "markdown/train-00000-of-00001.parquet", "markdown", (1500, 6000), 12)
    for doc in c.docs:
        doc.fields["header"] = c.rng.random() < 0.4  # some Starcoderdata contents start with `<reponame>…`


def _plan_slimpajama(c: _Corpus) -> None:
    for chunk in (1, 2):
        for part in range(2):
            file = f"train/chunk{chunk}/example_train_{part}.jsonl.zst"
            c.prose("slimpajama", file, "RedPajamaWikipedia", (1500, 6000), 12)
            c.prose("slimpajama", file, "RedPajamaCommonCrawl", (400, 3000), 14)
            c.prose("slimpajama", file, "RedPajamaC4", (300, 1500), 14)
            c.prose("slimpajama", file, "RedPajamaStackExchange", (800, 2500), 5)
            c.code("slimpajama", file, "RedPajamaGithub", 4)
    c.passing_prose("slimpajama", "train/chunk1/example_train_0.jsonl.zst", "RedPajamaBook", (22_000, 40_000))
    c.passing_prose("slimpajama", "train/chunk2/example_train_1.jsonl.zst", "RedPajamaBook", (40_000, 58_000))
    for doc in c.docs:
        if doc.source == "slimpajama":
            doc.fields["meta_as_string"] = c.rng.random() < 0.3  # as in some SlimPajama releases


def _plan_pile(c: _Corpus) -> None:
    for part in ("00", "01"):
        file = f"train/{part}.jsonl.zst"
        c.prose("pile", file, "Pile-CC", (400, 3000), 18)
        c.prose("pile", file, "Wikipedia (en)", (1500, 6000), 10)
        c.prose("pile", file, "StackExchange", (800, 2500), 7)
        c.code("pile", file, "Github", 5)  # judged by the text filters there, as the Pile is a text source
        c.markdown("pile", file, "Github", (1500, 5000), 2)
    c.passing_prose("pile", "train/01.jsonl.zst", "BookCorpus2", (25_000, 45_000))


def _plan_dolma(c: _Corpus) -> None:
    plan = {"wiki": ((1500, 6000), 18), "c4": ((300, 1500), 24), "common-crawl": ((400, 3000), 24)}
    for subset, (lengths, count) in plan.items():
        c.prose("dolma", f"{subset}-0000.json.gz", subset, lengths, count)
    c.passing_prose("dolma", "gutenberg-0000.json.gz", "gutenberg", (20_000, 35_000))
    c.code("dolma", "stack-0000.json.gz", "stack", 8)
    c.markdown("dolma", "stack-0000.json.gz", "stack", (1500, 5000), 3)


def _plant(c: _Corpus) -> None:
    def pick(
        source: str,
        subset: str,
        into: tuple[str, str] | None = None,
        min_chars: int = 0,
        max_chars: int = 60_000,
    ) -> Iterator[_Doc]:
        """Yield, in random order, the unplanted documents of `subset` of a size in range that pass the
        default filters of their subset and of `into` (the source and subset where a copy goes)."""
        choices = [
            d
            for d in c.docs
            if d.source == source
            and d.subset == subset
            and min_chars <= len(d.text) <= max_chars
            and not c.planted(d)
        ]
        c.rng.shuffle(choices)
        for doc in choices:
            copy_to = into or (source, subset)
            if c.verdict(doc.text, source, subset) is None and c.verdict(doc.text, *copy_to) is None:
                yield doc
        raise ValueError(f"no unplanted {source}/{subset} document passes the filters of {into or source}")

    def copy(source: str, subset: str, into: str, file: str, into_subset: str, kind: str) -> _Doc:
        return c.copy(next(pick(source, subset, (into, into_subset))), into, file, into_subset, kind)

    def near_copy(source: str, subset: str, into: str, file: str, into_subset: str, min_chars: int) -> None:
        for doc in pick(source, subset, (into, into_subset), min_chars):
            edited = _perturb(doc.text, c.rng, c.material.vocabulary)
            if c.verdict(edited, into, into_subset) is None:
                c.near_copy(doc, edited, into, file, into_subset)
                return

    sp, sc = "slimpajama", "starcoderdata"
    chunk1, chunk2 = "train/chunk1/example_train_0.jsonl.zst", "train/chunk2/example_train_1.jsonl.zst"
    copy(sp, "RedPajamaWikipedia", sp, chunk2, "RedPajamaWikipedia", "within-source")
    copy("pile", "Pile-CC", "pile", "train/01.jsonl.zst", "Pile-CC", "within-source")
    python = next(pick(sc, "python", max_chars=20_000))
    fork = c.copy(python, sc, "python/train-00001-of-00002.parquet", "python", "within-source")
    fork.fields["fork"] = True
    copy(sp, "RedPajamaCommonCrawl", "pile", "train/00.jsonl.zst", "Pile-CC", "cross-source")
    copy(sp, "RedPajamaWikipedia", "dolma", "wiki-0000.json.gz", "wiki", "cross-source")
    # A README copied from Starcoderdata into the Pile's `Github` (read as code there, as in Starcoderdata):
    # the code copy that the dedupe settles by priority.
    copy(sc, "markdown", "pile", "train/00.jsonl.zst", "Github", "cross-source")

    near_copy(sc, "markdown", "pile", "train/01.jsonl.zst", "Github", 0)
    near_copy(sc, "markdown", "dolma", "stack-0000.json.gz", "stack", 0)
    near_copy(sp, "RedPajamaWikipedia", "dolma", "wiki-0000.json.gz", "wiki", 2500)
    near_copy("pile", "Wikipedia (en)", sp, chunk1, "RedPajamaC4", 2500)
    near_copy(sp, "RedPajamaCommonCrawl", sp, chunk2, "RedPajamaCommonCrawl", 2000)

    words = c.material.vocabulary
    c.plant_junk("very-short", sp, chunk1, "RedPajamaCommonCrawl", "Click here to continue.")
    # word salad is what web rules catch; SlimPajama's subsets are curated text, so it goes into Dolma's web
    c.plant_junk(
        "word-salad",
        "dolma",
        "common-crawl-0000.json.gz",
        "common-crawl",
        " ".join(c.rng.choices(words, k=400)),
    )
    c.plant_junk(
        "lorem-ipsum", "dolma", "common-crawl-0000.json.gz", "common-crawl", "\n\n".join([LOREM] * 4)
    )
    c.plant_junk(
        "repeated-lines",
        "pile",
        "train/00.jsonl.zst",
        "Pile-CC",
        "\n".join(["Buy cheap watches online at the best price!"] * 60),
    )
    c.plant_junk("javascript-notice", "pile", "train/01.jsonl.zst", "Pile-CC", _javascript_page(c))
    c.plant_junk(
        "navigation-menu",
        "dolma",
        "c4-0000.json.gz",
        "c4",
        "\n".join(["Home", "About us", "Products", "Contact", "Login", "Register", "Cart (0)"] * 3),
    )
    c.plant_junk(
        "auto-generated",
        "starcoderdata",
        "python/train-00000-of-00002.parquet",
        "python",
        _generated_code(c.rng),
        header=False,
    )
    c.plant_junk(
        "data-file",
        "starcoderdata",
        "json/train-00000-of-00001.parquet",
        "json",
        json.dumps(
            [{"id": i, "x": round(c.rng.random(), 6), "y": round(c.rng.random(), 6)} for i in range(900)],
            indent=1,
        ),
        header=False,
    )
    c.plant_junk(
        "minified",
        "starcoderdata",
        "javascript/train-00000-of-00001.parquet",
        "javascript",
        _minified_javascript(c.rng),
        header=False,
    )

    # Dolma ids are not unique: two different records of one Dolma source share an id.
    c4 = pick("dolma", "c4")
    first, second = next(c4), next(c4)
    first.fields["dolma_id"] = second.fields["dolma_id"] = f"{c.rng.getrandbits(64):016x}"
    c.shared_ids.append([first, second])


def demo_profile(source: str, subset: str) -> str:
    """Return the filter profile recipes/demo.yaml gives a sample subset: its reader's default."""
    from gristmill.pipelines.filters.profiles import match_profile, resolved_profiles

    fmt, kind = ("starcoder", "code") if source == "starcoderdata" else (source, "text")
    return match_profile(resolved_profiles(fmt, kind, {}), subset) or "web"


def _javascript_page(c: _Corpus) -> str:
    return "\n".join(
        [
            "Please enable JavaScript to view the comments powered by Disqus.",
            c.material.take_prose(300),
            "This site uses cookies. By continuing to browse the site you are agreeing to our use of "
            "cookies.",
            "You must enable JavaScript in your browser to use this page.",
            "Read our privacy policy and terms of use.",
        ]
    )


def _generated_code(rng: Random) -> str:
    lines = [
        "# -*- coding: utf-8 -*-",
        "# Generated by the protocol buffer compiler.  DO NOT EDIT!",
        "# source: telemetry.proto",
        "",
        "from google.protobuf import descriptor as _descriptor",
        "",
    ]
    for i in range(60):
        lines.append(
            f"_FIELD_{i} = _descriptor.FieldDescriptor(name='f{i}', index={i}, number={i + 1}, "
            f"type={rng.randint(1, 18)}, label=1, has_default_value=False)"
        )
    return "\n".join(lines) + "\n"


def _minified_javascript(rng: Random) -> str:
    names = [f"{a}{b}" for a in "abcdefghij" for b in "xyz"]
    parts = [
        f"function {rng.choice(names)}({rng.choice(names)},{rng.choice(names)}){{return "
        f"{rng.choice(names)}*{rng.randint(2, 99)}+{rng.choice(names)}}}"
        for _ in range(200)
    ]
    return "!function(){'use strict';" + ";".join(parts) + "}();"


# --- material -----------------------------------------------------------------------------------------------


def _usable_code(text: str) -> bool:
    """Ordinary hand-written code: so that the only generated or unusual files are the planted ones."""
    head = text[:600].lower()
    return (
        300 <= len(text) <= 60_000
        and "\x00" not in text
        and "generated" not in head
        and max(map(len, text.splitlines()), default=0) <= 200
    )


def _prose_paragraphs(modules: list[tuple[str, str]], rng: Random) -> list[tuple[str, str]]:
    """Return (section title, paragraph) for the prose paragraphs of the reference topics, docstrings and
    comment blocks, each paragraph once, shuffled by section."""
    import pydoc_data.topics

    sections = sorted(pydoc_data.topics.topics.items())
    for path, text in modules:
        title = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        sections.append((title, "\n\n".join(inspect.cleandoc(d) for d in _DOCSTRING.findall(text))))
        sections.append((title, _comment_blocks(text)))
    rng.shuffle(sections)
    seen: set[str] = set()
    candidates = []
    for title, section in sections:
        for block in re.split(r"\n\s*\n", section):
            if block[:1].isspace():
                continue  # indented: code, grammar or a literal block
            paragraph = " ".join(block.split())
            if paragraph not in seen and _reads_as_prose(paragraph):
                seen.add(paragraph)
                candidates.append((title, paragraph))
    shares = _letter_word_shares([paragraph for _, paragraph in candidates])
    paragraphs = [c for c, share in zip(candidates, shares) if share >= _MIN_LETTER_WORDS]
    paragraphs.reverse()  # _take pops from the end: hand them out in section order
    return paragraphs


def _comment_blocks(code: str) -> str:
    """Return the runs of whole-line comments in `code`, without their `#`, separated by blank lines."""
    return _COMMENT_MARK.sub("", _NOT_COMMENT.sub("", code))


def _reads_as_prose(paragraph: str) -> bool:
    """Return whether a paragraph reads as running text: sentences of words, few symbols, no code."""
    if len(paragraph.split()) < 8 or not paragraph.endswith((".", "!", "?")):
        return False
    lowered = paragraph.lower()
    if paragraph.startswith(("*", "-", "|")) or any(marker in lowered for marker in _NOT_PROSE):
        return False
    return len(_LETTER_OR_SPACE.sub("", paragraph)) / len(paragraph) < 0.15


def _letter_word_shares(paragraphs: list[str]) -> np.ndarray:
    """Return, per non-empty paragraph, the share of its words (as the Gopher rules cut them) with letters."""
    tokens = [words(p) for p in paragraphs]
    if not tokens:
        return np.zeros(0)
    _, _, has_letter = word_classes([t for ts in tokens for t in ts])
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.add.reduceat(has_letter.astype(np.int64), starts) / counts


def _perturb(text: str, rng: Random, vocabulary: list[str], low: float = 0.86, high: float = 0.93) -> str:
    """Return `text` with a few random words replaced, so its word 5-gram Jaccard with `text` is in range.

    The count starts at ~1.1% of the words (each change breaks up to five 5-grams) and is tuned up or down.
    """
    tokens = re.split(r"(\W+)", text)
    words = [i for i, t in enumerate(tokens) if t and t[0].isalnum()]
    count = max(1, round(len(words) * 0.011))
    edited = text
    for _ in range(12):
        chosen = set(rng.sample(words, min(count, len(words))))
        edited = "".join(rng.choice(vocabulary) if i in chosen else t for i, t in enumerate(tokens))
        similarity = jaccard(text, edited, 5)
        if similarity > high:
            count += max(1, count // 4)
        elif similarity < low:
            count = max(1, count - max(1, count // 4))
        else:
            break
    return edited


# --- writing ------------------------------------------------------------------------------------------------


def _write(c: _Corpus, out: Path) -> dict[str, int]:
    """Write every planned document in its layout; set each one's position and id; return {file: bytes}."""
    by_file: dict[tuple[str, str], list[_Doc]] = {}
    for doc in c.docs:
        by_file.setdefault((doc.source, doc.file), []).append(doc)
    written = {}
    for (source, file), docs in sorted(by_file.items()):
        c.rng.shuffle(docs)  # planted documents land among the others
        data = _ENCODERS[source](docs, c.rng)
        with atomic_write(str(out / source / file), "wb") as f:
            f.write(data)
        written[f"{source}/{file}"] = len(data)
    return written


def _slimpajama(docs: list[_Doc], rng: Random) -> bytes:
    lines = []
    for line, doc in enumerate(docs, 1):
        meta: Any = {"redpajama_set_name": doc.subset}
        if doc.fields.get("meta_as_string"):
            meta = json.dumps(meta)
        doc.position, doc.id = line, f"slimpajama/{doc.file}:{line}"
        lines.append(json.dumps({"text": doc.text, "meta": meta}, ensure_ascii=False))
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress("\n".join(lines).encode() + b"\n")


def _pile(docs: list[_Doc], rng: Random) -> bytes:
    lines = []
    for line, doc in enumerate(docs, 1):
        doc.position, doc.id = line, f"pile/{doc.file}:{line}"
        record = {"text": doc.text, "meta": {"pile_set_name": doc.subset}}
        lines.append(json.dumps(record, ensure_ascii=False))
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress("\n".join(lines).encode() + b"\n")


def _dolma(docs: list[_Doc], rng: Random) -> bytes:
    lines = []
    for line, doc in enumerate(docs, 1):
        dolma_id = doc.fields.setdefault("dolma_id", f"{rng.getrandbits(64):016x}")
        doc.position, doc.id = line, f"dolma/{doc.subset}/{dolma_id}"
        record = {
            "id": dolma_id,
            "text": doc.text,
            "source": doc.subset,
            "added": f"2023-08-{rng.randint(10, 28)}T00:00:00.000Z",
            "created": f"20{rng.randint(10, 22)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T00:00:00Z",
            "metadata": {"length": len(doc.text)},
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return gzip.compress("\n".join(lines).encode() + b"\n", compresslevel=6, mtime=0)


def _starcoder(docs: list[_Doc], rng: Random) -> bytes:
    names = ("max_stars_repo_path", "max_stars_repo_name", "max_stars_count", "id", "content")
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for row, doc in enumerate(docs):
        language = doc.file.split("/", 1)[0]
        repo = "python/cpython" if "stdlib_path" in doc.fields else f"user{rng.randint(1, 999)}/project"
        if doc.fields.get("fork"):
            repo = f"fork{rng.randint(1, 99)}/cpython"
        path = (
            f"Lib/{doc.fields['stdlib_path']}"
            if "stdlib_path" in doc.fields
            else doc.fields.get("repo_path", f"src/file{row}")
        )
        stars = rng.randint(0, 60_000)
        native = f"{rng.getrandbits(48)}"
        header = (
            f"<reponame>{repo}<filename>{path}<gh_stars>{_stars_bucket(stars)}\n"
            if doc.fields.get("header")
            else ""
        )
        doc.position, doc.id = row, f"starcoderdata/{language}/{native}"
        for key, value in (
            ("max_stars_repo_path", path),
            ("max_stars_repo_name", repo),
            ("max_stars_count", stars),
            ("id", native),
            ("content", header + doc.text),
        ):
            columns[key].append(value)
    table = pa.table(
        columns,
        schema=pa.schema(
            [
                ("max_stars_repo_path", pa.string()),
                ("max_stars_repo_name", pa.string()),
                ("max_stars_count", pa.int64()),
                ("id", pa.string()),
                ("content", pa.string()),
            ]
        ),
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=64, compression="snappy")
    return buffer.getvalue()


def _stars_bucket(stars: int) -> str:
    for low, high in ((0, 1), (1, 10), (10, 100), (100, 1000)):
        if stars < high:
            return f"{low}-{high}"
    return "1000+"


_ENCODERS = {"slimpajama": _slimpajama, "pile": _pile, "dolma": _dolma, "starcoderdata": _starcoder}


def _planted(c: _Corpus, seed: int) -> dict[str, Any]:
    return {
        "about": (
            "Documents planted in the sample corpus. Ids are those the readers give when each source "
            "is named after its folder and globbed from it (as recipes/demo.yaml does); `file` and "
            "`line`/`row` locate each one regardless (lines count from 1, rows from 0)."
        ),
        "seed": seed,
        "exact_duplicates": [{"kind": kind, "copies": [d.ref() for d in docs]} for kind, docs in c.exact],
        "near_duplicates": [
            {"jaccard_word_5grams": round(jaccard(a.text, b.text, 5), 3), "copies": [a.ref(), b.ref()]}
            for a, b in c.near
        ],
        "low_quality": [{"kind": kind, **doc.ref()} for kind, doc in c.junk],
        "long_documents": [{**d.ref(), "chars": len(d.text)} for d in c.docs if len(d.text) >= 20_000],
        "shared_dolma_ids": [{"copies": [d.ref() for d in docs]} for docs in c.shared_ids],
    }
