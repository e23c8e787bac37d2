"""The ablation sample (`gristmill sample OUT --kind ablation`): a web-like corpus with a large share of junk
and duplicates, and clean evaluation text kept out of it by construction.

    OUT/corpus/part-<k>.jsonl.zst   {"id", "text"}: clean documents, junk and copies, shuffled
    OUT/eval/clean.jsonl            {"text"}: clean documents of the same kinds, never in the corpus
    OUT/ABLATION.json               documents and bytes of each kind

Clean documents are real prose cut into documents of one to a few dozen paragraphs: the language reference
and the standard library's docstrings (`text.stdlib_sections`) and the README and NEWS files Debian ships
under /usr/share/doc. Only documents that pass the `curated` rule set (what curated text can fail) are used,
so a recipe reading the corpus with the `curated` profile keeps every clean one. The evaluation set is held
out by whole files: Debian files (which no junk is made from) in a seeded order, among those that share
no word 13-gram with any other file (packages of one source often ship the same README), until they hold
`eval_bytes`; they are never cut into corpus documents; an evaluation document that still shares a
13-gram with the corpus is left out, so no candidate can have trained on it.
Junk is what no profile but `none` keeps (`keep_corpus.junk_documents`:
empty and stub texts, binary data decoded as text, a line, paragraph, word or phrase repeated over and
over), about half as many bytes as the clean documents. Duplicates are exact copies of clean corpus
documents (2 to 8 copies each) and near copies (about 10% of the words changed), as many bytes again.

recipes/ablate-clean.yaml builds it with the `curated` profile and dedupe; recipes/ablate-junk.yaml with
the `none` profile and no dedupe, keeping the junk and the copies (ablations/clean-vs-junk.yaml).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from random import Random
from typing import Any

import zstandard

from gristmill.pipelines.config.filters import FiltersConfig
from gristmill.pipelines.filters import make_filters
from gristmill.sample import keep_corpus, text
from gristmill.storage import atomic_write, write_json

SUMMARY_FILE = "ABLATION.json"
_DEBIAN_NAMES = re.compile(r"^(?:README(?:\.md|\.txt)?|NEWS)(?:\.gz)?$")
_PARTS = 4
_ZSTD_LEVEL = 3


def _debian_sections(limit_bytes: int) -> list[str]:
    """Return Debian's README and NEWS files (plain text, decompressed), up to `limit_bytes` in all."""
    root = keep_corpus.DEBIAN_DOCS
    if not root.is_dir():
        return []
    out, total = [], 0
    for path in sorted(p for p in root.rglob("*") if _DEBIAN_NAMES.match(p.name) and p.is_file()):
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            section = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            continue
        if section.strip():
            out.append(section)
            total += len(raw)
        if total >= limit_bytes:
            break
    return out


def clean_documents(sections: list[str], rng: Random) -> list[str]:
    """Return the prose documents cut from `sections` that pass the `curated` rule sets, in a seeded order."""
    rules = make_filters(FiltersConfig(), "curated")
    candidates = text.cut_documents(sections, rng)
    verdicts = [None] * len(candidates)
    for rule_set in rules:
        todo = [i for i, v in enumerate(verdicts) if v is None]
        for i, reason in zip(todo, rule_set.check_batch([candidates[i] for i in todo])):
            verdicts[i] = reason
    kept = list(dict.fromkeys(d for d, v in zip(candidates, verdicts) if v is None))
    rng.shuffle(kept)
    return kept


def _near_copy(doc: str, rng: Random) -> str:
    words = doc.split(" ")
    for i in rng.sample(range(len(words)), max(1, len(words) // 10)):
        words[i] = words[rng.randrange(len(words))]
    return " ".join(words)


def write_ablation_sample(
    out_dir: str, seed: int = 0, debian_bytes: int = 3_000_000, eval_bytes: int = 200_000
) -> dict[str, Any]:
    """Write the ablation sample under `out_dir`; return its summary (what ABLATION.json holds)."""
    from gristmill.ablate.contamination import NgramIndex

    rng = Random(seed)
    debian = _debian_sections(debian_bytes)
    files = NgramIndex(debian, 13)  # packages of one source often ship the same README: hold out loners
    loners = [i for i, d in enumerate(debian) if files.matches(d) == {i}]
    rng.shuffle(loners)
    held: set[int] = set()
    for i in loners:  # whole files, until they hold the evaluation's bytes
        if sum(len(debian[j].encode()) for j in held) >= eval_bytes:
            break
        held.add(i)
    corpus_clean = clean_documents(
        text.stdlib_sections() + [d for i, d in enumerate(debian) if i not in held], rng
    )
    eval_docs: list[str] = []
    for doc in clean_documents([debian[i] for i in sorted(held)], rng):
        if sum(len(d.encode()) for d in eval_docs) >= eval_bytes:
            break
        eval_docs.append(doc)
    clean_bytes = sum(len(d.encode()) for d in corpus_clean)
    junk: list[str] = []
    round_ = 0
    while sum(len(d.encode()) for d in junk) < clean_bytes / 2:
        junk += [d for _, d in keep_corpus.junk_documents(seed=seed * 1000 + round_, per_kind=10)]
        round_ += 1
    exact, near = [], []
    while sum(len(d.encode()) for d in exact + near) < clean_bytes / 2:
        doc = rng.choice(corpus_clean)
        exact += [doc] * rng.randint(1, 7)  # with the original: 2 to 8 copies
        near.append(_near_copy(doc, rng))
    kinds = {"clean": corpus_clean, "junk": junk, "exact copies": exact, "near copies": near}
    corpus = [d for docs in kinds.values() for d in docs]
    rng.shuffle(corpus)
    index = NgramIndex(eval_docs, 13)
    seen = set().union(*(index.matches(d) for d in corpus))
    eval_docs = [d for i, d in enumerate(eval_docs) if i not in seen]

    out = Path(out_dir)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    per_part = -(-len(corpus) // _PARTS)
    for k in range(_PARTS):
        lines = "".join(
            json.dumps({"id": f"doc-{i}", "text": d}, ensure_ascii=False) + "\n"
            for i, d in enumerate(corpus[k * per_part : (k + 1) * per_part], start=k * per_part)
        )
        with atomic_write(str(out / "corpus" / f"part-{k}.jsonl.zst")) as f:
            f.write(zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(lines.encode()))
    with atomic_write(str(out / "eval" / "clean.jsonl"), "w") as f:
        f.writelines(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in eval_docs)
    summary = {
        "out_dir": str(out),
        "seed": seed,
        "corpus": {
            k: {"documents": len(v), "bytes": sum(len(d.encode()) for d in v)} for k, v in kinds.items()
        },
        "eval": {
            "documents": len(eval_docs),
            "bytes": sum(len(d.encode()) for d in eval_docs),
            "left_out_sharing_a_13_gram_with_the_corpus": len(seen),
        },
    }
    write_json(str(out / SUMMARY_FILE), summary)
    return summary
