"""The plan's cost of drawing a stage by quality score: `shards.plan.make_plan` on synthetic document lengths
like the real corpora's, with a last stage drawn from every document (the baseline) and from each source's
top-scored tenth (score bins drawn at random), in the same run, alternating.

    taskset -c 1 python bench/plan_bench.py [--documents 1000000] [--repeats 3]

Prints the median CPU seconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from gristmill.pipelines.quality.percentile import SCORE_BINS, floor_for_top
from gristmill.shards.plan import StageSpec, make_plan


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1_000_000, help="web documents (code: a quarter)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.documents
    lengths = {
        "web": np.clip(rng.lognormal(6.0, 1.0, n), 5, 100_000).astype(np.int64),
        "code": np.clip(rng.lognormal(7.0, 1.2, n // 4), 5, 200_000).astype(np.int64),
    }
    bins = {name: rng.integers(0, SCORE_BINS, len(x)).astype(np.int32) for name, x in lengths.items()}
    floors = {name: floor_for_top(np.bincount(b, minlength=SCORE_BINS), 0.1) for name, b in bins.items()}
    tokens = sum(int(x.sum()) for x in lengths.values())
    base = [
        StageSpec("2k", 2048, tokens // 2, {"web": 0.6, "code": 0.4}),
        StageSpec("8k", 8192, tokens // 2, {"web": 0.5, "code": 0.5}),
    ]
    hq = tokens // 20
    cases = {
        "every document": ([*base, StageSpec("hq", 8192, hq, {"web": 0.5, "code": 0.5})], None),
        "top-scored tenth": ([*base, StageSpec("hq", 8192, hq, {"web": 0.5, "code": 0.5}, floors)], bins),
    }
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (specs, scores) in cases.items():
            start = time.process_time()
            make_plan(lengths, specs, seed=1, scores=scores)
            seconds[name].append(time.process_time() - start)
    print(f"{platform.machine()}, {sum(len(x) for x in lengths.values()):,} documents, {tokens:,} tokens")
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    for name, median in medians.items():
        print(f"last stage from {name}: {median:.2f} s CPU (median of {args.repeats})")
    print(f"ratio: {medians['top-scored tenth'] / medians['every document']:.3f}")


if __name__ == "__main__":
    main()
