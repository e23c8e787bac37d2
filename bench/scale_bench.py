"""Scale harness: synthesise a corpus of N bytes in the four native layouts, build it at 1 and 2 workers, and
report what each step costs per core, the peak memory of its largest task, and whether dedupe and accounting
held up.

  generate  N bytes (compressed, on disk) of SlimPajama jsonl.zst, Starcoderdata parquet, Dolma json.gz and
            Pile jsonl.zst from Markov models of real text, with junk and exact and near duplicates planted
            at known rates, files of --file-mb MB, GROUND_TRUTH.json, and a trained tokenizer (sentencepiece
            BPE, vocab 8192, on a 12 MB sample) that the build copies instead of training (scale_corpus.py)
  run       for each worker count, a fresh local Ray of that many CPUs and a fresh build of a recipe made
            for the corpus (all four sources, default filters, exact + MinHash dedupe, 2K/4K/8K stages sized
            from the corpus; or, with --shape tinyllama, TinyLlama's shape: SlimPajama : Starcoderdata =
            0.69 : 0.31 in one 2K stage whose budget is 3× the clean tokens, with --tokenizer a 32K one);
            per step: tasks, span, input MB (bytes its processes read), MB/s per core, peak RSS of its
            largest task, bytes written, object-store bytes spilled; end to end MB/s per core, scaling
            efficiency, planted duplicates caught, accounting balanced; storage: shard bytes per trained
            token and bytes written per GB of text. Markdown + JSON.
  compare   per-step peak task RSS across the JSON reports of several runs (e.g. 1 GB and 5 GB)
  gain      text MB per CPU second, end to end and per step, of two runs of one corpus on one machine
            (e.g. before and after a change): CPU seconds, since wall time moves with whatever else runs

Per core means per core with one thread: every task has one CPU and its threads follow it.

Run:
  python bench/scale_bench.py generate --size 1GB --out /data/scale-1g [--seed 0] [--file-mb 100]
  python bench/scale_bench.py run --corpus /data/scale-1g --workers 1,2 [--output OUT] [--keep]
  python bench/scale_bench.py run --corpus /data/scale-1g --workers 2 --shape tinyllama --tokenizer TOK32K
  python bench/scale_bench.py compare OUT-1g/scale-report.json OUT-5g/scale-report.json
  python bench/scale_bench.py report OUT/scale-report.json        (the Markdown of a JSON report)
  python bench/scale_bench.py gain BEFORE/scale-report.json AFTER/scale-report.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import scale_corpus  # beside this script: run it as `python bench/scale_bench.py`

STAGE_SHARES = ((2048, 0.40, 2**20), (4096, 0.35, 2**21), (8192, 0.25, 2**21))  # (seq_len, share, batch)
STAGE_FILL = 0.6  # stage budgets: this share of the corpus's estimated clean tokens
# TinyLlama's shape: 3T trained tokens of about 1T unique, SlimPajama (no GitHub) : Starcoderdata, 0.69 : 0.31
TINYLLAMA = {
    "seq_len": 2048,
    "repeat": 3.0,
    "batch": 2**21,
    "weights": {"slimpajama": 0.69, "starcoderdata": 0.31},
}
CLEAN_SHARE = 0.85  # about this share of a scale corpus's text survives filters and dedupe
PRIORITY = {"slimpajama": 1, "starcoderdata": 3, "dolma": 0, "pile": 2}
GLOBS = {
    "slimpajama": ("slimpajama", "**/*.jsonl.zst"),
    "starcoderdata": ("starcoder", "**/*.parquet"),
    "dolma": ("dolma", "**/*.json.gz"),
    "pile": ("pile", "**/*.jsonl.zst"),
}
MB = 1e6
# A 1 TB build splits its dedupe into ~125 partitions, and its plan into ~125 slices, of the default 2M
# documents; 100K here gives the 1 GB and 5 GB corpora several of each, so that their per-task memory is that
# of a partition or slice, as at 1 TB.
DOCS_PER_PARTITION = 100_000


# --- the recipe ---------------------------------------------------------------------------------------------


def bytes_per_token(tokenizer: Path) -> float:
    """Return a tokenizer's bytes per token on its held-out sample (its evaluation.json)."""
    evaluation = json.loads((tokenizer / "evaluation.json").read_text())
    return float(evaluation["total"]["bytes_per_token"])


