"""Benchmark: the classifier trained inside the build (`quality.train`) and selection by top fraction.

Corpus: `gristmill.sample.quality`'s labelled documents written as SlimPajama chunks (zstd JSON lines,
--files files, shuffled): every real document (Python's reference topics and module docstrings, Debian's
README/NEWS/copyright files, standard-library modules and C headers) goes to the curated subsets
(Wikipedia, Book, StackExchange, ArXiv) except the held-out real prose, which goes with every junk page
(boilerplate-heavy and keyword-stuffed pages, the filters' own junk) to the web subsets (CommonCrawl, C4):
the web is junk with some good pages in it, as the web is. The recipe is DCLM's shape: real = the curated
subsets, junk = a random sample of the web subsets, `select: {cleaned_web: {top_fraction: 0.1}}`, where the
web subsets' profile `cleaned_web` runs the curated rule set (SlimPajama's web was cleaned by its makers;
the web profile's four rule sets would leave too little of these junk pages to learn from or select among).

Measured, in one process on one core (pinned, `limit_threads(1)`, CPU time):
  - in-build training (`training.train_from_recipe`: the seeded sample through the rule sets, the hash
    split, fastText, the held-out figures) against its baseline in the same run: `train_classifier` alone on
    the same training texts already in memory (what `gristmill classifier train` costs after reading);
  - determinism: the same recipe trained twice, the same model bytes;
  - resolving top_fraction (`selection.resolve_fractions`: the profile's sample and its scores);
  - ingest of the whole corpus with the selection on (datatrove's local executor, one task per file): the
    share of the web subsets' documents kept, against the requested fraction, and whether the accounting
    balances.

Run: taskset -c 1 python bench/quality_build_bench.py [--every 1] [--files 24] [--fraction 0.1] [--seed 0]
     [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import zstandard

from gristmill.pipelines.build.accounting import collect_accounting
from gristmill.pipelines.build.engine import quiet_datatrove_logs, run_locally
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.quality import TOP_FRACTION_REASON
from gristmill.pipelines.quality import QualityModel, train_classifier
from gristmill.pipelines.quality.labelled import split
from gristmill.pipelines.quality.selection import resolve_fractions
from gristmill.pipelines.quality.training import train_from_recipe, training_sample
from gristmill.pipelines.recipe import parse_recipe
from gristmill.pipelines.steps.ingest import ingest_step, plan_work_units
from gristmill.pipelines.steps.quality import collect_quality, quality_model_step
from gristmill.sample.quality import quality_split
from gristmill.threads import limit_threads

CURATED = ["RedPajamaWikipedia", "RedPajamaBook", "RedPajamaStackExchange", "RedPajamaArXiv"]
WEB = ["RedPajamaCommonCrawl", "RedPajamaC4"]


def write_corpus(root: Path, every: int, max_debian: int, files: int) -> dict[str, int]:
    """Write the SlimPajama-layout corpus under `root`; return documents per subset."""
    train, test = quality_split(heldout=0.3, every=every, max_debian=max_debian)
    good_web = [d for d in test if d.label and d.kind == "prose"]
    taken = {id(d) for d in good_web}
    records = []
    for i, d in enumerate(d for d in train + test if d.label and id(d) not in taken):
        records.append({"text": d.text, "meta": {"redpajama_set_name": CURATED[i % len(CURATED)]}})
    for i, d in enumerate(good_web + [d for d in train + test if not d.label]):
        records.append({"text": d.text, "meta": {"redpajama_set_name": WEB[i % len(WEB)]}})
    random.Random(0).shuffle(records)
    compressor = zstandard.ZstdCompressor(level=3)
    for i in range(files):
        path = root / f"chunk{i % 2 + 1}" / f"example_train_{i}.jsonl.zst"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r) + "\n" for r in records[i::files])
        path.write_bytes(compressor.compress(lines.encode()))
    counts: dict[str, int] = {}
    for r in records:
        counts[r["meta"]["redpajama_set_name"]] = counts.get(r["meta"]["redpajama_set_name"], 0) + 1
    counts["good_web_prose"] = len(good_web)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=1, help="keep every Nth real document (smaller runs)")
    parser.add_argument("--max-debian", type=int, default=300, help="Debian documentation files read at most")
    parser.add_argument("--files", type=int, default=24, help="SlimPajama chunk files to write")
    parser.add_argument("--fraction", type=float, default=0.1, help="the web subsets' top_fraction")
    parser.add_argument("--seed", type=int, default=0, help="train.settings.seed (the samples' seed too)")
    parser.add_argument("--fraction-sample", type=int, default=2000, help="quality.fraction_sample")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    limit_threads(1)
    quiet_datatrove_logs()

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        subsets = write_corpus(root / "slimpajama", args.every, args.max_debian, args.files)
        data = {
            "name": "quality-bench",
            "output": str(root / "build"),
            "sources": [
                {
                    "name": "slimpajama",
                    "format": "slimpajama",
                    "paths": [str(root / "slimpajama")],
                    "profiles": {name: "cleaned_web" for name in WEB},
                }
            ],
            # SlimPajama's web subsets were cleaned by its makers (its reader's default profile for them is
            # curated): the web rule sets would leave hardly any junk to learn from or select among
            "filters": {"profiles": {"cleaned_web": ["curated"]}},
            "quality": {
                "train": {
                    "real": [{"source": "slimpajama", "subsets": CURATED}],
                    "junk": [{"source": "slimpajama", "subsets": WEB}],
                    "documents": 20_000,
                    "settings": {"seed": args.seed},
                },
                "select": {"cleaned_web": {"top_fraction": args.fraction}},
                "fraction_sample": args.fraction_sample,
            },
        }
        recipe = parse_recipe(data)
        settings = recipe.quality.train.settings

        start = time.process_time()
        real, junk, counts = training_sample(recipe)
        sample_s = time.process_time() - start
        real_train, _ = split(real, settings.heldout_fraction)
        junk_train, _ = split(junk, settings.heldout_fraction)
        start = time.process_time()
        train_classifier(real_train, junk_train, root / "baseline.bin", settings)
        baseline_s = time.process_time() - start

        start = time.process_time()
        card = train_from_recipe(recipe, root / "a.bin")
        in_build_s = time.process_time() - start
        again = train_from_recipe(recipe, root / "b.bin")
        same = (root / "a.bin").read_bytes() == (root / "b.bin").read_bytes() and again.sha256 == card.sha256

        model = QualityModel.load(root / "a.bin")
        start = time.process_time()
        resolved, fraction_counts = resolve_fractions(recipe, model)
        resolve_s = time.process_time() - start

        layout = BuildLayout(recipe.output)
        units = plan_work_units(recipe)
        start = time.process_time()
        run_locally([quality_model_step(recipe, layout), ingest_step(recipe, layout, units)], layout)
        build_s = time.process_time() - start
        tasks = {"slimpajama": [u.task for u in units]}
        accounting = collect_accounting(layout, tasks)["slimpajama"]
        scores = collect_quality(recipe, layout, tasks).scores["slimpajama"]
        judged = sum(sum(scores[name].scored) for name in WEB)
        kept = sum(sum(scores[name].selected) for name in WEB)
        dropped = sum(accounting[name].filtered.get(TOP_FRACTION_REASON, 0) for name in WEB)
        corpus_mb = sum(p.stat().st_size for p in (root / "slimpajama").rglob("*.zst")) / 1e6

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, pinned to {sorted(os.sched_getaffinity(0))}"
    result = {
        "machine": machine,
        "corpus": {"subsets": subsets, "files": args.files, "compressed_mb": round(corpus_mb, 1)},
        "sample": {"real": len(real), "junk": len(junk), **counts.to_dict()},
        "sample_mb": round(sum(len(t.encode()) for t in real + junk) / 1e6, 1),
        "trained_on": card.documents,
        "heldout": card.heldout,
        "model_bytes": card.bytes,
        "sample_cpu_s": round(sample_s, 2),
        "in_build_train_cpu_s": round(in_build_s, 2),
        "baseline_train_classifier_cpu_s": round(baseline_s, 2),
        "in_build_vs_baseline": round(in_build_s / baseline_s, 2),
        "same_recipe_same_bytes": same,
        "resolve_top_fraction_cpu_s": round(resolve_s, 2),
        "resolved": {p: r.to_dict() for p, r in resolved.items()},
        "resolve_sample": fraction_counts.to_dict(),
        "build_quality_step_and_ingest_cpu_s": round(build_s, 2),
        "web_scored": judged,
        "web_kept": kept,
        "web_kept_share": round(kept / judged, 4) if judged else None,
        "web_dropped_quality_top_fraction": dropped,
        "requested_top_fraction": args.fraction,
        "seed": args.seed,
        "accounting_balances": all(c.balanced() for c in accounting.values()),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
