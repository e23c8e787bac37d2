"""Synthesis of a scale corpus for bench/scale_bench.py: N bytes of files in the four native layouts, written
from Markov models of real text, with junk and exact and near duplicates planted at known rates.

Seed text is what every machine has (`gristmill.sample.keep_corpus`): Python's reference topics, docstrings
and Debian's docs for prose; standard-library modules and C headers for code. Prose comes from an order-2
word-level Markov chain (paragraph breaks are a token of their own), code from an order-1 line-level chain
per language; both are sampled for thousands of chains at once with numpy, and the streams are cut into
documents of lognormal lengths per subset. Junk of the kinds the web and code filters target is a known share
of the web and code subsets. Duplicates are drawn from a pool generated batch by batch from the seed alone,
so both files of a pair (often of different sources) make the same texts without talking to each other: an
exact copy is the same text, a near copy has about 1.7% of its words replaced (word 5-gram Jaccard ≈ 0.85).

Files are `file_mb` compressed (the last file of a layout may be smaller): the same at every corpus size, so
a build's work units, and with them the memory of a task, do not change with N. Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

GROUND_TRUTH = "GROUND_TRUTH.json"
TOKENIZER_DIR = "tokenizer"
PARAGRAPH = "\n\n"
EXACT_RATE = 0.03  # share of documents that are an exact copy of another
NEAR_RATE = 0.03  # share of documents that are a near copy of another
NEAR_EDIT_RATE = 0.017  # words replaced in a near copy: each breaks ≤5 shingles, so Jaccard ≈ 0.85
CROSS_SOURCE = 0.5  # share of planted copies that land in another source than their original
POOL_BATCH = 64  # duplicate pairs generated together (the unit a file regenerates for its planted copies)
CHUNK_TEXT_BYTES = 24 * 2**20  # text generated and compressed at a time: bounds the generator's memory
CHAINS = 2048  # Markov chains sampled side by side
SHINGLE = 5  # the recipe's dedupe shingle size, for the planted Jaccard figures
SEED_LETTER_WORDS = 0.85  # seed paragraphs kept: at least this share of their words hold a letter
SOURCE_SHARES = {"slimpajama": 0.40, "starcoderdata": 0.25, "dolma": 0.20, "pile": 0.15}


@dataclass(frozen=True)
class Subset:
    """One subset of a source: its share of the source's text, kind, length distribution and junk share.

    Lengths are lognormal, in words (prose) or lines (code): `median` and `sigma` of the log, capped at `cap`.
    """

    name: str
    share: float
    kind: str  # "prose" or "code"
    median: float
    sigma: float
    junk: float = 0.0  # share of documents made to fail the subset's filters
    cap: int = 150_000


PROSE_WEB = dict(kind="prose", median=350, sigma=0.9, junk=0.10)
SUBSETS: dict[str, tuple[Subset, ...]] = {
    "slimpajama": (
        Subset("RedPajamaCommonCrawl", 0.55, "prose", 450, 0.9),
        Subset("RedPajamaC4", 0.27, "prose", 300, 0.8),
        Subset("RedPajamaWikipedia", 0.05, "prose", 500, 1.0),
        Subset("RedPajamaBook", 0.05, "prose", 30_000, 0.5),
        Subset("RedPajamaArXiv", 0.05, "prose", 6_000, 0.6),
        Subset("RedPajamaStackExchange", 0.03, "prose", 250, 0.9),
    ),
    "starcoderdata": (
        Subset("python", 0.6, "code", 120, 1.0, junk=0.03, cap=8_000),
        Subset("c", 0.4, "code", 150, 1.0, junk=0.03, cap=8_000),
    ),
    "dolma": (
        Subset("common-crawl", 0.60, **PROSE_WEB),
        Subset("c4", 0.15, **PROSE_WEB),
        Subset("stack", 0.10, "code", 120, 1.0, junk=0.03, cap=8_000),
        Subset("wiki", 0.05, "prose", 500, 1.0),
        Subset("gutenberg", 0.05, "prose", 30_000, 0.5),
        Subset("pes2o", 0.05, "prose", 4_000, 0.6),
    ),
    "pile": (
        Subset("Pile-CC", 0.45, **PROSE_WEB),
        Subset("Wikipedia (en)", 0.10, "prose", 500, 1.0),
        Subset("Github", 0.15, "code", 120, 1.0, junk=0.03, cap=8_000),
        Subset("StackExchange", 0.10, "prose", 250, 0.9),
        Subset("ArXiv", 0.10, "prose", 6_000, 0.6),
        Subset("Books3", 0.10, "prose", 30_000, 0.5),
    ),
}
DUP_LENGTH = {"prose": (400, 0.8), "code": (120, 0.8)}  # (median, sigma) of planted pairs' lengths


# --- seed models --------------------------------------------------------------------------------------------


@dataclass
class Chain:
    """A Markov chain of order 1 or 2 over the tokens of a seed stream (read as a cycle).

    It walks over positions of the seed: at position p, whose state (the `order` tokens from p) occurs at
    positions positions[start[s] : start[s] + count[s]] for s = state_of[p], it jumps to one of those at
    random, q, emits the token after that state, seed[q + order], and moves on to q + 1. A uniform pick among
    occurrences is a pick by frequency, and each step is a few gathers (no search), for thousands of walks
    side by side. `vocab` maps tokens to their text; `joiner` goes between tokens.
    """

    vocab: np.ndarray  # object array of str
    seed: np.ndarray  # the seed stream's tokens
    state_of: np.ndarray  # position → state
    positions: np.ndarray  # positions sorted by state
    start: np.ndarray  # state → first index in `positions`
    count: np.ndarray  # state → occurrences
    order: int
    joiner: str

    @classmethod
    def fit(cls, tokens: np.ndarray, vocab: list[str], order: int, joiner: str) -> Chain:
        """Fit the chain of `order` (1 or 2) to one token stream."""
        key = tokens.astype(np.int64)
        if order == 2:
            key = key * len(vocab) + np.roll(tokens, -1)
        _, state_of, count = np.unique(key, return_inverse=True, return_counts=True)
        positions = np.argsort(state_of, kind="stable")
        start = np.concatenate(([0], np.cumsum(count)[:-1]))
        return cls(np.array(vocab, dtype=object), tokens, state_of, positions, start, count, order, joiner)

    def walk(self, n: int, rng: np.random.Generator, chains: int = CHAINS) -> np.ndarray:
        """Return `n` tokens: `chains` walks from random positions, side by side, concatenated."""
        chains = max(1, min(chains, n // 64 or 1))
        steps = math.ceil(n / chains)
        size = len(self.seed)
        out = np.empty((chains, steps), dtype=self.seed.dtype)
        at = rng.integers(0, size, size=chains)
        for t in range(steps):
            s = self.state_of[at]
            q = self.positions[self.start[s] + (rng.random(chains) * self.count[s]).astype(np.int64)]
            out[:, t] = self.seed[(q + self.order) % size]
            at = (q + 1) % size
        return out.reshape(-1)[:n]

    def text(self, tokens: np.ndarray) -> str:
        """Return the text of a token sequence."""
        joined = self.joiner.join(self.vocab[tokens].tolist())
        if self.joiner == " ":
            joined = joined.replace(" \n\n ", PARAGRAPH).replace("\n\n ", PARAGRAPH).replace(" \n\n", "")
        return joined.strip()


@dataclass
class Models:
    """The seed chains: prose, and code per language (`python`, `c`)."""

    prose: Chain
    code: dict[str, Chain]
    seed_bytes: dict[str, int] = field(default_factory=dict)

    def chain(self, kind: str, language: str = "python") -> Chain:
        """Return the prose chain, or the code chain of `language`."""
        return self.prose if kind == "prose" else self.code[language]


def _encode(items: list[str]) -> tuple[np.ndarray, list[str]]:
    """Return (token ids, vocabulary) of a list of token strings, the vocabulary sorted (deterministic)."""
    vocab, ids = np.unique(np.array(items, dtype=object), return_inverse=True)
    return ids.astype(np.int32), [str(w) for w in vocab]


def letter_word_shares(paragraphs: list[str]) -> np.ndarray:
    """Return, per paragraph, the share of its words (as the Gopher rules cut them) that hold a letter."""
    from gristmill.pipelines.filters.text_stats import word_classes
    from gristmill.pipelines.filters.text_stats import words as split_words

    tokens = [split_words(p) for p in paragraphs]
    _, _, has_letter = word_classes([t for ts in tokens for t in ts])
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.add.reduceat(has_letter.astype(np.int64), starts) / np.maximum(counts, 1)


def fit_models(min_letter_words: float = SEED_LETTER_WORDS) -> Models:
    """Fit the prose and code chains to the machine's real text (`keep_corpus`): prose from the paragraphs
    whose words mostly hold letters (the seed's symbol-heavy changelogs and option lists would otherwise
    make most web text fail Gopher's alpha_words rule), code from every hand-written module and header."""
    from gristmill.sample import keep_corpus

    prose_docs = keep_corpus.prose_documents(max_debian=1000)
    paragraphs = [p.strip() for doc in prose_docs for p in re.split(r"\n\s*\n", doc) if len(p.split()) >= 5]
    shares = letter_word_shares(paragraphs)
    paragraphs = [p for p, share in zip(paragraphs, shares.tolist()) if share >= min_letter_words]
    words: list[str] = []
    for paragraph in paragraphs:
        words += paragraph.split()
        words.append(PARAGRAPH)
    prose = Chain.fit(*_encode(words), order=2, joiner=" ")
    code_files = keep_corpus.code_documents()
    code: dict[str, Chain] = {}
    seed_bytes = {"prose": sum(len(p.encode()) for p in paragraphs)}
    for language, suffix in (("python", ".py"), ("c", ".h")):
        lines = [
            line.rstrip() for name, text in code_files if name.endswith(suffix) for line in text.split("\n")
        ]
        code[language] = Chain.fit(*_encode(lines), order=1, joiner="\n")
        seed_bytes[language] = sum(len(line) + 1 for line in lines)
    return Models(prose, code, seed_bytes)


# --- documents ----------------------------------------------------------------------------------------------


def lengths(rng: np.random.Generator, median: float, sigma: float, cap: int, n: int) -> np.ndarray:
    """Return `n` lognormal lengths (≥ 8) of the given median and log-sigma, capped at `cap`."""
    return np.clip(rng.lognormal(math.log(median), sigma, size=n), 8, cap).astype(np.int64)


def cut(chain: Chain, sizes: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Return one document per size (in tokens), cut from one walk of the chain."""
    stream = chain.walk(int(sizes.sum()), rng)
    ends = np.cumsum(sizes)
    return [chain.text(stream[e - s : e]) for s, e in zip(sizes.tolist(), ends.tolist())]


def edit_words(text: str, rate: float, rng: np.random.Generator, vocabulary: np.ndarray) -> str:
    """Return `text` with a `rate` share of its words (at least one) replaced by random vocabulary words,
    separators kept (so code keeps its lines)."""
    parts = re.split(r"(\w+)", text)
    places = np.arange(1, len(parts), 2)  # re.split with a group: words at odd indices
    if not len(places):
        return text + " x"
    chosen = rng.choice(places, size=max(1, round(len(places) * rate)), replace=False)
    for place, word in zip(chosen.tolist(), rng.choice(vocabulary, size=len(chosen)).tolist()):
        parts[place] = re.sub(r"\W+", "", word) or "x"
    return "".join(parts)


_WORD = re.compile(r"\w+")


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """Return the distinct 64-bit hashes of the word n-grams of `text` (lowercase `\\w+` words, as
    `gristmill.sample.planted.shingle_set` cuts them; one shingle of all words when there are fewer)."""
    words = _WORD.findall(text.lower())
    if not words:
        return np.zeros(0, np.uint64)
    # hash() is salted per process, which is fine: only texts hashed in one process are compared
    ids = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64) | np.uint64(1)
    if len(ids) < n:
        ids = np.concatenate([ids, np.zeros(n - len(ids), np.uint64)])  # padding keeps one whole shingle
    grams = np.zeros(len(ids) - n + 1, np.uint64)
    for k in range(n):  # polynomial hash of the n word ids (wrapping arithmetic)
        grams = grams * np.uint64(1_000_003) + ids[k : len(ids) - n + 1 + k]
    return np.unique(grams)


def shingle_jaccard(a: str, b: str, n: int) -> float:
    """Return the Jaccard similarity of two texts' word n-gram sets: `planted.jaccard`, vectorised (exact up
    to 64-bit hash collisions)."""
    ha, hb = shingle_hashes(a, n), shingle_hashes(b, n)
    union = len(np.union1d(ha, hb))
    return len(np.intersect1d(ha, hb, assume_unique=True)) / union if union else 1.0


_MENU = ["Home", "About us", "Products", "Contact", "Login", "Sign up", "Blog", "Careers", "Help", "Cart (0)"]
_NOTICES = [
    "Please enable JavaScript to view the comments powered by Disqus.",
    "This site uses cookies. By continuing to browse you agree to our use of cookies.",
    "Read our privacy policy and terms of use before you continue.",
]
WEB_JUNK = ("very-short", "repeated-lines", "word-salad", "navigation-menu", "notices", "bullets", "hashtags")
CODE_JUNK = ("auto-generated", "data-file", "minified")


def junk(kind: str, models: Models, rng: np.random.Generator) -> str:
    """Return one document of junk `kind`, made fresh from the prose chain and the random generator."""
    prose = models.prose

    def sentence(n: int) -> str:
        return prose.text(prose.walk(n, rng, chains=1)).replace(PARAGRAPH, " ")

    def salad(n: int) -> str:
        return " ".join(rng.choice(prose.vocab, size=n).tolist()).replace(PARAGRAPH, " ")

    if kind == "very-short":
        return sentence(int(rng.integers(3, 20)))
    if kind == "repeated-lines":
        return "\n".join([sentence(12)] * int(rng.integers(15, 40)) + [sentence(60)])
    if kind == "word-salad":
        return salad(int(rng.integers(100, 400)))
    if kind == "navigation-menu":
        return "\n".join(rng.permutation(_MENU).tolist() * int(rng.integers(3, 8)))
    if kind == "notices":
        return "\n".join([*_NOTICES, sentence(20), *_NOTICES])
    if kind == "bullets":
        return "\n".join(f"• {salad(int(rng.integers(2, 6)))}" for _ in range(int(rng.integers(20, 60))))
    if kind == "hashtags":
        tags = " ".join(f"#{w}" for w in rng.choice(prose.vocab, size=int(rng.integers(80, 200))).tolist())
        return sentence(30) + " " + re.sub(r"#\W+", "#x", tags)
    if kind == "auto-generated":
        head = ["# -*- coding: utf-8 -*-", "# Generated by the protocol buffer compiler.  DO NOT EDIT!", ""]
        body = [
            f"_FIELD_{i} = _descriptor.FieldDescriptor(name='f{i}', index={i}, number={int(n)}, type=1)"
            for i, n in enumerate(rng.integers(1, 1000, size=int(rng.integers(40, 120))))
        ]
        return "\n".join(head + body) + "\n"
    if kind == "data-file":
        values = rng.random((int(rng.integers(300, 900)), 2)).round(6).tolist()
        return json.dumps([{"id": i, "x": x, "y": y} for i, (x, y) in enumerate(values)], indent=1)
    if kind == "minified":
        parts = [f"function f{i}(a,b){{return a*{int(n)}+b}}" for i, n in enumerate(rng.integers(2, 99, 300))]
        return "!function(){'use strict';" + ";".join(parts) + "}();"
    raise ValueError(f"no junk of kind {kind!r}")


# --- the plan -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """One file to write: its layout, path under out/<source>/, compressed size target and text budget."""

    source: str
    path: str
    index: int  # the file's number in its source (and language, for Starcoderdata)
    target_bytes: int  # compressed
    text_bytes: int  # uncompressed text to generate for it
    language: str | None = None  # Starcoderdata: the one subset of the file


@dataclass(frozen=True)
class PoolBatch:
    """`size` duplicate pairs made together: their originals go into one file, their copies into another."""

    batch: int
    kind: str  # "exact" or "near"
    text_kind: str  # "prose" or "code"
    language: str
    size: int
    original: tuple[str, str, str]  # (source, path, subset)
    copy: tuple[str, str, str]


def _rng(seed: int, *keys: object) -> np.random.Generator:
    """Return a generator seeded by `seed` and `keys` (stable across processes and runs)."""
    digest = hashlib.sha256(json.dumps([seed, *map(str, keys)]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _subsets(spec: FileSpec) -> tuple[Subset, ...]:
    """Return the subsets a file holds (a Starcoderdata file holds its language only)."""
    subsets = SUBSETS[spec.source]
    return tuple(s for s in subsets if s.name == spec.language) if spec.language else subsets


def mean_doc_bytes(subset: Subset, kind_bytes: dict[str, float]) -> float:
    """Return the expected bytes of a document of `subset` (lognormal mean, capped roughly)."""
    mean_len = min(subset.median * math.exp(subset.sigma**2 / 2), subset.cap)
    return mean_len * kind_bytes[subset.kind]


def plan_files(size: int, file_mb: float, ratios: dict[str, float]) -> list[FileSpec]:
    """Split `size` compressed bytes into files: each source (each language of Starcoderdata) its share, in
    files of `file_mb` MB compressed (smaller where the smallest share of the corpus is under one file), the
    last file of each taking the remainder. `ratios`: text bytes per compressed byte, per source."""
    units = [(s, None, SOURCE_SHARES[s]) for s in SOURCE_SHARES if s != "starcoderdata"]
    units += [
        ("starcoderdata", sub.name, SOURCE_SHARES["starcoderdata"] * sub.share)
        for sub in SUBSETS["starcoderdata"]
    ]
    file_bytes = int(min(file_mb * 1e6, size * min(share for _, _, share in units)))
    files = []
    for source, language, share in units:
        total = int(size * share)
        count = max(1, math.ceil(total / file_bytes - 0.05))  # a 5% remainder joins the last file
        for i in range(count):
            target = file_bytes if i < count - 1 else total - file_bytes * (count - 1)
            path = _file_path(source, language, i, count)
            files.append(FileSpec(source, path, i, target, int(target * ratios[source]), language))
    return files


def _file_path(source: str, language: str | None, i: int, count: int) -> str:
    """Return the file's path under out/<source>/, as its native layout names files."""
    if source == "slimpajama":
        return f"train/chunk{1 + i // 10}/example_train_{i}.jsonl.zst"
    if source == "pile":
        return f"train/{i:02d}.jsonl.zst"
    if source == "dolma":
        return f"v1_7-{i:04d}.json.gz"
    return f"{language}/train-{i:05d}-of-{count:05d}.parquet"


def plan_pool(files: list[FileSpec], kind_bytes: dict[str, float], seed: int) -> list[PoolBatch]:
    """Return the duplicate batches: EXACT_RATE and NEAR_RATE of the expected document count, each batch's
    pairs from one file into one other (CROSS_SOURCE of them into another source), by text kind."""
    rng = _rng(seed, "pool")
    slots: dict[str, list[tuple[FileSpec, Subset, float]]] = {"prose": [], "code": []}
    expected_docs = {"prose": 0.0, "code": 0.0}
    for spec in files:
        subsets = _subsets(spec)
        total_share = sum(s.share for s in subsets)
        for sub in subsets:
            text = spec.text_bytes * sub.share / total_share
            slots[sub.kind].append((spec, sub, text))
            expected_docs[sub.kind] += text / mean_doc_bytes(sub, kind_bytes)
    batches = []
    for kind, rate in (("exact", EXACT_RATE), ("near", NEAR_RATE)):
        for text_kind in ("prose", "code"):
            pairs = round(expected_docs[text_kind] * rate)
            candidates = slots[text_kind]
            weights = np.array([t for _, _, t in candidates])
            weights = weights / weights.sum()
            for start in range(0, pairs, POOL_BATCH):
                a = candidates[rng.choice(len(candidates), p=weights)]
                cross = rng.random() < CROSS_SOURCE
                fits = [
                    i
                    for i, c in enumerate(candidates)
                    if (c[0].source != a[0].source) == cross
                    and (text_kind == "prose" or _language(c) == _language(a))
                ] or [
                    i
                    for i, c in enumerate(candidates)
                    if text_kind == "prose" or _language(c) == _language(a)
                ]
                p = weights[fits] / weights[fits].sum()
                b = candidates[fits[rng.choice(len(fits), p=p)]]
                batches.append(
                    PoolBatch(
                        len(batches),
                        kind,
                        text_kind,
                        _language(a),
                        min(POOL_BATCH, pairs - start),
                        (a[0].source, a[0].path, a[1].name),
                        (b[0].source, b[0].path, b[1].name),
                    )
                )
    return batches


def _language(slot: tuple[FileSpec, Subset, float]) -> str:
    """The code language of a slot: Starcoderdata's own, else Python (Pile Github, Dolma stack)."""
    return "c" if slot[1].name == "c" else "python"


def pool_texts(
    batch: PoolBatch, models: Models, seed: int, copies: bool = True
) -> tuple[list[str], list[str]]:
    """Return (originals, copies) of a pool batch, the same for every process that asks (copies empty when
    not asked for: making near copies costs)."""
    rng = _rng(seed, "pool-batch", batch.batch)
    chain = models.chain(batch.text_kind, batch.language)
    median, sigma = DUP_LENGTH[batch.text_kind]
    originals = cut(chain, lengths(rng, median, sigma, 20_000, batch.size), rng)
    if batch.kind == "exact" or not copies:
        return originals, list(originals) if copies else []
    vocabulary = models.prose.vocab
    return originals, [edit_words(t, NEAR_EDIT_RATE, rng, vocabulary) for t in originals]


# --- writing one file ---------------------------------------------------------------------------------------


@dataclass
class Planted:
    """A document placed on purpose: a duplicate pair's member, or junk."""

    tag: str  # "exact", "near" or "junk:<kind>"
    batch: int = -1
    item: int = -1
    role: str = ""  # "original" or "copy"
    similarity: float | None = None


@dataclass
class FileResult:
    """What writing one file made: sizes, document counts per subset, and where each planted document is."""

    source: str
    path: str
    bytes: int
    text_bytes: int
    documents: dict[str, int]
    junk: dict[str, dict[str, int]]
    planted: list[dict[str, Any]]
    seconds: float


class Writer:
    """Streams one file's records to disk in its layout, chunk by chunk; knows each record's reader id."""

    def __init__(self, spec: FileSpec, out: Path, seed: int) -> None:
        self.spec, self.seed = spec, seed
        self.path = out / spec.source / spec.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "wb")  # noqa: SIM115  (closed by close())
        self.position = 0
        self.parquet: pq.ParquetWriter | None = None
        if spec.source in ("slimpajama", "pile"):
            self.compressor = zstandard.ZstdCompressor(level=3).compressobj()
        elif spec.source == "dolma":
            self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip wrapper, mtime 0
        else:
            self.compressor = None

    def write(self, docs: list[tuple[str, str]]) -> list[str]:
        """Write (text, subset) records; return each one's id as gristmill's reader gives it."""
        if self.compressor is None:
            return self._parquet(docs)
        lines, ids = [], []
        for text, subset in docs:
            self.position += 1
            if self.spec.source == "dolma":
                native = f"{self.spec.index:04d}{self.position:09d}"
                record = {
                    "id": native,
                    "text": text,
                    "source": subset,
                    "added": "2024-01-01T00:00:00.000Z",
                    "created": "2020-01-01T00:00:00.000Z",
                    "metadata": {"length": len(text)},
                }
                ids.append(f"dolma/{subset}/{native}")
            else:
                key = "redpajama_set_name" if self.spec.source == "slimpajama" else "pile_set_name"
                record = {"text": text, "meta": {key: subset}}
                ids.append(f"{self.spec.source}/{self.spec.path}:{self.position}")
            lines.append(json.dumps(record, ensure_ascii=False))
        self.file.write(self.compressor.compress(("\n".join(lines) + "\n").encode()))
        return ids

    def _parquet(self, docs: list[tuple[str, str]]) -> list[str]:
        rng = _rng(self.seed, "rows", self.spec.path, self.position)
        language = self.spec.language or "python"
        natives = [f"{self.spec.index:04d}{self.position + i:09d}" for i in range(len(docs))]
        stars = rng.integers(0, 5000, size=len(docs))
        repos = [f"user{n % 997}/project{n % 89}" for n in rng.integers(0, 10**6, size=len(docs)).tolist()]
        paths = [
            f"src/file{self.position + i}.{'py' if language == 'python' else 'h'}" for i in range(len(docs))
        ]
        headers = rng.random(len(docs)) < 0.3
        content = [
            f"<reponame>{repo}<filename>{path}<gh_stars>10-100\n{text}" if head else text
            for (text, _), repo, path, head in zip(docs, repos, paths, headers.tolist())
        ]
        table = pa.table(
            {
                "max_stars_repo_path": pa.array(paths, pa.string()),
                "max_stars_repo_name": pa.array(repos, pa.string()),
                "max_stars_count": pa.array(stars, pa.int64()),
                "id": pa.array(natives, pa.string()),
                "content": pa.array(content, pa.string()),
            }
        )
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.file, table.schema, compression="snappy")
        self.parquet.write_table(table, row_group_size=1024)
        self.position += len(docs)
        return [f"starcoderdata/{language}/{n}" for n in natives]

    def close(self) -> int:
        """Finish the file; return its size in bytes."""
        if self.parquet is not None:
            self.parquet.close()
        elif self.compressor is not None:
            self.file.write(self.compressor.flush())
        self.file.close()
        return self.path.stat().st_size