def make_recipe(
    corpus: Path,
    output: Path,
    truth: dict[str, Any],
    docs_per_partition: int = DOCS_PER_PARTITION,
    shape: str = "curriculum",
    tokenizer: Path | None = None,
    stage_tokens: int | None = None,
) -> dict[str, Any]:
    """Return the recipe of the scale build of `corpus` into `output`: every source, the default filters,
    exact + near dedupe (`docs_per_partition` per clustering partition, and per plan slice), the corpus's
    tokenizer (or `tokenizer`), and 2K/4K/8K stages sized from the corpus's text, or (`shape` "tinyllama")
    TinyLlama's one 2K stage of SlimPajama and Starcoderdata, its budget `stage_tokens`, else 3× their
    estimated clean tokens."""
    tokenizer = tokenizer or corpus / scale_corpus.TOKENIZER_DIR
    text = {s: v["text_bytes"] for s, v in truth["sources"].items()}
    if shape == "tinyllama":
        sources = list(TINYLLAMA["weights"])
        clean = sum(text[s] for s in sources) / bytes_per_token(tokenizer) * CLEAN_SHARE
        stages = [
            {
                "name": "pretrain-2k",
                "seq_len": TINYLLAMA["seq_len"],
                "tokens": stage_tokens or int(clean * TINYLLAMA["repeat"]),
                "tokens_per_step": TINYLLAMA["batch"],
                "weights": TINYLLAMA["weights"],
            }
        ]
    else:
        sources = list(truth["sources"])
        tokens = truth["text_bytes"] / bytes_per_token(tokenizer) * STAGE_FILL
        weights = {s: round(n / sum(text.values()), 4) for s, n in text.items()}
        stages = [
            {
                "name": f"ctx-{seq_len}",
                "seq_len": seq_len,
                "tokens": max(seq_len * 64, int(tokens * share)),
                "tokens_per_step": batch,
                "weights": weights,
            }
            for seq_len, share, batch in STAGE_SHARES
        ]
    return {
        "name": f"scale-{truth['bytes'] // 10**6}mb",
        "seed": 1234,
        "output": str(output),
        "files_per_task": 1,
        "plan_docs_per_task": docs_per_partition,
        "sources": [
            {
                "name": source,
                "format": GLOBS[source][0],
                "paths": [str(corpus / source / GLOBS[source][1])],
                "priority": PRIORITY[source],
            }
            for source in sources
        ],
        "dedupe": {
            "exact": True,
            "near": {"shingle_size": scale_corpus.SHINGLE, "bands": 14, "rows": 8},
            "docs_per_partition": docs_per_partition,
        },
        "tokenizer": {"path": str(tokenizer)},
        "stages": stages,
    }


# --- running a build ----------------------------------------------------------------------------------------


class SpillMonitor:
    """Samples the object store's spilled bytes (Ray's memory summary) every `interval` seconds."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def spilled_bytes() -> int:
        """Return the bytes spilled so far by every node's object store (0 when Ray reports none)."""
        import ray
        from ray._private.internal_api import memory_summary

        summary = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
        match = re.search(r"Spilled (\d+) MiB", summary)
        return int(match.group(1)) * 2**20 if match else 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((time.time(), self.spilled_bytes()))
            except Exception:  # Ray not up yet, or going down
                continue

    def start(self) -> None:
        """Start sampling in a daemon thread."""
        self._thread.start()

    def stop(self) -> int:
        """Stop sampling; return the final total."""
        self._stop.set()
        self._thread.join(timeout=10)
        final = self.spilled_bytes()
        self.samples.append((time.time(), final))
        return final

    def during(self, start: float, end: float) -> int:
        """Return the bytes spilled between two Unix times (by the samples around them)."""
        before = max((b for t, b in self.samples if t <= start), default=0)
        after = max((b for t, b in self.samples if t <= end + self.interval), default=before)
        return max(0, after - before)


