"""`gristmill build RECIPE`: run a recipe end to end on Ray."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(dir_okay=False))
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    help="Ray cluster to run on (default: RAY_ADDRESS, else an embedded local Ray)",
)
@click.option("--workers", type=int, default=None, help="most tasks run at once (default: as many as fit)")
@click.option("--num-cpus", type=int, default=None, help="CPUs of the embedded local Ray (default: all)")
@click.option(
    "--task-retries",
    type=int,
    default=3,
    show_default=True,
    help="times a task is run again after its worker process or node was lost",
)
@click.option(
    "--task-timeout",
    type=float,
    default=4 * 3600.0,
    show_default=True,
    metavar="SECONDS",
    help="a task running longer is cancelled and the build fails naming it (0: no limit)",
)
@click.option("--strict", is_flag=True, help="stop at the first bad record instead of quarantining it")
@click.option("--fresh", is_flag=True, help="delete the output directory first instead of resuming")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a recipe field")
@click.option("--json", "as_json", is_flag=True, help="print the manifest's accounting as JSON on stdout")
def build(
    recipe_path: str,
    address: str | None,
    workers: int | None,
    num_cpus: int | None,
    task_retries: int,
    task_timeout: float,
    strict: bool,
    fresh: bool,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Build a corpus: read, filter, dedupe, tokenize and pack the recipe's sources.

    Runs on an embedded local Ray unless --address (or RAY_ADDRESS) names a cluster. A rerun resumes: tasks
    that finished are skipped. The manifest (BUILD/manifest.json) is written last.

    \b
    Examples:
      gristmill build recipes/demo.yaml
      gristmill build recipes/tinyllama.yaml --set output=s3://bucket/tinyllama --address auto
      ray job submit --working-dir . -- gristmill build recipes/demo.yaml
    """
    from gristmill.models import parse_override
    from gristmill.pipelines.build.driver import BuildOptions, run_build
    from gristmill.pipelines.build.ray_tasks import RetryPolicy
    from gristmill.pipelines.recipe import load_recipe

    recipe = load_recipe(recipe_path, dict(parse_override(o) for o in overrides))
    policy = RetryPolicy(retries=task_retries, task_timeout_s=task_timeout or None)
    manifest = run_build(
        recipe,
        BuildOptions(
            address=address, workers=workers, num_cpus=num_cpus, strict=strict, fresh=fresh, policy=policy
        ),
    )
    if as_json:
        accounting = {
            s: {sub: c.model_dump(by_alias=True) for sub, c in subs.items()}
            for s, subs in manifest.accounting.items()
        }
        click.echo(json.dumps({"output": recipe.output, "accounting": accounting}, indent=2))
