"""Tokenize + pack throughput, gristmill's steps against datatrove's DocumentTokenizer, in one run.

Both encode the same documents with the same tokenizer (a byte-level BPE trained here on the Python docs'
topic pages, replicated to --megabytes of text) on one core (TOKENIZERS_PARALLELISM=false), from the same
parquet file. gristmill: tokenize step → plan step → pack step (length-bucketed best-fit rows of two stages,
Arrow shards, and their provenance) → index step (each stage's document index, where the code has one).
datatrove: DocumentTokenizer (encode, write the token stream, shuffle documents: its default).

Each step's wall and CPU seconds are shown; `--pack-repeats N` runs the pack (and index) tasks N more times
and reports their median CPU seconds. To compare the pack step of two versions of gristmill, run this script
with each on the path (PYTHONPATH=<a copy of the older version laid out as the `gristmill` package>) on one
pinned core, alternating: the script writes only columns the version's document schema has.

    python bench/pack.py [--megabytes 20] [--pack-repeats 5] [--skip-datatrove]

`--rerun-build BUILD` instead reruns the pack (and index) tasks of a finished build (e.g. a scale build) and
prints their CPU seconds, so two versions compare on real shards; give it a hard-linked copy
(`cp -al BUILD COPY`), since the tasks write their files again.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core each: the figure is per core
os.environ.setdefault("LOGURU_LEVEL", "ERROR")


def corpus(megabytes: float) -> list[str]:
    """Return paragraphs and whole pages of the Python docs, repeated (with a counter) to `megabytes`."""
    from gristmill.sample.text import doc_topics, paragraphs

    pages = doc_topics()
    base = [p for page in pages for p in paragraphs(page)] + pages
    docs, size, copy = [], 0, 0
    while size < megabytes * 1e6:
        for text in base:
            doc = f"{copy} {text}"
            docs.append(doc)
            size += len(doc)
        copy += 1
    return docs


def train_tokenizer(directory: Path, texts: list[str]) -> Path:
    """Train an 8K byte-level BPE on `texts` into directory/tokenizer.json; return that file."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=8192,
            special_tokens=["</s>", "<pad>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    return directory / "tokenizer.json"


def _recipe(root: Path, budget: int):
    from gristmill.pipelines.recipe import parse_recipe

    return parse_recipe(
        {
            "name": "bench",
            "seed": 0,
            "output": str(root),
            "sources": [{"name": "docs", "format": "parquet", "paths": ["unused"]}],
            "tokenizer": {"path": str(root / "tokenizer")},
            "stages": [
                {
                    "name": "2k",
                    "seq_len": 2048,
                    "tokens": budget,
                    "tokens_per_step": 2048 * 8,
                    "weights": {"docs": 1},
                },
                {
                    "name": "8k",
                    "seq_len": 8192,
                    "tokens": budget,
                    "tokens_per_step": 8192 * 8,
                    "weights": {"docs": 1},
                },
            ],
        }
    )


def _run(step, layout) -> tuple[float, float]:
    """Run a step's tasks in process; return (wall, CPU) seconds."""
    from gristmill.pipelines.build.engine import run_locally

    start, cpu = time.perf_counter(), time.process_time()
    run_locally([step], layout)
    return time.perf_counter() - start, time.process_time() - cpu


def _rerun(step) -> float:
    """Run every task of a step again (no completion markers); return its CPU seconds."""
    cpu = time.process_time()
    for rank in range(step.tasks):
        for element in step.pipeline:
            for _ in element.run(None, rank, step.tasks):
                pass
    return time.process_time() - cpu


def run_gristmill(root: Path, pack_repeats: int = 0) -> tuple[dict[str, tuple[float, float]], int, dict]:
    import json
    import statistics

    from gristmill.pipelines.build.layout import BuildLayout
    from gristmill.pipelines.steps import shard_steps

    layout, inputs = BuildLayout(str(root)), [("docs", 0)]
    times = {"tokenize": _run(next(shard_steps(_recipe(root, 1), layout, inputs)), layout)}
    tokens = json.loads((root / "tokens" / "docs" / "histogram.json").read_text())["tokens"]
    # two stages take 90% of the tokens: most documents go in once, the rest are dropped
    steps = shard_steps(_recipe(root, int(tokens * 0.45)), layout, inputs, shard_bytes=32 << 20)
    next(steps)  # tokenize: done above
    repeats = {}
    for step in steps:
        times[step.name] = _run(step, layout)
        if pack_repeats and step.name in ("pack", "index"):
            repeats[step.name] = statistics.median(_rerun(step) for _ in range(pack_repeats))
    return times, tokens, repeats


def run_datatrove(root: Path, tokenizer_file: Path, texts: list[str]) -> float:
    from datatrove.data import Document
    from datatrove.pipeline.tokens import DocumentTokenizer

    step = DocumentTokenizer(
        str(root / "dt"),
        tokenizer_name_or_path=str(tokenizer_file),
        eos_token="</s>",
        local_working_dir=str(root / "dt-work"),
    )
    docs = (Document(text=t, id=str(i)) for i, t in enumerate(texts))
    start = time.perf_counter()
    for _ in step.run(docs, rank=0, world_size=1) or ():
        pass
    return time.perf_counter() - start


def write_clean(root: Path, texts: list[str]) -> None:
    """Write the texts as the build's one clean file (the columns this version's document schema has)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gristmill.pipelines.documents import DOCUMENT_SCHEMA

    n = len(texts)
    columns = {
        "id": [str(i) for i in range(n)],
        "text": texts,
        "source": ["docs"] * n,
        "subset": ["all"] * n,
        "metadata": ["{}"] * n,
        "file": ["docs.jsonl"] * n,  # where the documents came from (provenance), if the schema has it
        "record": list(range(1, n + 1)),
        "quality": [None] * n,  # the quality score, if the schema has it
    }
    (root / "clean" / "docs").mkdir(parents=True)
    pq.write_table(
        pa.table({k: columns[k] for k in DOCUMENT_SCHEMA.names}, schema=DOCUMENT_SCHEMA),
        root / "clean" / "docs" / "00000.parquet",
    )


SECTIONS = ("gather_tokens", "token_file_origins", "write_shard")  # functions the pack step calls, by name


def time_sections() -> dict[str, float]:
    """Wrap the pack step's sections (those this version has: `SECTIONS`, and the provenance writer) so that
    they add their CPU seconds to the returned dict."""
    from gristmill.pipelines.steps import pack

    spent: dict[str, float] = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - start

        return run

    for name in SECTIONS:
        if hasattr(pack, name):
            setattr(pack, name, timed(name, getattr(pack, name)))
    if hasattr(pack.PackShards, "_write_provenance"):
        pack.PackShards._write_provenance = timed("write_provenance", pack.PackShards._write_provenance)
    return spent


def rerun_build(build: Path, repeats: int) -> dict[str, list[float]]:
    """Rerun every pack (and index) task of a finished build `repeats` times; return their CPU seconds."""
    import json

    from gristmill.pipelines.build.layout import BuildLayout
    from gristmill.pipelines.recipe import Recipe
    from gristmill.pipelines.steps import shard_steps

    recipe = Recipe.model_validate(
        {**json.loads((build / "recipe.json").read_text())["recipe"], "output": str(build)}
    )
    inputs = [(u["source"], u["task"]) for u in json.loads((build / "work_units.json").read_text())]
    times: dict[str, list[float]] = {}
    for step in shard_steps(recipe, BuildLayout(str(build)), inputs):
        if step.name in ("pack", "index"):
            times[step.name] = [_rerun(step) for _ in range(repeats)]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--pack-repeats", type=int, default=0, help="run pack (and index) this often more")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument(
        "--workdir",
        help="keep the build here, and reuse what is there (steps already done are skipped): to rerun the "
        "pack step of two versions of gristmill on the same tokens and plan",
    )
    parser.add_argument("--rerun-build", help="rerun the pack tasks of this (copied) finished build")
    args = parser.parse_args()
    if args.rerun_build:
        spent = time_sections()
        for name, runs in rerun_build(Path(args.rerun_build), max(1, args.pack_repeats)).items():
            print(f"gristmill {name:>8} of {args.rerun_build}: CPU {' '.join(f'{t:.2f}' for t in runs)} s")
        print("  of which, CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items())))
        return

    texts = corpus(args.megabytes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        tokenizer_file = root / "tokenizer" / "tokenizer.json"
        if not tokenizer_file.exists():
            train_tokenizer(root / "tokenizer", texts[:20_000])
            write_clean(root, texts)
        dt_seconds = None if args.skip_datatrove else run_datatrove(root, tokenizer_file, texts)
        times, tokens, repeats = run_gristmill(root, args.pack_repeats)
    total = sum(wall for wall, _ in times.values())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, one core used; "
        f"{len(texts):,} documents, {sum(map(len, texts)) / 1e6:.1f} MB, {tokens:,} tokens"
    )
    if dt_seconds is not None:
        print(
            f"datatrove DocumentTokenizer: {dt_seconds:7.2f} s  {tokens / dt_seconds / 1e6:6.2f} M tokens/s"
        )
    for name, (wall, cpu) in times.items():
        print(
            f"gristmill {name:>8}:         {wall:7.2f} s  {tokens / wall / 1e6:6.2f} M tokens/s  "
            f"(CPU {cpu:.2f} s)"
        )
    print(f"gristmill all steps:         {total:7.2f} s  {tokens / total / 1e6:6.2f} M tokens/s", end="")
    print(f" = {dt_seconds / total:.2f}× datatrove" if dt_seconds is not None else "")
    for name, cpu in repeats.items():
        print(f"gristmill {name:>8}, median of {args.pack_repeats} reruns: CPU {cpu:.3f} s")


if __name__ == "__main__":
    main()