def run_one(recipe_data: dict[str, Any], workers: int) -> dict[str, Any]:
    """Build `recipe_data` fresh on a new local Ray of `workers` CPUs; return the wall time, the spill
    monitor and the manifest."""
    import ray
    from rich.console import Console

    from gristmill.pipelines.build.driver import BuildOptions, run_build
    from gristmill.pipelines.build.engine import init_ray
    from gristmill.pipelines.recipe import Recipe

    recipe = Recipe.model_validate(recipe_data)
    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=workers)
    monitor = SpillMonitor()
    monitor.start()
    started = time.time()
    options = BuildOptions(workers=workers, num_cpus=workers, fresh=True, console=Console(stderr=True))
    manifest = run_build(recipe, options)
    wall = time.time() - started
    spilled = monitor.stop()
    ray.shutdown()
    return {"wall": wall, "started": started, "monitor": monitor, "spilled": spilled, "manifest": manifest}


def step_figures(build: Path, workers: int, monitor: SpillMonitor) -> list[dict[str, Any]]:
    """Return, per step in the order it ran, the figures of its tasks (BUILD/logs/tasks/<step>.json)."""
    steps = []
    for path in (build / "logs" / "tasks").glob("*.json"):
        runs = list(json.loads(path.read_text()).values())
        start = min(r["started"] for r in runs)
        end = max(r["started"] + r["seconds"] for r in runs)
        read = sum(r["read_bytes"] or 0 for r in runs)
        span = max(end - start, 1e-6)
        steps.append(
            {
                "step": path.stem,
                "tasks": len(runs),
                "start": start,
                "seconds": round(span, 2),
                "task_seconds": round(sum(r["seconds"] for r in runs), 2),
                "cpu_seconds": round(sum(r["cpu_seconds"] for r in runs), 2),
                "input_mb": round(read / MB, 2),
                "mb_per_s_per_core": round(read / MB / (span * workers), 2),
                "peak_rss_mb": round(max(r["peak_rss"] or 0 for r in runs) / MB, 1),
                # what the task itself added over what its (reused) worker process held as it began
                "task_rss_mb": round(
                    max((r["peak_rss"] or 0) - (r.get("start_rss") or 0) for r in runs) / MB, 1
                ),
                "written_mb": round(sum(r["written_bytes"] or 0 for r in runs) / MB, 2),
                "spilled_mb": round(monitor.during(start, end) / MB, 1),
            }
        )
    return sorted(steps, key=lambda s: s["start"])


def planted_caught(build: Path, truth: dict[str, Any]) -> dict[str, Any]:
    """Return, for exact and near planted pairs, how many there were, how many had both copies survive the
    filters (eligible), and how many dedupe put in one cluster; and the clustered documents not planted."""
    import pyarrow.parquet as pq

    cluster: dict[str, int] = {}
    removed = 0
    for path in (build / "dedupe" / "decisions").rglob("*.parquet"):
        table = pq.read_table(path, columns=["id", "cluster", "kept_id"]).to_pydict()
        removed += len(table["id"])
        for doc_id, c, kept in zip(table["id"], table["cluster"], table["kept_id"]):
            cluster[doc_id] = c
            cluster[kept] = c
    surviving: set[str] = set()
    for path in (build / "documents").rglob("*.parquet"):
        surviving.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    out: dict[str, Any] = {}
    planted_ids: set[str] = set()
    for kind, pairs in truth["pairs"].items():
        eligible = [p for p in pairs if p["original"] in surviving and p["copy"] in surviving]
        caught = [p for p in eligible if cluster.get(p["original"], -1) == cluster.get(p["copy"], -2)]
        cross = [p for p in caught if p["cross_source"]]
        planted_ids.update(i for p in pairs for i in (p["original"], p["copy"]))
        out[kind] = {
            "planted": len(pairs),
            "eligible": len(eligible),
            "caught": len(caught),
            "caught_cross_source": len(cross),
            "recall": round(len(caught) / len(eligible), 4) if eligible else None,
        }
    out["removed"] = removed
    out["unplanned_in_clusters"] = sum(1 for i in cluster if i not in planted_ids)
    return out


def accounting(manifest: Any, truth: dict[str, Any]) -> dict[str, Any]:
    """Return, per source, in / kept / filtered / duplicate / quarantined, whether they balance, and whether
    every generated document was read; with the planted junk beside the filtered count."""
    rows = {}
    for source, c in manifest.source_totals().items():
        generated = sum(truth["sources"][source]["documents"].values())
        junk = sum(n for kinds in truth["sources"][source]["junk"].values() for n in kinds.values())
        rows[source] = {
            "in": c.records_in,
            "generated": generated,
            "kept": c.kept,
            "filtered": sum(c.filtered.values()),
            "junk_planted": junk,
            "duplicate": sum(c.duplicate.values()),
            "quarantined": c.quarantined,
            "balanced": c.balanced() and c.records_in == generated,
        }
    return rows


