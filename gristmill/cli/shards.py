"""`gristmill shards inspect|verify|show|trace|find|takedown BUILD`: look into a build's shards, follow a
row to its documents and a document to its rows and training steps, take documents out."""

from __future__ import annotations

import json

import click


@click.group()
def shards() -> None:
    """Inspect, verify and read a build's packed shards; trace rows and documents; take documents out.

    \b
    Examples:
      gristmill shards inspect build/demo
      gristmill shards verify build/demo --json
      gristmill shards show build/demo --stage long --row 0
      gristmill shards trace build/demo --stage long --row 0
      gristmill shards find build/demo --doc ID --config runs/demo.yaml
      gristmill shards takedown build/demo --ids ids.txt
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


def _tokenizer(build: str, manifest):
    """Return the build's tokenizer (a remote build's files copied to a temporary folder first)."""
    import tempfile

    from gristmill.shards.paths import check_relative, confined
    from gristmill.storage import download_tree, is_local
    from gristmill.tokenizer.interface import Tokenizer

    path = manifest.tokenizer.path if manifest.tokenizer else "tokenizer"
    if is_local(build):
        return Tokenizer.load(confined(build.removeprefix("file://"), path))
    with tempfile.TemporaryDirectory(prefix="gristmill-tokenizer-") as copy:
        download_tree(f"{build.rstrip('/')}/{check_relative(path)}", copy)
        return Tokenizer.load(copy)


def _schedule(build: str, manifest, config: str, world_size: int):
    from gristmill.trainer.config import load_train_config
    from gristmill.trainer.data_steps import RunSchedule

    return RunSchedule.of(load_train_config(config), manifest, world_size)


@shards.command("trace")
@click.argument("build")
@click.option("--stage", help="stage name or number (from 1), with --row")
@click.option("--row", type=int, help="row of the stage, from 0, across its shards")
@click.option("--step", type=int, help="an optimizer step of a training run (from 1), with --config")
@click.option("--config", "config", help="the run's training config (runs/X.yaml), with --step")
@click.option("--world-size", type=int, default=1, show_default=True, help="devices of the run (--step)")
@click.option("--excerpt", type=int, default=160, show_default=True, help="characters of each segment shown")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def trace(
    build: str,
    stage: str | None,
    row: int | None,
    step: int | None,
    config: str | None,
    world_size: int,
    excerpt: int,
    as_json: bool,
) -> None:
    """Show the documents of a row (id, source, subset, input file and record, token span, an excerpt),
    or the rows a training step reads on each rank.

    \b
    Examples:
      gristmill shards trace build/demo --stage short --row 12
      gristmill shards trace build/demo --step 7 --config runs/demo.yaml --world-size 2
    """
    from gristmill.shards.manifest import read_manifest
    from gristmill.shards.trace import trace_row

    if (
        (stage is None) != (row is None)
        or (step is None) != (config is None)
        or (row is None) == (step is None)
    ):
        raise click.UsageError("give either --stage and --row, or --step and --config")
    manifest = read_manifest(build)
    if step is None:
        found = trace_row(build, manifest, stage, row)
        decode = _tokenizer(build, manifest).decode
        click.echo(json.dumps(found.to_dict(decode), indent=2) if as_json else found.render(decode, excerpt))
        return
    rows = _schedule(build, manifest, config, world_size).step_rows(step)
    click.echo(json.dumps(rows.to_dict(), indent=2) if as_json else rows.render())


@shards.command("find")
@click.argument("build")
@click.option("--doc", "doc_id", required=True, help="the document id, as the build records it")
@click.option("--config", "config", help="a training config (runs/X.yaml): also the steps reading each row")
@click.option("--world-size", type=int, default=1, show_default=True, help="devices of the run (--config)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def find(build: str, doc_id: str, config: str | None, world_size: int, as_json: bool) -> None:
    """Find every row holding a document, and with --config the training steps that read those rows.
    Exits 1 when the build's rows hold no document with that id.

    \b
    Examples:
      gristmill shards find build/demo --doc "pile/pile-00.jsonl.zst:17"
      gristmill shards find build/demo --doc "pile/pile-00.jsonl.zst:17" --config runs/demo.yaml
    """
    from gristmill.shards.manifest import read_manifest
    from gristmill.shards.trace import find_document

    manifest = read_manifest(build)
    places = find_document(build, manifest, doc_id)
    schedule = _schedule(build, manifest, config, world_size) if config else None
    found = []
    for place in places:
        reads = schedule.row_steps(place.stage, [place.stage_row]) if schedule else []
        found.append((place, reads))
    if as_json:
        click.echo(
            json.dumps(
                [
                    p.to_dict() | ({"steps": [r.__dict__ for r in reads]} if schedule else {})
                    for p, reads in found
                ],
                indent=2,
            )
        )
    else:
        for place, reads in found:
            click.echo(
                f"stage {place.stage!r} row {place.stage_row} ({place.shard} row {place.row}): "
                f"tokens {place.start}–{place.start + place.length - 1} of the document"
            )
            if schedule:
                steps = ", ".join(f"{r.step} (micro-batch {r.micro_batch}, rank {r.rank})" for r in reads)
                click.echo(f"  read at step {steps}" if reads else "  read at no step of this run")
        if not found:
            click.echo(f"no row of {build} holds a document with id {doc_id!r}", err=True)
    if not found:
        raise SystemExit(1)


@shards.command("takedown")
@click.argument("build")
@click.option(
    "--ids", "ids_file", required=True, type=click.File("r"), help="file of document ids, one a line"
)
@click.option("--dry-run", is_flag=True, help="say what would be taken out, change nothing")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def takedown(build: str, ids_file, dry_run: bool, as_json: bool) -> None:
    """Take documents out of the build: rewrite only the shards holding them (their segments leave the rows,
    the rest move left; rows stay where they are, so training resumes across it), their provenance and the
    document index; record the removal (counts and hashes, never the ids) in the manifest, and write the
    build report again.

    \b
    Examples:
      gristmill shards takedown build/demo --ids removal-request.txt --dry-run
      gristmill shards takedown build/demo --ids removal-request.txt
    """
    from gristmill.pipelines.build.layout import BuildLayout
    from gristmill.pipelines.build.report import REPORT_NAME, write_report
    from gristmill.shards.takedown import takedown as take_down
    from gristmill.storage import exists

    report = take_down(build, ids_file, dry_run=dry_run)
    if report.content_hash and exists(BuildLayout(build).report_file(REPORT_NAME)):
        write_report(build)  # its accounting shows what was removed
    if as_json:
        click.echo(json.dumps(report.to_dict() | {"dry_run": dry_run}, indent=2))
        return
    verb = "would take out" if dry_run else "took out"
    click.echo(
        f"{len(report.found)} of {report.requested} ids found; {verb} {report.documents} documents: "
        f"{report.segments} segments, {report.tokens:,} tokens from {report.rows} rows "
        f"({report.emptied_rows} left empty) in {len(report.shards)} shards"
    )
    for source, subsets in report.removed.items():
        for subset, n in subsets.items():
            click.echo(f"  {source}/{subset}: {n}")
    if report.content_hash:
        click.echo(f"manifest content hash {report.content_hash}")
