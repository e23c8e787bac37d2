"""The `gristmill` command: wires one command group per noun, loaded lazily so `--help` stays fast."""

from __future__ import annotations

import importlib
import importlib.util

import click

from gristmill import __version__
from gristmill.errors import GristmillError

# command name → "module:attribute"; each module is one noun's file in this package.
COMMANDS = {
    "sample": "gristmill.cli.sample:sample",
    "recipe": "gristmill.cli.recipe:recipe",
    "build": "gristmill.cli.build:build",
    "tokenizer": "gristmill.cli.tokenizer:tokenizer",
    "shards": "gristmill.cli.shards:shards",
    "report": "gristmill.cli.report:report",
    "decontam": "gristmill.cli.decontam:decontam",
    "train": "gristmill.cli.train:train",
    "export": "gristmill.cli.export:export",
    "classifier": "gristmill.cli.classifier:classifier",
    "eval": "gristmill.cli.eval:eval_command",
    "ablate": "gristmill.cli.ablate:ablate",
}


class UserError(click.ClickException):
    """A GristmillError shown as `error: <file>:<where>: <message>` with exit code 1 and no traceback (click
    keeps 2 for a command line it cannot parse)."""

    exit_code = 1

    def format_message(self) -> str:
        return self.message


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used, and whose library errors become messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [
            name
            for name, target in COMMANDS.items()
            if importlib.util.find_spec(target.partition(":")[0]) is not None
        ]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or name not in self.list_commands(ctx):
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GristmillError as e:
            raise UserError(str(e)) from e


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="gristmill")
def cli() -> None:
    """Build small-LM pretraining data and train on it.

    \b
    Examples:
      gristmill sample sample/                 # write the bundled sample corpus
      gristmill build recipes/demo.yaml        # read, clean, dedupe, tokenize, pack
      gristmill shards inspect build/demo      # what a build holds
    """


def main() -> None:
    """Run the CLI (the `gristmill` console script)."""
    cli(prog_name="gristmill")
