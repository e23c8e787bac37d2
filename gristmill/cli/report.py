"""`gristmill report BUILD`: (re)build a build's HTML report."""

from __future__ import annotations

import click


@click.command()
@click.argument("build", metavar="BUILD")
def report(build: str) -> None:
    """Write BUILD/reports/index.html: accounting, filter reasons, decontamination, duplicate overlap,
    lengths, stages.

    \b
    Example:
      gristmill report build/demo && xdg-open build/demo/reports/index.html
    """
    from gristmill.pipelines.build.report import write_report

    click.echo(write_report(build))
