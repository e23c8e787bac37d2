"""Train a tokenizer end to end: sample by mixture, train the backend, write the output directory, evaluate.

The output directory holds tokenizer.json (always), tokenizer.model (sentencepiece backends),
settings.json (everything that decided the result), sample-manifest.json and sample/ (the seeded sample),
and evaluation.json (held-out compression, byte-fallback and unknown rates, vocabulary use, round trip).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import progress as bar
from rich.console import Console
from rich.table import Table

from gristmill.storage import atomic_write, write_json
from gristmill.tokenizer.config import TokenizerTrainConfig
from gristmill.tokenizer.corpus import Document
from gristmill.tokenizer.evaluate import Evaluation, evaluate
from gristmill.tokenizer.interface import HF_FILE, SP_FILE, Tokenizer
from gristmill.tokenizer.sample import Sample, draw_sample

SETTINGS_FILE = "settings.json"
EVALUATION_FILE = "evaluation.json"


@dataclass
class TrainedTokenizer:
    """What `train_tokenizer` made: the loaded tokenizer, its evaluation, settings and timings (seconds)."""

    tokenizer: Tokenizer
    out_dir: Path
    evaluation: Evaluation
    settings: dict[str, Any]
    sample: dict[str, Any]
    timings: dict[str, float]


def _sample(
    config: TokenizerTrainConfig,
    documents: Iterable[Document],
    weights: dict[str, float] | None,
    seed: int,
    console: Console,
) -> Sample:
    columns = [
        bar.TextColumn("[bold]sampling"),
        bar.BarColumn(),
        bar.DownloadColumn(),
        bar.TransferSpeedColumn(),
        bar.TextColumn("{task.fields[docs]:,} documents"),
        bar.TimeElapsedColumn(),
    ]
    with bar.Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("sample", total=None, docs=0)
        seen = [0, 0]

        def tick(size: int) -> None:
            seen[0] += 1
            seen[1] += size
            if seen[0] % 512 == 0:
                progress.update(task, completed=seen[1], docs=seen[0])

        sample = draw_sample(
            documents,
            config.sample_bytes,
            seed,
            weights,
            config.heldout_bytes,
            config.heldout_fraction,
            on_document=tick,
        )
        progress.update(task, completed=seen[1], docs=seen[0])
    return sample


def _train_backend(
    config: TokenizerTrainConfig, texts: list[str], out: Path, console: Console
) -> tuple[dict[str, Any], dict[str, float]]:
    """Train the backend on `texts`; write tokenizer.json (and .model); return settings and timings."""
    with console.status("training") as status:

        def say(text: str) -> None:
            status.update(text)
            if not console.is_terminal:
                console.print(text)

        if config.backend == "hf-bpe":
            from gristmill.tokenizer.train_hf import train_hf

            hf = train_hf(config, texts, status=say)
            with atomic_write(str(out / HF_FILE), "w") as f:
                f.write(hf.tokenizer_json)
            return {"trainer": hf.settings, "padded_with_unused": hf.padded}, hf.timings
        from gristmill.tokenizer.hf_json import sentencepiece_to_json
        from gristmill.tokenizer.train_sentencepiece import train_sentencepiece

        workdir = out / ".work"
        try:
            sp = train_sentencepiece(config, texts, workdir, status=say)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        with atomic_write(str(out / SP_FILE)) as f:
            f.write(sp.model)
        with atomic_write(str(out / HF_FILE), "w") as f:
            f.write(sentencepiece_to_json(sp.model))
        escapes = {"newline": sp.escapes.newline, "tab": sp.escapes.tab}
        return {
            "trainer": sp.settings,
            "input": sp.input_mode,
            "padded_with_unused": sp.padded,
            "training_escapes": {k: f"U+{ord(v):04X}" if v else None for k, v in escapes.items()},
            "long_lines_split": {"lines": sp.split.lines, "parts": sp.split.parts},
        }, sp.timings


def train_tokenizer(
    config: TokenizerTrainConfig,
    documents: Iterable[Document],
    out_dir: str | Path,
    weights: dict[str, float] | None = None,
    seed: int | None = None,
    console: Console | None = None,
    name: str | None = None,
) -> TrainedTokenizer:
    """Sample `documents` (text, source, subset) by `weights`, train, write `out_dir`; return the result.

    `name` titles the summary table (default: `out_dir`; a build trains in a temporary directory).

    `seed` defaults to `config.seed`, then 0. Raises InputError for an empty corpus or a vocabulary the
    sample cannot fill; progress and a summary table go to `console` (stderr by default).
    """
    console = console or Console(stderr=True)
    seed = seed if seed is not None else (config.seed if config.seed is not None else 0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sample = _sample(config, documents, weights, seed, console)
    sample.write(out)
    timings["sample_s"] = time.perf_counter() - started
    started = time.perf_counter()
    backend_settings, backend_timings = _train_backend(config, [t for t, _, _ in sample.train], out, console)
    timings.update(backend_timings, total_train_s=time.perf_counter() - started)
    settings = {
        "config": config.model_dump(mode="json"),
        "seed": seed,
        "weights": weights,
        **backend_settings,
    }
    write_json(str(out / SETTINGS_FILE), settings)
    tokenizer = Tokenizer.load(out)
    started = time.perf_counter()
    evaluation = evaluate(tokenizer, sample.heldout)  # named by content hash: no path in the output
    timings["evaluate_s"] = time.perf_counter() - started
    write_json(str(out / EVALUATION_FILE), evaluation.to_dict())
    title = f"tokenizer {name or out} ({config.backend}, vocab {tokenizer.vocab_size:,})"
    console.print(summary_table(evaluation, title))
    return TrainedTokenizer(
        tokenizer=tokenizer,
        out_dir=out,
        evaluation=evaluation,
        settings=settings,
        sample=sample.manifest(),
        timings=timings,
    )


def summary_table(evaluation: Evaluation, title: str) -> Table:
    """Return a rich table of the held-out evaluation per source and in total."""
    table = Table(title=title)
    for col in (
        "source",
        "docs",
        "tokens",
        "bytes/token",
        "chars/token",
        "tokens/word",
        "byte fallback",
        "unknown",
        "round trip",
    ):
        table.add_column(col, justify="left" if col == "source" else "right")
    rows = [*sorted(evaluation.sources.items()), ("total", evaluation.total)]
    for name, counts in rows:
        s = counts.summary()
        table.add_row(
            name,
            f"{counts.docs:,}",
            f"{counts.tokens:,}",
            f"{s['bytes_per_token']:.2f}",
            f"{s['chars_per_token']:.2f}",
            f"{s['tokens_per_word']:.2f}",
            f"{s['byte_fallback_rate']:.2%}",
            f"{s['unknown_rate']:.2%}",
            "lossless" if s["round_trip_lossless"] else f"{counts.docs - counts.lossless} lossy",
        )
    table.caption = f"held-out documents; vocabulary use {evaluation.vocab_used:,}/{evaluation.vocab_size:,}"
    return table
