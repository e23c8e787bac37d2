"""Benchmark: what each filter profile keeps of curated prose, of code and of junk, and how fast it judges.

Documents (`gristmill.sample.keep_corpus`, real text every machine has): curated prose (Python's reference
topics, module docstrings, Debian's README/NEWS/copyright files), hand-written code (standard-library modules
and C headers), plain junk (empty, stubs, binary, extreme repetition), and, apart, the web rules' own junk
(`text.junk_documents`: menus, word salad, notices, near-misses; eight draws).
Each profile runs its rule sets as the build chains them (batches of --batch; a dropped document goes no
further), in this one process on one core (`taskset -c 0`). Speed is MB/s over all the documents, and the
ratio to the baseline, the `web` profile: the chain every subset of a text source ran before profiles.
`web (whitespace alpha_words)` is the web profile with the Gopher paper's word definition for alpha_words.

Run: taskset -c 0 python bench/keep_rates.py [--batch 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from random import Random

from gristmill.pipelines.config.filters import FiltersConfig, GopherQualityConfig
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.filters.text_stats import clear_batch_words
from gristmill.sample import keep_corpus
from gristmill.sample.text import junk_documents as web_junk_documents
from gristmill.sample.text import stdlib_sections

PROFILES = ("web", "code", "curated", "none")


def verdicts(filters: list, texts: list[str], batch: int) -> list[str | None]:
    """Return, per text, None when every filter keeps it, else the first reason (survivors go on)."""
    out: list[str | None] = [None] * len(texts)
    for start in range(0, len(texts), batch):
        alive = list(range(start, min(start + batch, len(texts))))
        for flt in filters:
            for i, reason in zip(alive, flt.check_batch([texts[i] for i in alive])):
                out[i] = reason
            alive = [i for i in alive if out[i] is None]
    clear_batch_words()
    return out


def corpora() -> dict[str, list[str]]:
    """Return the named corpora the profiles are measured on."""
    rng = Random(0)
    sections = stdlib_sections()
    return {
        "prose": keep_corpus.prose_documents(),
        "code": [text for _, text in keep_corpus.code_documents()],
        "junk": [text for _, text in keep_corpus.junk_documents()],
        "web junk": [d for _ in range(8) for d in web_junk_documents(sections, rng)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    docs = corpora()
    total_mb = sum(len(t.encode()) for texts in docs.values() for t in texts) / 1e6
    cpus = len(os.sched_getaffinity(0))
    print(f"Python {platform.python_version()} on {platform.machine()}, CPUs allowed: {cpus}")
    for name, texts in docs.items():
        print(f"  {name}: {len(texts):,} documents, {sum(len(t.encode()) for t in texts) / 1e6:.2f} MB")
    gopher = GopherQualityConfig(alpha_words="whitespace")
    whitespace = FiltersConfig(gopher_quality=gopher)
    chains = {p: make_filters(FiltersConfig(), p) for p in PROFILES}
    chains["web (whitespace alpha_words)"] = make_filters(whitespace, "web")
    rows, reasons, seconds = [], {}, {}
    for label, filters in chains.items():
        start = time.perf_counter()
        results = {name: verdicts(filters, texts, args.batch) for name, texts in docs.items()}
        seconds[label] = time.perf_counter() - start
        rows.append((label, {name: sum(r is None for r in res) / len(res) for name, res in results.items()}))
        reasons[label] = {name: Counter(r for r in res if r) for name, res in results.items()}
    base = total_mb / seconds["web"]
    print(f"\n| profile | {' | '.join(f'{n} kept' for n in docs)} | MB/s | vs web |")
    print("|---|" + "---:|" * (len(docs) + 2))
    for label, rates in rows:
        speed = total_mb / seconds[label]
        cells = " | ".join(f"{rates[n]:.1%}" for n in docs)
        timing = f"{speed:.2f} | {speed / base:.2f}x" if chains[label] else "— | —"  # `none` does no work
        print(f"| {label} | {cells} | {timing} |")
    for label in chains:
        for name in ("prose", "code"):
            top = ", ".join(f"{r} {n}" for r, n in reasons[label][name].most_common(3))
            if top:
                print(f"  {label} drops of {name}: {top}")
    generated = keep_corpus.generated_code()
    kept = sum(r is None for r in verdicts(chains["code"], [t for _, t in generated], args.batch))
    print(f"  generated files left out of `code`: {len(generated)}; the code profile keeps {kept} of them")


if __name__ == "__main__":
    main()