def _unique_docs(
    spec: FileSpec, text_bytes: int, models: Models, rng: np.random.Generator, kind_bytes
) -> list[tuple[str, str, Planted | None]]:
    """Return about `text_bytes` of fresh documents for `spec`'s subsets (by share), junk included."""
    subsets = _subsets(spec)
    total_share = sum(s.share for s in subsets)
    docs: list[tuple[str, str, Planted | None]] = []
    for sub in subsets:
        budget = text_bytes * sub.share / total_share
        n = max(1, round(budget / mean_doc_bytes(sub, kind_bytes)))
        chain = models.chain(sub.kind, "c" if sub.name == "c" else "python")
        junk_n = int(rng.binomial(n, sub.junk)) if sub.junk else 0
        for text in cut(chain, lengths(rng, sub.median, sub.sigma, sub.cap, n - junk_n), rng):
            docs.append((text, sub.name, None))
        kinds = WEB_JUNK if sub.kind == "prose" else CODE_JUNK
        for k in rng.choice(kinds, size=junk_n).tolist():
            docs.append((junk(k, models, rng), sub.name, Planted(f"junk:{k}")))
    return docs


def write_file(
    spec: FileSpec, batches: list[PoolBatch], out: Path, seed: int, kind_bytes: dict[str, float]
) -> FileResult:
    """Write one file: its unique documents and junk, and its members of the pool's duplicate pairs, shuffled
    together chunk by chunk; return what it holds."""
    started = time.perf_counter()
    models = _MODELS
    rng = _rng(seed, "file", spec.source, spec.path)
    planted: list[tuple[str, str, Planted]] = []
    for batch in batches:
        for role in ("original", "copy"):
            source, path, subset = getattr(batch, role)
            if (source, path) != (spec.source, spec.path):
                continue
            originals, copies = pool_texts(batch, models, seed, copies=role == "copy")
            texts = originals if role == "original" else copies
            for item, text in enumerate(texts):
                similarity = (
                    shingle_jaccard(originals[item], text, SHINGLE)
                    if role == "copy" and batch.kind == "near"
                    else None
                )
                planted.append((text, subset, Planted(batch.kind, batch.batch, item, role, similarity)))
    planted_bytes = sum(len(t.encode()) for t, _, _ in planted)
    chunks = max(1, math.ceil(spec.text_bytes / CHUNK_TEXT_BYTES))
    where = rng.integers(0, chunks, size=len(planted))
    writer = Writer(spec, out, seed)
    documents: dict[str, int] = {}
    junk_counts: dict[str, dict[str, int]] = {}
    records: list[dict[str, Any]] = []
    text_total = 0
    for chunk in range(chunks):
        budget = max(0, spec.text_bytes - planted_bytes) / chunks
        docs = _unique_docs(spec, int(budget), models, rng, kind_bytes)
        docs += [(t, s, p) for (t, s, p), w in zip(planted, where.tolist()) if w == chunk]
        docs = [docs[i] for i in rng.permutation(len(docs))]
        ids = writer.write([(t, s) for t, s, _ in docs])
        for (text, subset, mark), doc_id in zip(docs, ids):
            documents[subset] = documents.get(subset, 0) + 1
            text_total += len(text.encode())
            if mark is None:
                continue
            if mark.tag.startswith("junk:"):
                counts = junk_counts.setdefault(subset, {})
                counts[mark.tag[5:]] = counts.get(mark.tag[5:], 0) + 1
            else:
                records.append(
                    {**asdict(mark), "id": doc_id, "subset": subset, "file": f"{spec.source}/{spec.path}"}
                )
    size = writer.close()
    return FileResult(
        spec.source,
        spec.path,
        size,
        text_total,
        documents,
        junk_counts,
        records,
        time.perf_counter() - started,
    )


