"""The tokenizer step: copy the recipe's tokenizer into BUILD/tokenizer/, or train one there.

One task. Training reads the clean documents (after dedupe), sampled by the recipe's mixture: each source's
weight is its share of all stage tokens. On local disk the directory appears whole (trained in a temporary
directory, then renamed), so a rerun skips a finished tokenizer and redoes a half-written one. On an object
store it is trained on the task's scratch disk and uploaded file by file; the step's completion marker,
written after the upload, is what says it is whole (a rerun of an unfinished step uploads it again).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from datatrove.data import DocumentsPipeline
from rich.console import Console

from gristmill.pipelines.build.engine import Step
from gristmill.pipelines.build.layout import TOKENIZER_TEMP_PREFIX, BuildLayout
from gristmill.pipelines.documents import read_documents
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps.base import WritingStep
from gristmill.storage import current_umask, download_tree, is_local, upload_tree
from gristmill.tokenizer.hf_export import write_tokenizer_config
from gristmill.tokenizer.interface import Tokenizer

DEFAULT_MODEL_MAX_LENGTH = 2048  # tokenizer_config.json's model_max_length for a build without stages
_TRAINING_GB_PER_CPU = 2.0  # sentencepiece holds the sample and its pieces: ~1.5 GB at the 200 MB default


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
        files.setdefault(source, []).append(layout.clean_file(source, task))
    return files


def _make_tokenizer(
    recipe: Recipe,
    layout: BuildLayout,
    inputs: list[tuple[str, int]],
    directory: str,
    console: Console | None,
) -> None:
    """Copy or train the recipe's tokenizer into the local `directory`, with the tokenizer_config.json that
    lets transformers' AutoTokenizer load it and encode a text as the build frames a document."""
    config = recipe.tokenizer
    if config.path is not None:
        Tokenizer.load(config.path).save(directory)
    else:
        _train(recipe, layout, inputs, directory, console)
    longest = max((stage.seq_len for stage in recipe.stages), default=DEFAULT_MODEL_MAX_LENGTH)
    write_tokenizer_config(directory, Tokenizer.load(directory), model_max_length=longest)


def _train(
    recipe: Recipe,
    layout: BuildLayout,
    inputs: list[tuple[str, int]],
    directory: str,
    console: Console | None,
) -> None:
    from gristmill.tokenizer.train import train_tokenizer

    config = recipe.tokenizer
    documents = (
        (doc.text, doc.metadata["source"], doc.metadata["subset"])
        for files in clean_files(layout, inputs).values()
        for path in files
        for doc in read_documents(path, columns=["text", "source", "subset"])
    )
    seed = config.train.seed if config.train.seed is not None else recipe.seed
    train_tokenizer(
        config.train,
        documents,
        directory,
        weights=mixture_weights(recipe),
        seed=seed,
        console=console,
        name=layout.tokenizer_dir,
    )


def prepare_tokenizer(
    recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]], console: Console | None = None
) -> Tokenizer:
    """Make BUILD/tokenizer/ hold the recipe's tokenizer (on local disk: unless it already does) and
    return it."""
    target = layout.tokenizer_dir
    local = is_local(target)
    if local and os.path.isdir(target.removeprefix("file://")):
        return Tokenizer.load(target.removeprefix("file://"))
    tmp = tempfile.mkdtemp(
        prefix=TOKENIZER_TEMP_PREFIX, dir=layout.root.removeprefix("file://") if local else None
    )
    try:
        _make_tokenizer(recipe, layout, inputs, tmp, console)
        if local:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700 directories
            os.replace(tmp, target.removeprefix("file://"))
        else:
            upload_tree(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _LOCAL_COPIES.pop(target, None)
    return load_build_tokenizer(layout)


_LOCAL_COPIES: dict[str, tempfile.TemporaryDirectory] = {}  # URL → this process's local copy of it


def load_build_tokenizer(layout: BuildLayout) -> Tokenizer:
    """Load the build's tokenizer, BUILD/tokenizer/; from an object store, through a local copy made once per
    process (the tokenizer of a build does not change once its step is complete)."""
    target = layout.tokenizer_dir
    if is_local(target):
        return Tokenizer.load(target.removeprefix("file://"))
    if target not in _LOCAL_COPIES:
        copy = tempfile.TemporaryDirectory(prefix="gristmill-tokenizer-")
        download_tree(target, copy.name)
        _LOCAL_COPIES[target] = copy
    return Tokenizer.load(_LOCAL_COPIES[target].name)


class PrepareTokenizer(WritingStep):
    """Copies or trains the build's tokenizer into BUILD/tokenizer/ (one task)."""

    name = "tokenizer"
    type = "🔤 - TOKENIZER TRAINING"

    def __init__(self, recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]]) -> None:
        super().__init__()
        self.recipe = recipe
        self.layout = layout
        self.inputs = inputs

    def write(self, data: DocumentsPipeline, rank: int, world_size: int) -> None:
        tokenizer = prepare_tokenizer(self.recipe, self.layout, self.inputs, Console(stderr=True))
        self.stat_update("vocab_size", value=tokenizer.vocab_size)


def tokenizer_step(recipe: Recipe, layout: BuildLayout, inputs: list[tuple[str, int]]) -> Step:
    """Return the step that gives the build its tokenizer; it takes the CPUs its trainer uses."""
    train = recipe.tokenizer.train if recipe.tokenizer.path is None else None
    cpus = train.num_threads if train is not None else 1
    return Step(
        "tokenizer",
        [PrepareTokenizer(recipe, layout, inputs)],
        tasks=1,
        cpus_per_task=cpus,
        mem_per_cpu_gb=_TRAINING_GB_PER_CPU if train is not None else 1.0,
    )
