"""Provenance on a real build (e.g. the 1 GB scale build of `scale_bench.py run --keep`): its cost in bytes,
how fast `trace` and `find` answer, and the round trip of every segment to its input record.

  overhead    sidecar and document index bytes against shard bytes, per stage and in all
  trace       `trace_row` of --lookups random rows (every stage): seconds each (median, max), in process;
              and the CLI end to end (`gristmill shards trace`, a fresh process: Python and imports included)
  find        `find_document` of --lookups random ids (drawn from the sidecars), and the steps reading each
              row under a training config made for the build (`RunSchedule.row_steps`); the CLI end to end
  round trip  `pipelines.origins.check_origins`: every segment's record read again from its input file by its
              source's reader, tokenized and framed: segments matched / segments, and its seconds
  takedown    (--takedown N) on a copy of the build's trained-on files (manifest, tokenizer, stage folders):
              N random ids spread over the stages taken down, its seconds, then `shards verify` of the copy

The build's recipe (in its manifest) names its inputs by absolute path, as the scale harness writes it.

    python bench/provenance_bench.py BUILD [--lookups 50] [--skip-round-trip] [--takedown 10] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core: the figures are per core
os.environ.setdefault("LOGURU_LEVEL", "ERROR")


def overhead(manifest) -> dict:
    """Return shard, sidecar and index bytes per stage and in all, and the provenance's share of shards."""
    stages = {}
    for stage in manifest.stages:
        shards = sum(s.bytes for s in stage.shards)
        sidecars = sum(s.provenance.bytes for s in stage.shards)
        index = sum(e.bytes for e in stage.document_index)
        stages[stage.name] = {
            "shard_bytes": shards,
            "sidecar_bytes": sidecars,
            "index_bytes": index,
            "sidecar_share": round(sidecars / shards, 5),
            "index_share": round(index / shards, 5),
        }
    total = {k: sum(s[k] for s in stages.values()) for k in ("shard_bytes", "sidecar_bytes", "index_bytes")}
    total["sidecar_share"] = round(total["sidecar_bytes"] / total["shard_bytes"], 5)
    total["index_share"] = round(total["index_bytes"] / total["shard_bytes"], 5)
    return {"stages": stages, "total": total}


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def summary(seconds: list[float]) -> dict:
    return {
        "n": len(seconds),
        "median_ms": round(1000 * statistics.median(seconds), 2),
        "max_ms": round(1000 * max(seconds), 2),
    }


def run_config(build: str, manifest, directory: Path) -> Path:
    """Write a training config for the build (micro-batches of its longest stage, the build's own steps)."""
    longest = max(s.seq_len for s in manifest.stages)
    path = directory / "run.yaml"
    path.write_text(
        json.dumps(
            {
                "build": build,
                "model": {"preset": "llama-tiny", "max_seq_len": longest},
                "output_dir": str(directory / "out"),
                "micro_batch_tokens": longest,
            }
        )
    )
    return path


