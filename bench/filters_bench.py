"""Benchmark: web-text quality filters, datatrove's classes against ours, on the same documents in one run.

Documents: `reference.bench_documents` (standard-library prose and reference text, cut and re-cut with
variation, plus synthetic junk), --mb megabytes of UTF-8. Each side runs in this one process, on one core:
  - datatrove: GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter, FineWebQualityFilter
    (`filter(doc)` per document; its English words and sentences come from spaCy);
  - gristmill: our rule sets (`check_batch` on batches of --batch texts).
Timed two ways: each rule set alone over every document (ours then re-splits words for each rule set),
and the four chained as in a pipeline (a dropped document goes no further; ours splits words once).
Per core, one thread: the process pins itself to one CPU and calls `limit_threads(1)`, as a one-CPU Ray
task runs, and times CPU time (`time.process_time`: on a shared machine wall time measures the neighbours);
the two sides alternate for --repeats rounds and the best of each is kept. Reports MB/s per core, the
ratio, and the keep/drop agreement on the way.

Run: python bench/filters_bench.py [--mb 5] [--batch 256] [--repeats 3]   (datatrove's side needs spaCy)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

from datatrove.data import Document
from datatrove_filters import RULE_SETS, datatrove_filter  # beside this script

from gristmill.pipelines.config.filters import FiltersConfig
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.filters.text_stats import clear_batch_words
from gristmill.sample.text import bench_documents
from gristmill.threads import limit_threads


def datatrove_run(filters: list, texts: list[str]) -> list[bool]:
    """Return, per text, whether datatrove's `filters` in order keep it."""
    kept = []
    for i, text in enumerate(texts):
        doc = Document(text=text, id=str(i))
        kept.append(all(flt.filter(doc) is True for flt in filters))  # all() stops at the first drop
    return kept


def gristmill_run(filters: list, texts: list[str], batch: int) -> list[bool]:
    """Return, per text, whether our `filters` in order keep it (batches of `batch`, survivors go on)."""
    kept = [True] * len(texts)
    for start in range(0, len(texts), batch):
        alive = list(range(start, min(start + batch, len(texts))))
        for flt in filters:
            verdicts = flt.check_batch([texts[i] for i in alive])
            for i, reason in zip(alive, verdicts):
                kept[i] = kept[i] and reason is None
            alive = [i for i, reason in zip(alive, verdicts) if reason is None]
    return kept


def timed(fn: Callable[[], list[bool]]) -> tuple[float, list[bool]]:
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=5.0, help="megabytes of documents (default 5)")
    parser.add_argument("--batch", type=int, default=256, help="texts per check_batch call (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per side, best kept (default 3)")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    limit_threads(1)

    texts = bench_documents(int(args.mb * 1e6))
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    ours = dict(zip(RULE_SETS, make_filters(FiltersConfig(), "web")))
    theirs = {name: datatrove_filter(name) for name in RULE_SETS}
    datatrove_run(list(theirs.values()), texts[:50])  # load spaCy before timing
    print(
        f"{len(texts)} documents, {mb:.1f} MB; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; pinned to CPU {cpu}, one thread, "
        f"best of {args.repeats}"
    )
    print(f"{'rule set':<20}{'datatrove MB/s':>16}{'gristmill MB/s':>16}{'ratio':>8}{'agree':>9}")
    rows = [(name, [theirs[name]], [ours[name]]) for name in RULE_SETS]
    rows.append(("all four, chained", list(theirs.values()), list(ours.values())))
    for label, their_filters, our_filters in rows:
        their_time = our_time = float("inf")
        for _ in range(args.repeats):
            clear_batch_words()
            seconds, their_kept = timed(lambda f=their_filters: datatrove_run(f, texts))
            their_time = min(their_time, seconds)
            clear_batch_words()
            seconds, our_kept = timed(lambda f=our_filters: gristmill_run(f, texts, args.batch))
            our_time = min(our_time, seconds)
        agree = sum(a == b for a, b in zip(their_kept, our_kept)) / len(texts)
        print(
            f"{label:<20}{mb / their_time:>16.2f}{mb / our_time:>16.2f}{their_time / our_time:>7.1f}x"
            f"{agree:>9.2%}"
        )


if __name__ == "__main__":
    main()
