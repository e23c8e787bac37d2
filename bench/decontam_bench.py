"""Decontamination: the index of all 23 packaged evaluation sets (build time, size, a task's memory), one-pass
matching per core against datatrove's n-gram decontamination (`NGramsDecontFilter`, handed our items through
its own n-gram hashing) and against our MinHash shingling (the dedupe's signatures) on the same documents in
the same run, recall on real items planted in real documents, and documents removed from the same corpus
without plants.

    python bench/decontam_bench.py [--mb 100] [--baseline-mb 4] [--per-set 200] [--cpu 0]

Text: Debian's documentation under /usr/share/doc (text, Markdown, reStructuredText, gzipped changelogs and
copyright files), the language reference's pages, and the Python sources under /usr/lib/python3*, each file a
document, files over 20 KB cut at line ends into ~10 KB documents. The process pins itself to one CPU and one
thread; speeds are bytes of UTF-8 text per CPU second. Prints a Markdown report (docs/decontamination.md).

datatrove's indexer (`NGramsDecontIndexer`) needs lighteval to be constructed (it loads lighteval's tasks
from the Hugging Face hub), so here its n-gram hashing (`compute_hashes`, datatrove's own code) is called
with our items as the (query, label) pairs it would have made, and its filter runs offline on those hashes.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from gristmill.pipelines.build.engine import quiet_datatrove_logs
from gristmill.pipelines.config.decontam import PACKAGED_BENCHMARKS, DecontamConfig
from gristmill.pipelines.decontam import load_sets
from gristmill.pipelines.decontam.index import DecontamIndex
from gristmill.pipelines.decontam.items import BenchmarkSet
from gristmill.pipelines.decontam.match import Decontaminator
from gristmill.sample.contamination import FORMS, plant_items
from gristmill.sample.text import doc_topics
from gristmill.threads import limit_threads

PROSE_SUFFIXES = {".txt", ".md", ".rst", ".gz", ""}
PLANTED = ["arc_easy", "arc_challenge", "hellaswag", "mmlu", "gsm8k", "humaneval"]
CHUNK = 10_000


def _chunks(text: str) -> list[str]:
    if len(text) <= 2 * CHUNK:
        return [text]
    out, at = [], 0
    while at < len(text):
        end = text.find("\n", at + CHUNK)
        end = len(text) if end < 0 else end + 1
        out.append(text[at:end])
        at = end
    return out


def _read(path: Path) -> str | None:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None


def corpus(megabytes: float) -> tuple[list[str], list[str]]:
    """Return (prose documents, code documents), about `megabytes` MB of UTF-8 in all, half of each."""
    prose = list(doc_topics())
    code: list[str] = []
    budget = megabytes * 1e6 / 2

    def take(paths, out: list[str]) -> None:
        size = sum(len(d.encode()) for d in out)
        for path in paths:
            if size >= budget:
                return
            if path.is_symlink() or not path.is_file():
                continue
            text = _read(path)
            if text is None:
                continue
            for chunk in _chunks(text):
                if len(chunk.split()) >= 20:
                    out.append(chunk)
                    size += len(chunk.encode())

    docs = sorted(p for p in Path("/usr/share/doc").rglob("*") if p.suffix in PROSE_SUFFIXES)
    take(docs, prose)
    roots = sorted(Path("/usr/lib").glob("python3*"))
    take(sorted(p for root in roots for p in root.rglob("*.py")), code)
    return prose, code


def megabytes(docs: list[str]) -> float:
    return sum(len(d.encode()) for d in docs) / 1e6


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def datatrove_speed(sets: list[BenchmarkSet], docs: list[str], n: int) -> tuple[float, list]:
    """MB/s of datatrove's NGramsDecontFilter over `docs`, its index made by its own hashing from our items;
    and the documents it flags (their metadata name the n-gram and the task)."""
    from datatrove.data import Document
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    config = NGramsDecontConfig(n_grams=n, find_query_ngrams=True, find_overlap_ngrams=True)
    hasher = SimpleNamespace(
        tokenizer=load_word_tokenizer("en"), config=config, hash_func=create_hash_func(config.hash_config)
    )
    with tempfile.TemporaryDirectory() as folder:
        for bench in sets:
            hashes: set[int] = set()
            for item in bench.items:
                label = " ".join(item.choices + item.text) or " ".join(item.prompt)
                hashes.update(NGramsDecontIndexer.compute_hashes(hasher, label, " ".join(item.prompt)))
            np.array(sorted(hashes), dtype=np.uint64).tofile(Path(folder) / f"{bench.name}.index.hashes")
        step = NGramsDecontFilter(folder, config)
        step.load_index_hashes()
        documents = [Document(text=d, id=str(i)) for i, d in enumerate(docs)]
        flagged: list[Document] = []
        seconds = cpu_seconds(
            lambda: flagged.extend(doc for doc in documents if step.filter(doc) is not True)
        )
    return megabytes(docs) / seconds, flagged


def minhash_speed(docs: list[str]) -> float:
    """MB/s of the dedupe's MinHash signatures (5-gram shingles, 112 bins) over `docs`."""
    from gristmill.pipelines.steps.dedupe.minhash import MinHasher

    hasher = MinHasher(5, 14, 8, seed=1)
    return megabytes(docs) / cpu_seconds(lambda: hasher.signatures(docs))


def task_memory(index_dir: str, sample: list[str]) -> tuple[float, float]:
    """(MB of RSS a fresh process gains reading the index, MB once it has matched `sample` through it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\x00".join(sample))
    code = f"""