_MODELS: Models | None = None  # fitted once by `calibrate`; forked workers inherit them


def _write_file_job(args: tuple) -> FileResult:
    return write_file(*args)


# --- calibration and the whole corpus -----------------------------------------------------------------------


def calibrate(
    models: Models, seed: int, sample_bytes: int = 3_000_000
) -> tuple[dict[str, float], dict[str, float]]:
    """Return (text bytes per token of each kind, text bytes per compressed byte of each source), measured
    on a small sample written by the same code."""
    global _MODELS
    _MODELS = models
    rng = _rng(seed, "calibrate")
    kind_bytes = {}
    for kind, chain in (("prose", models.prose), ("code", models.code["python"])):
        tokens = chain.walk(200_000, rng)
        kind_bytes[kind] = len(chain.text(tokens).encode()) / len(tokens)
    ratios = {}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for source in SOURCE_SHARES:
            language = "python" if source == "starcoderdata" else None
            path = _file_path(source, language, 0, 1)
            spec = FileSpec(source, path, 0, 0, sample_bytes, language)
            result = write_file(spec, [], Path(tmp), seed, kind_bytes)
            ratios[source] = result.text_bytes / result.bytes
    return kind_bytes, ratios


def parse_size(text: str) -> int:
    """Return the bytes of a size such as `200MB`, `1GB`, `1.5GB` or `4000000`."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)B?\s*", text.upper())
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 200MB, 1GB)")
    return int(float(match.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[match.group(2)])


def generate(
    size: int,
    out: Path,
    seed: int = 0,
    file_mb: float = 100.0,
    processes: int = 2,
    tokenizer: bool = True,
    models: Models | None = None,
) -> dict[str, Any]:
    """Write a corpus of about `size` compressed bytes under `out` (one folder per source), its tokenizer and
    GROUND_TRUTH.json; return the ground truth. `models`: already fitted seed models (else fitted here)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    models = models or fit_models()
    timings["fit_models_s"] = time.perf_counter() - started
    t = time.perf_counter()
    kind_bytes, ratios = calibrate(models, seed)
    timings["calibrate_s"] = time.perf_counter() - t
    files = plan_files(size, file_mb, ratios)
    batches = plan_pool(files, kind_bytes, seed)
    t = time.perf_counter()
    jobs = [(spec, batches, out, seed, kind_bytes) for spec in sorted(files, key=lambda f: -f.text_bytes)]
    if processes > 1:
        with get_context("fork").Pool(processes) as pool:  # forked: the workers share the fitted models
            results = pool.map(_write_file_job, jobs, chunksize=1)
    else:
        results = [write_file(*job) for job in jobs]
    timings["write_files_s"] = time.perf_counter() - t
    truth = ground_truth(files, batches, results, size, file_mb, seed, kind_bytes, ratios, models)
    if tokenizer:
        t = time.perf_counter()
        truth["tokenizer"] = train_tokenizer(out, results, seed)
        timings["tokenizer_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started
    truth["timings"] = timings
    text = sum(r.text_bytes for r in results)
    truth["generation_mb_per_s"] = {
        "compressed": round(truth["bytes"] / 1e6 / timings["write_files_s"], 2),
        "text": round(text / 1e6 / timings["write_files_s"], 2),
        "processes": processes,
    }
    (out / GROUND_TRUTH).write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth


def ground_truth(
    files, batches, results: list[FileResult], size, file_mb, seed, kind_bytes, ratios, models
) -> dict[str, Any]:
    """Return the ground truth: files, bytes and documents per source, the planted pairs (ids, Jaccard),
    junk counts per subset and kind, and the realised planted rates."""
    members: dict[tuple[int, int], dict[str, dict]] = {}
    for r in results:
        for rec in r.planted:
            members.setdefault((rec["batch"], rec["item"]), {})[rec["role"]] = rec
    pairs = {"exact": [], "near": []}
    for (batch, _item), roles in sorted(members.items()):
        kind = batches[batch].kind
        pairs[kind].append(
            {
                "original": roles["original"]["id"],
                "copy": roles["copy"]["id"],
                "original_file": roles["original"]["file"],
                "copy_file": roles["copy"]["file"],
                "cross_source": roles["original"]["file"].split("/")[0]
                != roles["copy"]["file"].split("/")[0],
                "jaccard": None
                if roles["copy"]["similarity"] is None
                else round(roles["copy"]["similarity"], 4),
            }
        )
    sources: dict[str, dict[str, Any]] = {}
    for r in results:
        s = sources.setdefault(
            r.source, {"files": 0, "bytes": 0, "text_bytes": 0, "documents": {}, "junk": {}}
        )
        s["files"] += 1
        s["bytes"] += r.bytes
        s["text_bytes"] += r.text_bytes
        for subset, n in r.documents.items():
            s["documents"][subset] = s["documents"].get(subset, 0) + n
        for subset, kinds in r.junk.items():
            for k, n in kinds.items():
                s["junk"].setdefault(subset, {})[k] = s["junk"].get(subset, {}).get(k, 0) + n
    total_docs = sum(sum(s["documents"].values()) for s in sources.values())
    return {
        "about": "bench/scale_bench.py generate; ids as gristmill's readers give them (sources globbed)",
        "seed": seed,
        "size_requested": size,
        "file_mb": file_mb,
        "bytes": sum(r.bytes for r in results),
        "text_bytes": sum(r.text_bytes for r in results),
        "documents": total_docs,
        "files": sorted(
            [
                {
                    "path": f"{r.source}/{r.path}",
                    "bytes": r.bytes,
                    "text_bytes": r.text_bytes,
                    "documents": sum(r.documents.values()),
                    "seconds": round(r.seconds, 2),
                }
                for r in results
            ],
            key=lambda f: f["path"],
        ),
        "sources": sources,
        "rates": {
            "exact_planned": EXACT_RATE,
            "near_planned": NEAR_RATE,
            "exact": round(len(pairs["exact"]) / total_docs, 5),
            "near": round(len(pairs["near"]) / total_docs, 5),
            "cross_source": round(
                sum(p["cross_source"] for k in pairs for p in pairs[k])
                / max(1, len(pairs["exact"]) + len(pairs["near"])),
                4,
            ),
            "near_jaccard_mean": round(float(np.mean([p["jaccard"] for p in pairs["near"]])), 4)
            if pairs["near"]
            else None,
        },
        "pairs": pairs,
        "seed_text_bytes": models.seed_bytes,
        "calibration": {"bytes_per_token": kind_bytes, "text_per_compressed_byte": ratios},
    }


def _sample_documents(out: Path, results: list[FileResult], limit: int) -> Iterator[tuple[str, str, str]]:
    """Yield (text, source, subset) of the first documents of each file, about `limit` bytes of text in all,
    through gristmill's readers (so the tokenizer trains on what a build reads)."""
    from datatrove.data import Document

    from gristmill.pipelines.readers import reader_for
    from gristmill.pipelines.recipe import SourceConfig

    per_file = limit / max(1, len(results))
    for r in sorted(results, key=lambda r: r.path):
        fmt = {"starcoderdata": "starcoder"}.get(r.source, r.source)
        reader = reader_for(SourceConfig(name=r.source, format=fmt, paths=[str(out / r.source)]))
        taken = 0
        for doc in reader.iter_file(str(out / r.source / r.path)):
            if isinstance(doc, Document):
                taken += len(doc.text)
                yield doc.text, doc.metadata["source"], doc.metadata["subset"]
                if taken >= per_file:
                    break


def train_tokenizer(
    out: Path, results: list[FileResult], seed: int, vocab_size: int = 8192, sample_bytes: int = 12_000_000
) -> dict[str, Any]:
    """Train the corpus's tokenizer (sentencepiece BPE, Llama-2 settings, `vocab_size`) on a sample of its
    files into out/tokenizer/, so that the scale build copies it instead of training; return how."""
    from rich.console import Console

    from gristmill.tokenizer.config import TokenizerTrainConfig
    from gristmill.tokenizer.train import train_tokenizer as train

    config = TokenizerTrainConfig(
        backend="sentencepiece-bpe",
        profile="llama2",
        vocab_size=vocab_size,
        sample_bytes=sample_bytes,
        num_threads=2,
    )
    started = time.perf_counter()
    docs = list(_sample_documents(out, results, sample_bytes * 2))
    train(config, docs, out / TOKENIZER_DIR, seed=seed, console=Console(stderr=True, quiet=True))
    return {
        "backend": config.backend,
        "profile": config.profile,
        "vocab_size": vocab_size,
        "sample_bytes": sample_bytes,
        "seconds": round(time.perf_counter() - started, 1),
    }