def storage(manifest: Any, steps: list[dict[str, Any]], text_bytes: int) -> dict[str, Any]:
    """Return what the build stored: shard bytes, tokens stored and trained, shard bytes per trained token,
    and the bytes every step wrote per GB of the text its sources read."""
    shard_bytes = sum(s.bytes for stage in manifest.stages for s in stage.shards)
    trained = sum(stage.trained_tokens for stage in manifest.stages)
    written = sum(s["written_mb"] for s in steps) * MB
    return {
        "shard_bytes": shard_bytes,
        "stored_tokens": sum(stage.tokens for stage in manifest.stages),
        "trained_tokens": trained,
        "padding_tokens": sum(stage.padding_tokens for stage in manifest.stages),
        "shard_bytes_per_trained_token": round(shard_bytes / trained, 4) if trained else None,
        "written_gb_per_text_gb": round(written / text_bytes, 3),
        "written_gb_per_text_gb_by_step": {
            s["step"]: round(s["written_mb"] * MB / text_bytes, 3) for s in steps
        },
    }


def measure(
    corpus: Path,
    output: Path,
    workers: int,
    truth: dict[str, Any],
    docs_per_partition: int,
    shape: str = "curriculum",
    tokenizer: Path | None = None,
    stage_tokens: int | None = None,
) -> dict[str, Any]:
    """Build the corpus at `workers` and return every figure of the run."""
    build = output / f"build-w{workers}"
    recipe = make_recipe(corpus, build, truth, docs_per_partition, shape, tokenizer, stage_tokens)
    result = run_one(recipe, workers)
    steps = step_figures(build, workers, result["monitor"])
    return {
        "workers": workers,
        "wall_s": round(result["wall"], 1),
        "steps_s": round(sum(s["seconds"] for s in steps), 1),
        "end_to_end_mb_per_s_per_core": round(truth["bytes"] / MB / (result["wall"] * workers), 3),
        "end_to_end_text_mb_per_s_per_core": round(truth["text_bytes"] / MB / (result["wall"] * workers), 3),
        "spilled_mb": round(result["spilled"] / MB, 1),
        "largest_task_peak_rss_mb": max(s["peak_rss_mb"] for s in steps),
        "steps": steps,
        "duplicates": planted_caught(build, truth),
        "accounting": accounting(result["manifest"], truth),
        "stages": [
            {
                "seq_len": s.seq_len,
                "tokens": s.tokens,
                "trained_tokens": s.trained_tokens,
                "passes": s.passes,
                "shards": len(s.shards),
            }
            for s in result["manifest"].stages
        ],
        "storage": storage(
            result["manifest"],
            steps,
            sum(truth["sources"][s["name"]]["text_bytes"] for s in recipe["sources"]),
        ),
        "recipe": recipe,
    }


# --- the report ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Return the machine's CPU model, cores, memory and Python."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model
            )
        with open("/proc/meminfo") as f:
            ram = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) * 1024
    except OSError:
        ram = 0
    import ray

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def _header(report: dict[str, Any]) -> list[str]:
    """Return the report's opening lines: corpus, machine, generation, tokenizer, definitions."""
    m, truth = report["machine"], report["corpus"]
    gen, rates, tok = truth["generation_mb_per_s"], truth["rates"], truth["tokenizer"]
    load = ", ".join(f"{x:.1f}" for x in m["load_average_at_start"])
    return [
        f"# Scale run: {truth['bytes'] / MB:,.0f} MB on disk ({truth['text_bytes'] / MB:,.0f} MB of text), "
        f"{truth['documents']:,} documents, {len(truth['files'])} files",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GiB RAM, Python {m['python']}, "
        f"Ray {m['ray']}; load average at start {load}.",
        f"Corpus: seed {truth['seed']}, files of {truth['file_mb']:g} MB, generated in "
        f"{truth['timings']['total_s']:.0f} s ({gen['compressed']} MB/s compressed, {gen['text']} MB/s of "
        f"text, {gen['processes']} processes); planted: {rates['exact']:.2%} exact, {rates['near']:.2%} near "
        f"(mean Jaccard {rates['near_jaccard_mean']}), {rates['cross_source']:.0%} across sources.",
        f"Tokenizer: copied from the corpus ({tok['backend']}, vocab {tok['vocab_size']}, trained at "
        f"generation on {tok['sample_bytes'] / MB:.0f} MB in {tok['seconds']} s).",
        "Per core: per core with one thread (each task has one CPU). Input MB: bytes the step's task "
        "processes read through system calls (memory-mapped reads are not counted). "
        "Span: first task start to last task end. MB/CPU-s: input MB per CPU second of the step's tasks, "
        "and CPU/wall: their CPU seconds per wall second; below 1 the tasks waited (for I/O, or for a CPU "
        "another process held: see the load average).",
        "",
    ]


