"""The build's tokenizer phase: copy the recipe's tokenizer into BUILD/tokenizer/, or train one there.

Training reads the clean documents (after dedupe), sampled by the recipe's mixture: each source's weight
is its share of all stage tokens. The directory appears whole (trained in a temporary directory, then
renamed), so a rerun skips a finished tokenizer and redoes a half-written one.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from rich.console import Console

from gristmill.pipelines.documents import read_documents
from gristmill.pipelines.layout import BuildLayout
from gristmill.pipelines.recipe import Recipe
from gristmill.storage import current_umask
from gristmill.tokenizer.interface import Tokenizer

TOKENIZER_DIR = "tokenizer"


def mixture_weights(recipe: Recipe) -> dict[str, float]:
    """Return each source's share of all stage tokens (equal shares when the recipe has no stages)."""
    if not recipe.stages:
        return {s.name: 1.0 / len(recipe.sources) for s in recipe.sources}
    weights: dict[str, float] = {}
    total = sum(stage.tokens for stage in recipe.stages)
    for stage in recipe.stages:
        for name, share in stage.shares().items():
            weights[name] = weights.get(name, 0.0) + share * stage.tokens / total
    return weights


def clean_files(layout: BuildLayout, inputs: list[tuple[str, int]]) -> dict[str, list[str]]:
    """Return source → its clean document files, in task order."""
    files: dict[str, list[str]] = {}
    for source, task in sorted(inputs):
        files.setdefault(source, []).append(layout.task_file("clean", source, task, "parquet"))
    return files


def prepare_tokenizer(
    recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], console: Console
) -> Tokenizer:
    """Make BUILD/tokenizer/ hold the recipe's tokenizer (unless it already does) and return it."""
    target = layout.path(TOKENIZER_DIR)
    if os.path.isdir(target):
        return Tokenizer.load(target)
    config = recipe.tokenizer
    tmp = tempfile.mkdtemp(prefix=".tokenizer.", dir=layout.root)
    try:
        if config.path is not None:
            Tokenizer.load(config.path).save(tmp)
        else:
            from gristmill.tokenizer.train import train_tokenizer

            documents = (
                (doc.text, doc.metadata["source"], doc.metadata["subset"])
                for files in clean_files(layout, inputs).values()
                for path in files
                for doc in read_documents(path, columns=["text", "source", "subset"])
            )
            seed = config.train.seed if config.train.seed is not None else recipe.seed
            train_tokenizer(
                config.train, documents, tmp, weights=mixture_weights(recipe), seed=seed, console=console,
                name=target,
            )
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700 directories
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    console.print(f"tokenizer: {target}")
    return Tokenizer.load(target)
