"""The `gristmill` command's wiring: help for every noun, errors as messages naming file and field."""

from __future__ import annotations

import click
from click.testing import CliRunner

from gristmill.cli import cli


def _commands(group: click.Group, ctx: click.Context, path: list[str]):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield [*path, name], command
        if isinstance(command, click.Group):
            yield from _commands(command, click.Context(command, parent=ctx), [*path, name])


def test_every_command_and_subcommand_has_help_with_an_example():
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = cli.list_commands(None)
    assert {"sample", "recipe", "build", "tokenizer", "shards", "report", "train", "export"} <= set(listed)
    seen = 0
    for path, _ in _commands(cli, click.Context(cli), []):
        sub = runner.invoke(cli, [*path, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Example" in sub.output, f"`gristmill {' '.join(path)} --help` shows no example"
        seen += 1
    assert seen >= 14  # the nouns and their verbs (tokenizer train|eval, shards inspect|verify|show, …)


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output
