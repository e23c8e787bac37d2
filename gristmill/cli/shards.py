"""`gristmill shards inspect|verify|show BUILD`: look into a build's shards."""

from __future__ import annotations

import json

import click


@click.group()
def shards() -> None:
    """Inspect, verify and read a build's packed shards.

    \b
    Examples:
      gristmill shards inspect build/demo
      gristmill shards verify build/demo --json
      gristmill shards show build/demo --stage long --row 0
    """


@shards.command("inspect")
@click.argument("build")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def inspect(build: str, as_json: bool) -> None:
    """Show the stages (shards, rows, tokens, padding, split documents) and the mixture per source.

    \b
    Example:
      gristmill shards inspect build/demo
    """
    from rich.console import Console

    from gristmill.shards.inspect import build_summary, mixture_table, stage_table
    from gristmill.shards.manifest import read_manifest

    summary = build_summary(read_manifest(build))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    console.print(stage_table(summary))
    console.print(mixture_table(summary))


@shards.command("verify")
@click.argument("build")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def verify(build: str, as_json: bool) -> None:
    """Check every shard: checksum, schema, doc_offsets, token ids, tokens per source. Exits 1 on a problem.

    \b
    Example:
      gristmill shards verify build/demo
    """
    from gristmill.shards.verify import verify_build

    report = verify_build(build)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            click.echo(f"build: {problem}", err=True)
        for shard in report.shards:
            for problem in shard.problems:
                click.echo(f"{shard.path}: {problem}", err=True)
        bad = sum(not s.ok for s in report.shards)
        rows = sum(s.rows for s in report.shards)
        verdict = "ok" if report.ok else f"FAILED ({bad} bad shards)"
        click.echo(f"{len(report.shards)} shards, {rows:,} rows: {verdict}")
    if not report.ok:
        raise SystemExit(1)


@shards.command("show")
@click.argument("build")
@click.option("--stage", required=True, help="stage name or number (from 1)")
@click.option("--row", type=int, required=True, help="row of the stage, from 0, across its shards")
def show(build: str, stage: str, row: int) -> None:
    """Print one row as text, with the document boundaries marked.

    \b
    Example:
      gristmill shards show build/demo --stage 1 --row 12
    """
    from gristmill.shards.inspect import read_row, render_row
    from gristmill.shards.manifest import read_manifest
    from gristmill.tokenizer.interface import Tokenizer

    manifest = read_manifest(build)
    where, content = read_row(build, manifest, stage, row)
    tokenizer = Tokenizer.load(
        build.rstrip("/") + "/" + (manifest.tokenizer.path if manifest.tokenizer else "tokenizer")
    )
    click.echo(f"{where.shard} row {where.row}")
    click.echo(render_row(content, tokenizer.decode, tokenizer.eos_id, manifest.sources[content.source].name))