def cpu_figures(run: dict[str, Any], text_bytes: int) -> dict[str, Any]:
    """Return a run's CPU seconds (all its steps' tasks), text MB per CPU second end to end, and each step's
    share of the CPU seconds and its input MB per CPU second (from the report's steps; older reports too)."""
    cpu = sum(s["cpu_seconds"] for s in run["steps"])
    return {
        "cpu_seconds": round(cpu, 1),
        "text_mb_per_cpu_s": round(text_bytes / MB / cpu, 3) if cpu else 0.0,
        "steps": {
            s["step"]: {
                "cpu_seconds": s["cpu_seconds"],
                "share": round(s["cpu_seconds"] / cpu, 4) if cpu else 0.0,
                "input_mb_per_cpu_s": round(s["input_mb"] / s["cpu_seconds"], 2) if s["cpu_seconds"] else 0.0,
            }
            for s in run["steps"]
        },
    }


def _run_section(run: dict[str, Any], text_bytes: int) -> list[str]:
    """Return the Markdown of one worker count: steps, duplicates caught, accounting."""
    cpu = cpu_figures(run, text_bytes)
    tokenize = cpu["steps"].get("tokenize", {}).get("share", 0.0)
    lines = [
        f"## {run['workers']} worker(s): {run['wall_s']} s, end to end "
        f"{run['end_to_end_mb_per_s_per_core']} MB/s per core on disk "
        f"({run['end_to_end_text_mb_per_s_per_core']} MB/s of text), spilled {run['spilled_mb']} MB",
        "",
        f"CPU: {cpu['cpu_seconds']:,} s in the steps' tasks, {cpu['text_mb_per_cpu_s']} MB of text per CPU "
        f"second end to end; tokenize {tokenize:.0%} of the CPU seconds.",
        "",
        "| step | tasks | span s | input MB | MB/s/core | MB/CPU-s | CPU/wall | largest task peak RSS MB "
        "| largest task's own MB | written MB | spilled MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in run["steps"]:
        per_cpu = s["input_mb"] / s["cpu_seconds"] if s["cpu_seconds"] else 0.0
        busy = s["cpu_seconds"] / s["task_seconds"] if s["task_seconds"] else 0.0
        lines.append(
            f"| {s['step']} | {s['tasks']} | {s['seconds']} | {s['input_mb']:,.1f} | "
            f"{s['mb_per_s_per_core']} | {per_cpu:.2f} | {busy:.2f} | {s['peak_rss_mb']:,.0f} | "
            f"{s.get('task_rss_mb', float('nan')):,.0f} | {s['written_mb']:,.1f} | {s['spilled_mb']} |"
        )
    d = run["duplicates"]
    caught = "; ".join(
        f"{k} {d[k]['caught']}/{d[k]['eligible']} (of {d[k]['planted']} planted, "
        f"{d[k]['caught_cross_source']} across sources)"
        for k in ("exact", "near")
    )
    lines += [
        "",
        f"Planted duplicates caught (eligible: both copies past the filters): {caught}; dedupe removed "
        f"{d['removed']:,}; {d['unplanned_in_clusters']:,} unplanned documents in clusters.",
        "",
        "| source | generated | in | kept | filtered (planted junk) | duplicate | quarantined | balanced |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for source, a in run["accounting"].items():
        lines.append(
            f"| {source} | {a['generated']:,} | {a['in']:,} | {a['kept']:,} | {a['filtered']:,} "
            f"({a['junk_planted']:,}) | {a['duplicate']:,} | {a['quarantined']:,} | {a['balanced']} |"
        )
    if "storage" in run:
        st = run["storage"]
        lines += [
            "",
            f"Storage: {st['shard_bytes'] / MB:,.1f} MB of shards for {st['trained_tokens']:,} trained "
            f"tokens ({st['stored_tokens']:,} stored, {st['padding_tokens']:,} padding): "
            f"**{st['shard_bytes_per_trained_token']} shard bytes per trained token**; every step wrote "
            f"{st['written_gb_per_text_gb']} GB per GB of text ("
            + ", ".join(f"{k} {v}" for k, v in st["written_gb_per_text_gb_by_step"].items() if v)
            + ").",
        ]
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    """Return the report as Markdown."""
    lines = _header(report)
    for run in report["runs"]:
        lines += _run_section(run, report["corpus"]["text_bytes"])
    if "scaling" in report:
        s = report["scaling"]
        lines.append(f"Scaling efficiency 1 → {s['workers']} workers: {s['efficiency']}")
    return "\n".join(lines) + "\n"


def scaling(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the scaling efficiency from the fewest to the most workers: (wall_1 / wall_n) / (n / 1)."""
    if len(runs) < 2:
        return None
    low, high = min(runs, key=lambda r: r["workers"]), max(runs, key=lambda r: r["workers"])
    speedup = low["wall_s"] / high["wall_s"]
    return {"workers": high["workers"], "efficiency": round(speedup * low["workers"] / high["workers"], 3)}


# --- commands -----------------------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> None:
    """Write the corpus and print its ground truth's summary."""
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty")
    truth = scale_corpus.generate(
        scale_corpus.parse_size(args.size), out, args.seed, args.file_mb, processes=args.processes
    )
    summary = {
        k: truth[k] for k in ("bytes", "text_bytes", "documents", "rates", "timings", "generation_mb_per_s")
    }
    print(json.dumps(summary, indent=1))


def cmd_run(args: argparse.Namespace) -> None:
    """Build the corpus at each worker count; print and write the report."""
    corpus = Path(args.corpus).resolve()
    truth = json.loads((corpus / scale_corpus.GROUND_TRUTH).read_text())
    output = Path(args.output or f"{corpus}-runs").resolve()
    output.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine(),
        "corpus": {k: v for k, v in truth.items() if k != "pairs"},
    }
    report["runs"] = []
    for workers in [int(w) for w in args.workers.split(",")]:
        tokenizer = Path(args.tokenizer).resolve() if args.tokenizer else None
        report["runs"].append(
            measure(
                corpus,
                output,
                workers,
                truth,
                args.docs_per_partition,
                args.shape,
                tokenizer,
                args.stage_tokens,
            )
        )
        if not args.keep:
            shutil.rmtree(output / f"build-w{workers}")
    if (s := scaling(report["runs"])) is not None:
        report["scaling"] = s
    text = markdown(report)
    (output / "scale-report.md").write_text(text)
    (output / "scale-report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(text)
    print(f"written: {output / 'scale-report.md'} and .json")


def cmd_report(args: argparse.Namespace) -> None:
    """Print the Markdown of a JSON report again (e.g. after the report's format changed)."""
    print(markdown(json.loads(Path(args.report).read_text())))


def cmd_compare(args: argparse.Namespace) -> None:
    """Print, per step across reports, the largest task's peak RSS and what the task itself added over its
    reused worker's starting RSS, with their spreads."""
    for key, title in (("peak_rss_mb", "process peak RSS MB"), ("task_rss_mb", "the task's own peak MB")):
        print(f"\n{title}\n")
        compare_key(args, key)


def compare_key(args: argparse.Namespace, key: str) -> None:
    """Print one figure (`key` of each step) across the reports' runs, and its spread."""
    reports = [json.loads(Path(p).read_text()) for p in args.reports]
    names = [f"{r['corpus']['bytes'] / 1e9:.2f} GB w{run['workers']}" for r in reports for run in r["runs"]]
    runs = [run for r in reports for run in r["runs"]]
    steps = list(dict.fromkeys(s["step"] for run in runs for s in run["steps"]))
    print("| step | " + " | ".join(names) + " | spread |")
    print("|---|" + "---:|" * (len(names) + 1))
    for step in steps:
        peaks = [next((s.get(key) for s in run["steps"] if s["step"] == step), None) for run in runs]
        known = [p for p in peaks if p and p > 0]
        spread = f"{(max(known) / min(known) - 1):.1%}" if known else "-"
        print(f"| {step} | " + " | ".join(f"{p:,.0f}" if p else "-" for p in peaks) + f" | {spread} |")


def cmd_gain(args: argparse.Namespace) -> None:
    """Print, per worker count, text MB per CPU second end to end and per step in two reports of one corpus
    (before and after), and the ratio."""
    before, after = (json.loads(Path(p).read_text()) for p in (args.before, args.after))
    if (
        before["corpus"]["bytes"] != after["corpus"]["bytes"]
        or before["corpus"]["seed"] != after["corpus"]["seed"]
    ):
        raise SystemExit("the two reports are of different corpora")
    text = after["corpus"]["text_bytes"]
    print(
        f"{text / MB:,.0f} MB of text; CPU seconds of the steps' tasks (wall time is not compared); "
        "steps of at least 1% of the CPU\n"
    )
    print("| workers | figure | before | after | after / before |")
    print("|---:|---|---:|---:|---:|")
    for old in before["runs"]:
        new = next((r for r in after["runs"] if r["workers"] == old["workers"]), None)
        if new is None:
            continue
        a, b = cpu_figures(old, text), cpu_figures(new, text)
        w = old["workers"]
        print(
            f"| {w} | CPU seconds, all steps | {a['cpu_seconds']:,} | {b['cpu_seconds']:,} | "
            f"{b['cpu_seconds'] / a['cpu_seconds']:.3f} |"
        )
        print(
            f"| {w} | **text MB per CPU second, end to end** | {a['text_mb_per_cpu_s']} | "
            f"{b['text_mb_per_cpu_s']} | **{b['text_mb_per_cpu_s'] / a['text_mb_per_cpu_s']:.3f}** |"
        )
        for step, fig in a["steps"].items():
            now = b["steps"].get(step)
            if now is None or max(fig["share"], now["share"]) < 0.01:  # the small steps: in the reports
                continue
            ratio = now["input_mb_per_cpu_s"] / fig["input_mb_per_cpu_s"] if fig["input_mb_per_cpu_s"] else 0
            print(
                f"| {w} | {step}: input MB per CPU second (share of CPU) | {fig['input_mb_per_cpu_s']} "
                f"({fig['share']:.1%}) | {now['input_mb_per_cpu_s']} ({now['share']:.1%}) | {ratio:.3f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a corpus")
    gen.add_argument("--size", required=True, help="compressed bytes on disk, e.g. 200MB, 1GB")
    gen.add_argument("--out", required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--file-mb", type=float, default=100.0, help="compressed MB per file")
    gen.add_argument("--processes", type=int, default=2)
    gen.set_defaults(func=cmd_generate)
    run = commands.add_parser("run", help="build a corpus at each worker count and report")
    run.add_argument("--corpus", required=True)
    run.add_argument("--workers", default="1,2")
    run.add_argument("--output", help="default: <corpus>-runs")
    run.add_argument("--keep", action="store_true", help="keep the builds")
    run.add_argument("--docs-per-partition", type=int, default=DOCS_PER_PARTITION)
    run.add_argument("--shape", choices=["curriculum", "tinyllama"], default="curriculum")
    run.add_argument("--tokenizer", help="tokenizer directory (with evaluation.json); default: the corpus's")
    run.add_argument(
        "--stage-tokens", type=int, help="--shape tinyllama: the stage's budget (default: 3× est.)"
    )
    run.set_defaults(func=cmd_run)
    again = commands.add_parser("report", help="print a JSON report as Markdown")
    again.add_argument("report")
    again.set_defaults(func=cmd_report)
    compare = commands.add_parser("compare", help="peak task RSS per step across reports")
    compare.add_argument("reports", nargs="+")
    compare.set_defaults(func=cmd_compare)
    gain = commands.add_parser("gain", help="text MB per CPU second before and after, one corpus")
    gain.add_argument("before")
    gain.add_argument("after")
    gain.set_defaults(func=cmd_gain)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