def cli_seconds(args: list[str]) -> tuple[float, float]:
    """Return (wall, CPU) seconds of one `gristmill` command in a fresh process (exit status checked). On a
    shared machine the CPU seconds are the figure: wall time there waits for other processes' turns."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gristmill", *args], check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def takedown_figures(build: str, manifest, ids: list[str]) -> dict:
    """Take `ids` down from a copy of the build's trained-on files; return its figures and verify's."""
    import shutil

    from gristmill.shards.takedown import takedown
    from gristmill.shards.verify import verify_build

    with tempfile.TemporaryDirectory(dir=str(Path(build).parent)) as tmp:
        copy = Path(tmp) / "build"
        copy.mkdir()
        shutil.copy(Path(build) / "manifest.json", copy)
        shutil.copytree(Path(build) / manifest.tokenizer.path, copy / manifest.tokenizer.path)
        for stage in manifest.stages:
            folder = stage.shards[0].path.rsplit("/", 1)[0]
            shutil.copytree(Path(build) / folder, copy / folder)
        start, cpu = time.perf_counter(), time.process_time()
        report = takedown(str(copy), ids)
        taken = {
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
        }
        start, cpu = time.perf_counter(), time.process_time()
        verified = verify_build(str(copy))
        checked = {
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),
        }
    return report.to_dict() | {"takedown": taken, "verify": checked | {"ok": verified.ok}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--lookups", type=int, default=50)
    parser.add_argument("--cli-lookups", type=int, default=5)
    parser.add_argument("--skip-round-trip", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--takedown", type=int, default=0, help="ids to take down from a copy of the build")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    import numpy as np
    import pyarrow.parquet as pq

    from gristmill.pipelines.origins import check_origins
    from gristmill.pipelines.recipe import parse_recipe
    from gristmill.shards.manifest import read_manifest
    from gristmill.shards.trace import find_document, trace_row
    from gristmill.trainer.config import load_train_config
    from gristmill.trainer.data_steps import RunSchedule

    build = args.build.rstrip("/")
    manifest = read_manifest(build)
    rng = np.random.default_rng(args.seed)
    figures: dict = {
        "build": build,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, one process",
        "rows": sum(s.rows for s in manifest.stages),
        "segments": 0,
        "overhead": overhead(manifest),
    }
    ids = []  # drawn from a random shard of each stage
    for stage in manifest.stages:
        segments = sum(pq.read_metadata(f"{build}/{s.provenance.path}").num_rows for s in stage.shards)
        figures["segments"] += segments
        figures["overhead"]["stages"][stage.name]["segments_per_row"] = round(segments / stage.rows, 3)
        sample = stage.shards[int(rng.integers(len(stage.shards)))]
        column = pq.read_table(f"{build}/{sample.provenance.path}", columns=["id"]).column("id").to_pylist()
        ids += [column[i] for i in rng.integers(len(column), size=args.lookups // len(manifest.stages) + 1)]
    rng.shuffle(ids)

    trace_s, cpu = [], time.process_time()
    for _ in range(args.lookups):
        stage = manifest.stages[int(rng.integers(len(manifest.stages)))]
        seconds, _ = timed(trace_row, build, manifest, stage.name, int(rng.integers(stage.rows)))
        trace_s.append(seconds)
    figures["trace"] = summary(trace_s) | {
        "cpu_ms_each": round(1000 * (time.process_time() - cpu) / len(trace_s), 2)
    }

    with tempfile.TemporaryDirectory() as tmp:
        config = run_config(build, manifest, Path(tmp))
        seconds, schedule = timed(RunSchedule.of, load_train_config(str(config)), manifest)
        figures["schedule_s"] = round(seconds, 3)
        find_s, steps_s, hits, cpu = [], [], 0, time.process_time()
        for doc_id in ids[: args.lookups]:
            seconds, places = timed(find_document, build, manifest, doc_id)
            find_s.append(seconds)
            hits += bool(places)
            start = time.perf_counter()
            for place in places:
                schedule.row_steps(place.stage, [place.stage_row])
            steps_s.append(time.perf_counter() - start)
        each = round(1000 * (time.process_time() - cpu) / len(find_s), 2)
        figures["find"] = summary(find_s) | {"found": hits, "cpu_ms_each_with_steps": each}
        figures["row_steps"] = summary(steps_s)
        stage = manifest.stages[-1]
        cli_trace = [
            cli_seconds(
                ["shards", "trace", build, "--stage", stage.name, "--row", str(int(rng.integers(stage.rows)))]
            )
            for _ in range(args.cli_lookups)
        ]
        cli_find = [
            cli_seconds(["shards", "find", build, "--doc", doc_id, "--config", str(config)])
            for doc_id in ids[: args.cli_lookups]
        ]
        figures["cli"] = {
            name: {"wall": summary([w for w, _ in runs]), "cpu": summary([c for _, c in runs])}
            for name, runs in (("trace", cli_trace), ("find_with_steps", cli_find))
        }

    if not args.skip_round_trip:
        recipe = parse_recipe({**manifest.recipe, "output": build})
        start, cpu = time.perf_counter(), time.process_time()
        report = check_origins(build, recipe)
        figures["round_trip"] = {
            "segments": report.segments,
            "matched": report.matched,
            "changed": report.changed,
            "documents": report.documents,
            "input_files": report.input_files,
            "problems": report.problems,
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),
        }
    if args.takedown:
        figures["takedown"] = takedown_figures(build, manifest, ids[: args.takedown])
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
