"""The `gristmill` command's wiring: help for every noun, errors as messages naming file and field."""

from __future__ import annotations

from click.testing import CliRunner

from gristmill.cli import COMMANDS, cli


def test_help_lists_every_available_command_with_an_example():
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = cli.list_commands(None)
    assert "recipe" in listed and "build" in listed
    for name in listed:
        assert name in result.output
        sub = runner.invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Example" in sub.output, f"`gristmill {name} --help` shows no example"
    assert set(listed) <= set(COMMANDS)


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output
