"""Benchmark: issue 22's hostile documents, one at a time, through every rule set alone, the web and code
profiles' chains, the exact-dedupe key and MinHash signatures; MB/s per core on each document.

Documents: `hostile_corpus.hostile_documents(--scale)` (1.0: runs of 100,000 characters, a 10M-word
document, 50M-character words, every whitespace and code point). One process pinned to one CPU, one thread
(`limit_threads(1)`), CPU time (`time.thread_time`: while a CPU-time alarm is armed, Linux reads the
process's CPU clock in scheduler ticks, and `process_time` then times a short stage as 0 or one tick); each
(document, stage) runs under an alarm of --limit CPU seconds and is reported as stalled past it, so that code
with a quadratic case (the pre-issue code) finishes.
Around each document the process's resident memory is measured (`VmRSS`, after a collection and
`malloc_trim`): what it holds after the document's stages over what it held before them is what the
document left behind.

Run: python bench/hostile_bench.py [--scale 1.0] [--limit 60] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import signal
import time
from collections.abc import Callable

from hostile_corpus import hostile_documents  # beside this script

from gristmill.pipelines.config.filters import RULE_SETS, FiltersConfig
from gristmill.pipelines.filters import make_filters, make_rule_set
from gristmill.pipelines.filters.text_stats import clear_batch_words
from gristmill.pipelines.steps.dedupe.minhash import MinHasher, exact_hashes
from gristmill.threads import limit_threads


class Stalled(BaseException):
    """The stage ran past its CPU-time limit."""


@contextlib.contextmanager
def cpu_limit(seconds: float):
    """Raise Stalled in the block once it has used `seconds` of CPU time."""

    def ring(signum, frame):
        raise Stalled

    previous = signal.signal(signal.SIGPROF, ring)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def rss() -> int:
    """Return this process's resident memory in bytes after releasing what it freed."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def chain(filters: list) -> Callable[[str], object]:
    """Return a function running `filters` in order on one text, stopping at the first drop."""

    def run(text: str) -> object:
        for flt in filters:
            verdict = flt.check_batch([text])[0]
            if verdict is not None:
                return verdict
        return None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: the issue's sizes (default)")
    parser.add_argument("--limit", type=float, default=60.0, help="CPU seconds per document and stage")
    parser.add_argument("--only", default="", help="documents whose name holds this")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    limit_threads(1)

    config = FiltersConfig()
    stages: dict[str, Callable[[str], object]] = {
        name: rules.check_batch for name in RULE_SETS if (rules := make_rule_set(config, name)) is not None
    }
    stages = {name: (lambda text, check=check: check([text])) for name, check in stages.items()}
    stages["web chain"] = chain(make_filters(config, "web"))
    stages["code chain"] = chain(make_filters(config, "code"))
    stages["exact key"] = lambda text: exact_hashes([text])
    hasher = MinHasher()
    stages["MinHash"] = lambda text: hasher.signatures([text])

    print(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, pinned to CPU "
        f"{cpu}, one thread; scale {args.scale}, limit {args.limit:g} CPU s per document and stage; MB/s"
    )
    print("| document | MB | " + " | ".join(stages) + " | slowest | kept MiB |")
    print("|---|---:|" + "---:|" * (len(stages) + 2))
    for stage in stages.values():  # tables built on first use (word characters, NFC runs) are not timed
        stage("Warm up, café \u0301\u0316 e.g.,,x " + "word " * 200)
    documents = hostile_documents(args.scale)
    for name in list(documents):
        text = documents.pop(name)
        if args.only not in name:
            continue
        mb = len(text.encode("utf-8", "surrogatepass")) / 1e6
        before = rss()
        cells, rates = [], []
        for stage in stages.values():
            clear_batch_words()
            start = time.thread_time()
            try:
                with cpu_limit(args.limit):
                    stage(text)
            except Stalled:
                cells.append(f"stalled (> {args.limit:g} s)")
                rates.append(0.0)
                continue
            except Exception as e:  # a crash is a result too
                cells.append(f"{type(e).__name__}")
                rates.append(0.0)
                continue
            seconds = max(time.thread_time() - start, 1e-6)
            rates.append(mb / seconds)
            cells.append(f"{mb / seconds:.3g}")
        clear_batch_words()
        kept = (rss() - before) / 2**20
        print(
            f"| {name} | {mb:.2f} | " + " | ".join(cells) + f" | {min(rates):.3g} | {kept:.0f} |", flush=True
        )
        del text


if __name__ == "__main__":
    main()
