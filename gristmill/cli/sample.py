"""`gristmill sample OUT`: write the bundled sample corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="the same seed writes the same bytes")
@click.option("--force", is_flag=True, help="write into a non-empty OUT, replacing an earlier sample there")
@click.option(
    "--kind",
    type=click.Choice(["corpora", "ablation", "quality"]),
    default="corpora",
    show_default=True,
    help="corpora: the four native layouts; ablation: one corpus heavy with junk and duplicates, and clean "
    "evaluation text kept out of it (for `gristmill ablate`); quality: real and junk documents to train and "
    "evaluate a quality classifier on (for `gristmill classifier`)",
)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def sample(out: str, seed: int, force: bool, kind: str, as_json: bool) -> None:
    """Write a small corpus (a few MB) in the native layouts of SlimPajama, Starcoderdata, Dolma and the Pile.

    Code comes from the Python standard library, prose from its reference text and docstrings. Exact and
    near duplicates and low-quality documents are planted on purpose and listed in OUT/PLANTED.json. With
    --kind ablation: OUT/corpus/ (clean prose, a large share of junk, exact and near copies) and
    OUT/eval/clean.jsonl (clean prose that is not in the corpus), counted in OUT/ABLATION.json. With
    --kind quality: OUT/train/ and OUT/heldout/, each real.jsonl (Python's docs and code) and junk.jsonl
    (boilerplate and shop pages, degenerate text), counted in OUT/QUALITY.json.

    \b
    Examples:
      gristmill sample sample/
      gristmill sample /tmp/corpus --seed 7 --force
      gristmill sample ablation-sample --kind ablation
      gristmill sample quality-sample --kind quality
    """
    from gristmill.errors import InputError
    from gristmill.sample.ablation import SUMMARY_FILE, write_ablation_sample
    from gristmill.sample.corpus import PLANTED_FILE, SOURCES, write_sample
    from gristmill.sample.quality import SUMMARY_FILE as QUALITY_FILE
    from gristmill.sample.quality import write_quality_sample

    target = Path(out)
    if target.exists() and any(target.iterdir()):
        if not force:
            raise InputError(
                "the output directory is not empty",
                path=out,
                hint="pick an empty directory, or pass --force to replace the sample there",
            )
        for name in (*SOURCES, "corpus", "eval", "train", "heldout"):  # only what an earlier sample wrote
            shutil.rmtree(target / name, ignore_errors=True)
        for name in (PLANTED_FILE, SUMMARY_FILE, QUALITY_FILE):
            (target / name).unlink(missing_ok=True)
    if kind == "quality":
        summary = write_quality_sample(out)
        if as_json:
            click.echo(json.dumps(summary, indent=2))
            return
        for name, counts in summary.items():
            click.echo(f"{name}: {counts['documents']:,} documents, {counts['bytes']:,} bytes")
        return
    if kind == "ablation":
        summary = write_ablation_sample(out, seed=seed)
        if as_json:
            click.echo(json.dumps(summary, indent=2))
            return
        for name, counts in {**summary["corpus"], "evaluation (not in the corpus)": summary["eval"]}.items():
            click.echo(f"{name}: {counts['documents']:,} documents, {counts['bytes']:,} bytes")
        return
    summary = write_sample(out, seed=seed)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sample corpus in {summary['out_dir']} (seed {summary['seed']})")
    for column, justify in (
        ("source", "left"),
        ("files", "right"),
        ("bytes", "right"),
        ("subset", "left"),
        ("records", "right"),
    ):
        table.add_column(column, justify=justify)
    for source, subsets in summary["records"].items():
        for i, (subset, count) in enumerate(subsets.items()):
            first = i == 0
            table.add_row(
                source if first else "",
                str(len(summary["files"][source])) if first else "",
                f"{summary['bytes'][source]:,}" if first else "",
                subset,
                f"{count:,}",
                end_section=i == len(subsets) - 1,
            )
    console = Console()
    console.print(table)
    planted = "; ".join(f"{kind.replace('_', ' ')}: {n}" for kind, n in summary["planted"].items())
    console.print(f"planted ({PLANTED_NOTE}): {planted}")


PLANTED_NOTE = "listed in PLANTED.json"
