"""Benchmark: the quality classifier on this machine's real text, against the rule sets in the same run.

Labelled documents: `gristmill.sample.quality.quality_split` — real (label 1: Python's reference topics and
module docstrings, Debian's README/NEWS/copyright files, standard-library modules and C headers) against
junk (label 0: boilerplate-heavy and keyword-stuffed pages around a sentence or two of real prose, and the
filters' own junk), real documents held out by a hash of their text, junk pages by generator seed.

Measured, in one process on one core (pinned, `limit_threads(1)`, CPU time):
  - held-out precision and recall at 0.5 and ROC AUC;
  - determinism: trained twice with one seed, the same model bytes (and another seed, other bytes);
  - the model's size;
  - scoring speed in MB/s of UTF-8 text per core, against the web profile's four rule sets (Gopher quality,
    Gopher repetition, C4, FineWeb, chained as in the build: batches of 256) on the same documents, each
    side the best of --repeats rounds.

Run: taskset -c 1 python bench/classifier_bench.py [--every 1] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from gristmill.pipelines.config.filters import FiltersConfig
from gristmill.pipelines.config.quality import ClassifierSettings
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.quality import QualityModel, evaluate, roc_auc, train_classifier
from gristmill.sample.quality import quality_split
from gristmill.threads import limit_threads

_BATCH = 256


def rule_sets_keep(filters: list, texts: list[str]) -> int:
    """Run `filters` chained over `texts` in batches (a dropped text goes no further); return how many
    pass."""
    kept = 0
    for start in range(0, len(texts), _BATCH):
        alive = texts[start : start + _BATCH]
        for flt in filters:
            alive = [t for t, reason in zip(alive, flt.check_batch(alive)) if reason is None]
        kept += len(alive)
    return kept


def cpu_seconds(fn, repeats: int) -> float:
    """Return the least CPU time of `repeats` calls of `fn`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=1, help="keep every Nth real document (smaller runs)")
    parser.add_argument("--max-debian", type=int, default=300, help="Debian documentation files read at most")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    limit_threads(1)

    train, test = quality_split(heldout=0.3, every=args.every, max_debian=args.max_debian)
    real = [d.text for d in train if d.label]
    junk = [d.text for d in train if not d.label]
    settings = ClassifierSettings()
    with tempfile.TemporaryDirectory() as work:
        start = time.process_time()
        card = train_classifier(real, junk, Path(work, "a.bin"), settings)
        train_s = time.process_time() - start
        again = train_classifier(real, junk, Path(work, "b.bin"), settings)
        other = train_classifier(real, junk, Path(work, "c.bin"), settings.model_copy(update={"seed": 1}))
        same_bytes = Path(work, "a.bin").read_bytes() == Path(work, "b.bin").read_bytes()
        model = QualityModel.load(Path(work, "a.bin"))

        texts = [d.text for d in test]
        labels = np.array([d.label for d in test], dtype=bool)
        scores = model.score(texts)
        figures = evaluate(labels, scores)
        by_kind = {}
        for kind in sorted({d.kind for d in test}):
            chosen = np.array([d.kind == kind for d in test])
            by_kind[kind] = {"documents": int(chosen.sum()), "mean_score": float(scores[chosen].mean())}
            if labels[chosen].all():  # a real kind: its documents against every held-out junk page
                against = chosen | ~labels
                by_kind[kind]["roc_auc_vs_junk"] = roc_auc(labels[against], scores[against])

        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        web = make_filters(FiltersConfig(), "web")
        classifier_s = cpu_seconds(lambda: model.score(texts), args.repeats)
        rules_s = cpu_seconds(lambda: rule_sets_keep(web, texts), args.repeats)

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, pinned to {sorted(os.sched_getaffinity(0))}"
    result = {
        "machine": machine,
        "documents": {
            "train_real": len(real),
            "train_junk": len(junk),
            "heldout": len(test),
            "heldout_mb": mb,
        },
        "settings": settings.model_dump(),
        "heldout": figures.to_dict(),
        "heldout_by_kind": by_kind,
        "model_bytes": card.bytes,
        "train_cpu_s": train_s,
        "same_seed_same_bytes": same_bytes and again.sha256 == card.sha256,
        "other_seed_other_bytes": other.sha256 != card.sha256,
        "score_mb_per_s": mb / classifier_s,
        "web_rule_sets_mb_per_s": mb / rules_s,
        "score_vs_rule_sets": rules_s / classifier_s,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