import resource, sys
from gristmill.pipelines.config.decontam import DecontamConfig
from gristmill.pipelines.decontam.index import DecontamIndex
from gristmill.pipelines.decontam.match import Decontaminator
def rss(): return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 1e6
docs = open({f.name!r}).read().split("\\x00")
before = rss()
index = DecontamIndex.read({index_dir!r})
loaded = rss()
check = Decontaminator(index, DecontamConfig())
for d in docs: check.find(d)
print(loaded - before, rss() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    os.unlink(f.name)
    loaded, matched = map(float, out.stdout.split())
    return loaded, matched


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=100, help="MB of real text to match")
    parser.add_argument("--baseline-mb", type=float, default=4, help="MB of it every method runs on")
    parser.add_argument("--per-set", type=int, default=200, help="items planted per set and form")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to pin to")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    limit_threads(1)
    quiet_datatrove_logs()

    config = DecontamConfig(enabled=True)
    started = time.process_time()
    sets = load_sets(config)
    loaded = time.process_time() - started
    index = DecontamIndex.build(sets, config)
    built = time.process_time() - started - loaded
    build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    checker = Decontaminator(index, config)
    prose, code = corpus(args.mb)
    docs = prose + code
    total = megabytes(docs)

    flagged: list[int] = []
    seconds = cpu_seconds(lambda: flagged.extend(i for i, d in enumerate(docs) if checker.find(d)))
    ours = total / seconds
    rng = np.random.default_rng(0)
    order = rng.permutation(len(docs))
    sample, size = [], 0.0
    for i in order:
        if size >= args.baseline_mb:
            break
        sample.append(docs[i])
        size += len(docs[i].encode()) / 1e6
    ours_sample = megabytes(sample) / cpu_seconds(lambda: [checker.find(d) for d in sample])
    ours_flagged = sum(1 for d in sample if checker.find(d))
    theirs, theirs_flagged = datatrove_speed(sets, sample, config.n)
    minhash = minhash_speed(sample)

    with tempfile.TemporaryDirectory() as folder:
        index.write(folder)
        mapped, matched = task_memory(folder, sample[:200])

    planted_sets = [s for s in sets if s.name in PLANTED]
    plants, short = plant_items(planted_sets, args.per_set, prose, code, seed=1)
    missed = [
        p
        for p in plants
        if not any((f.benchmark, f.item_id) == (p.benchmark, p.item_id) for f in checker.find(p.text))
    ]

    print(f"## Decontamination bench ({platform.processor() or platform.machine()}, 1 CPU, 1 thread)\n")
    print(
        f"Index of all {len(PACKAGED_BENCHMARKS)} packaged sets ({len(index.item_ids):,} items): read "
        f"{loaded:.1f} s, built {built:.1f} s (CPU); {index.nbytes / 2**20:.1f} MiB of arrays; the build's "
        f"peak RSS {build_rss:,.0f} MB. A task mapping it: +{mapped:.0f} MB RSS read, +{matched:.0f} MB "
        f"after matching {len(sample[:200])} documents (file-backed pages, shared by the machine's tasks).\n"
    )
    print(f"Corpus: {len(docs):,} documents, {total:.1f} MB ({len(prose):,} prose, {len(code):,} code).\n")
    print("| method, same documents | MB/s per core | ratio |\n|---|---:|---:|")
    print(f"| gristmill decontamination ({len(sets)} sets) | {ours_sample:.1f} | 1.00 |")
    print(
        f"| datatrove NGramsDecontFilter (same items, {config.n}-grams) | {theirs:.2f} | "
        f"{theirs / ours_sample:.3f} |"
    )
    print(f"| gristmill MinHash signatures (dedupe) | {minhash:.1f} | {minhash / ours_sample:.2f} |")
    print(
        f"\nOn the whole corpus: {ours:.1f} MB/s per core. Same documents: {megabytes(sample):.1f} MB, "
        f"{len(sample)} documents; datatrove flags {len(theirs_flagged)} of them (gristmill {ours_flagged}):"
    )
    for doc in theirs_flagged[:8]:
        print(f"- {doc.metadata['contaminated_task']}: {doc.metadata['contaminated_ngram']!r}")
    print(
        f"\nDocuments with a match in the corpus without plants: {len(flagged)} of {len(docs):,} "
        f"({len(flagged) / len(docs):.3%})."
    )
    for i in flagged[:10]:
        found = checker.find(docs[i])
        print(f"- {found[0].benchmark}/{found[0].item_id}: {found[0].matched_text(docs[i])[:120]!r}")
    print(
        f"\nPlanted: {len(plants):,} plants of {args.per_set} items per set in {len(FORMS)} forms; "
        f"recall {1 - len(missed) / len(plants):.2%} ({len(missed)} missed). Questions too short to plant "
        f"alone (< {config.min_words} words): {short}.\n"
    )
    print("| set | form | planted | found |\n|---|---|---:|---:|")
    for bench in PLANTED:
        for form in FORMS:
            mine = [p for p in plants if (p.benchmark, p.form) == (bench, form)]
            hit = len(mine) - sum(1 for p in missed if (p.benchmark, p.form) == (bench, form))
            print(f"| {bench} | {form} | {len(mine)} | {hit} |")
    if missed:
        print("\nMissed:")
        for p in missed:
            print(f"- {p.benchmark}/{p.item_id} ({p.form})")


if __name__ == "__main__":
    main()
