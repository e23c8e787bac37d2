"""`gristmill ablate ABLATION.yaml`: the same proxy on every candidate recipe, ranked beyond seed noise."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override an ablation field")
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    help="Ray cluster to build and train on, one task per run (`local`: an embedded Ray on this machine); "
    "default: builds on an embedded Ray, runs one after another in this process",
)
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
def ablate(config: str, overrides: tuple[str, ...], address: str | None, as_json: bool) -> None:
    """Build each candidate, train the same proxy on each for the same tokens with every seed, evaluate all
    on one evaluation set no candidate trained on, and rank them: per metric the mean and seed spread, and
    per pair whether the difference is beyond the seed noise (Welch's t-test). A rerun resumes builds and
    runs and skips what is done. Writes OUTPUT/results.json and OUTPUT/report.html (with the curves).

    \b
    Examples:
      gristmill sample ablation-sample --kind ablation
      gristmill ablate ablations/clean-vs-junk.yaml
      gristmill ablate ablations/clean-vs-junk.yaml --set tokens_per_param=5 --set output=/tmp/quick
      gristmill ablate ablations/recipes-150m.yaml --address auto      # a Ray cluster with GPUs
    """
    from gristmill.ablate.config import load_ablation
    from gristmill.ablate.runner import run_ablation
    from gristmill.models import parse_override

    settings = load_ablation(config, dict(parse_override(o) for o in overrides))
    summary = run_ablation(settings, address=address, console=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)


def print_summary(summary: dict) -> None:
    """Print the primary metric's ranking and decisions, then every run's tokens and time."""
    from rich.console import Console
    from rich.table import Table

    from gristmill.ablate.report import decision_word

    console = Console()
    for metric, entry in summary["metrics"].items():
        if metric != summary["primary"] and not metric.startswith("text_bpb/"):
            continue
        direction = "higher" if entry["higher_is_better"] else "lower"
        table = Table(title=f"{metric} ({direction} is better)")
        for column in ("rank", "candidate", "mean", "std", "min", "max"):
            table.add_column(column, justify="left" if column == "candidate" else "right")
        for r in entry["ranking"]:
            table.add_row(
                str(r["rank"]),
                r["candidate"],
                f"{r['mean']:.4f}",
                f"{r['std']:.4f}",
                f"{r['low']:.4f}",
                f"{r['high']:.4f}",
            )
        console.print(table)
        for p in entry["pairs"]:
            console.print(
                f"  {p['better']} vs {p['worse']}: {p['difference']:+.4f} (Welch t {p['t']:.2f}, "
                f"p {p['p']:.3g}): {decision_word(p)}"
            )
    runs = Table(title="runs")
    for column in ("candidate", "seed", "tokens", "wall s", "tokens/s"):
        runs.add_column(column, justify="left" if column == "candidate" else "right")
    for r in summary["runs"]:
        rate = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "—"
        runs.add_row(r["candidate"], str(r["seed"]), f"{r['tokens']:,}", f"{r['wall_s']:.0f}", rate)
    console.print(runs)
    other = [m for m in summary["metrics"] if m != summary["primary"] and not m.startswith("text_bpb/")]
    if other:
        console.print(f"(and {len(other)} more metric(s) in results.json and report.html)")
