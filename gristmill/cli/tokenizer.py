"""`gristmill tokenizer train|eval`: train a tokenizer from a recipe's documents or files; evaluate one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click

from gristmill.errors import ConfigError, InputError


def _pairs(values: tuple[str, ...], option: str) -> dict[str, float]:
    out = {}
    for value in values:
        name, sep, weight = value.partition("=")
        try:
            out[name] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise click.BadParameter(
                f"{value!r} is not of the form SOURCE=WEIGHT (e.g. web=0.7)", param_hint=option
            )
    return out


def _file_documents(files: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    from gristmill.tokenizer.corpus import read_files

    for spec in files:
        source, sep, pattern = spec.partition("=")
        if sep and "/" not in source and "*" not in source:
            yield from read_files([pattern], source=source)
        else:
            yield from read_files([spec])


def _recipe_input(recipe_path: str, build: str | None) -> tuple[list[str], dict[str, float] | None, Any]:
    """Return the cleaned-document files of a recipe's build, its mixture weights, and the recipe."""
    from gristmill.pipelines.build.layout import BuildLayout
    from gristmill.pipelines.recipe import load_recipe
    from gristmill.pipelines.steps.tokenizer import mixture_weights
    from gristmill.storage import filesystem

    recipe = load_recipe(recipe_path)
    layout = BuildLayout(build or recipe.output)
    for kind in ("clean", "documents"):
        fs, inner = filesystem(layout.documents_dir(kind))
        files = sorted(fs.glob(inner + "/*/*.parquet")) if fs.isdir(inner) else []
        if files:
            break
    else:
        raise InputError(
            "the build has no cleaned documents (clean/ or documents/ parquet files)",
            path=layout.root,
            hint=f"run the cleaning steps: gristmill build {recipe_path}",
        )
    # the tokenizer sees the sources as the whole curriculum will; without stages, as the corpus has them
    weights = mixture_weights(recipe) if recipe.stages else None
    return [fs.unstrip_protocol(f) if "://" in layout.root else f for f in files], weights, recipe


def _documents(recipe: str | None, build: str | None, files: tuple[str, ...]):
    if bool(recipe) == bool(files):
        raise click.UsageError("give either --recipe or --files")
    if recipe:
        from gristmill.tokenizer.corpus import read_files

        paths, weights, parsed = _recipe_input(recipe, build)
        return read_files(paths), weights, parsed
    return _file_documents(files), None, None


@click.group()
def tokenizer() -> None:
    """Train tokenizers (sentencepiece BPE/unigram, HF byte-level BPE) and evaluate any tokenizer.

    \b
    Examples:
      gristmill tokenizer train tok/ --files 'data/**/*.jsonl.zst' --vocab-size 32000
      gristmill tokenizer train tok/ --recipe recipes/demo.yaml --profile llama2
      gristmill tokenizer eval tok/ --files 'held-out/*.parquet'
    """


@tokenizer.command("train")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--recipe", help="train on this recipe's cleaned documents, mixed by its stage weights")
@click.option("--build", help="build directory of the recipe (default: the recipe's output)")
@click.option("--files", multiple=True, help="file/glob, or SOURCE=GLOB to name its source (repeatable)")
@click.option("--weight", "weights", multiple=True, help="SOURCE=WEIGHT mixture weight (repeatable)")
@click.option("--backend", type=click.Choice(["sentencepiece-bpe", "sentencepiece-unigram", "hf-bpe"]))
@click.option("--profile", type=click.Choice(["llama2"]), help="Llama 2's sentencepiece settings exactly")
@click.option("--vocab-size", type=int)
@click.option("--character-coverage", type=float)
@click.option("--sample-bytes", type=int, help="bytes of documents to train on")
@click.option("--special-token", "special_tokens", multiple=True, help="extra special token (repeatable)")
@click.option("--user-symbol", "user_symbols", multiple=True, help="user-defined symbol (repeatable)")
@click.option("--pad-to-multiple", type=int, help="pad the vocabulary with unused tokens to a multiple")
@click.option(
    "--newline-pieces/--no-newline-pieces",
    default=None,
    help="sentencepiece: train on whole documents so \\n and \\t get pieces (default on)",
)
@click.option(
    "--count-pretokens",
    type=click.Choice(["auto", "always", "never"]),
    help="sentencepiece: train from pre-token counts (bounded memory)",
)
@click.option(
    "--hf-pretokenizer",
    type=click.Choice(["llama3", "bounded"]),
    help="hf-bpe: Llama 3's split pattern (default), or runs cut at 16 characters (less trainer memory)",
)
@click.option("--threads", type=int, help="trainer threads")
@click.option("--seed", type=int, help="sampling seed (default: the recipe's, else 0)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def train(
    out: str,
    recipe: str | None,
    build: str | None,
    files: tuple[str, ...],
    weights: tuple[str, ...],
    as_json: bool,
    seed: int | None,
    **options: Any,
) -> None:
    """Sample documents by mixture (seeded), train a tokenizer into OUT, and evaluate it on held-out text.

    OUT gets tokenizer.json (loadable by transformers' PreTrainedTokenizerFast), tokenizer.model
    (sentencepiece), settings.json, sample-manifest.json and evaluation.json.

    \b
    Examples:
      gristmill tokenizer train tok/ --files 'web=data/web/*.parquet' --files 'code=data/code/*.jsonl' \\
          --weight web=0.7 --weight code=0.3 --vocab-size 32000 --pad-to-multiple 128
      gristmill tokenizer train tok/ --recipe recipes/tinyllama.yaml --build build/tinyllama
      gristmill tokenizer train tok-hf/ --files 'docs/*.txt' --backend hf-bpe --vocab-size 8000 --json
    """
    from gristmill.tokenizer.config import TokenizerTrainConfig
    from gristmill.tokenizer.train import train_tokenizer

    documents, recipe_weights, parsed = _documents(recipe, build, files)
    base: dict[str, Any] = {}
    if parsed is not None and parsed.tokenizer is not None and parsed.tokenizer.train is not None:
        base = parsed.tokenizer.train.model_dump(exclude_unset=True)
    renames = {
        "user_symbols": "user_defined_symbols",
        "pad_to_multiple": "pad_vocab_to_multiple_of",
        "threads": "num_threads",
    }
    for key, value in options.items():
        if value is not None and value != ():
            base[renames.get(key, key)] = list(value) if isinstance(value, tuple) else value
    try:
        config = TokenizerTrainConfig(**base)
    except ValueError as e:
        raise ConfigError(f"invalid tokenizer settings: {e}") from None
    if seed is None and parsed is not None:
        seed = config.seed if config.seed is not None else parsed.seed
    result = train_tokenizer(
        config, documents, out, weights=_pairs(weights, "--weight") or recipe_weights, seed=seed
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "out": str(result.out_dir),
                    "hash": result.tokenizer.content_hash,
                    "vocab_size": result.tokenizer.vocab_size,
                    "timings": result.timings,
                    "sample": result.sample,
                    "evaluation": result.evaluation.to_dict(),
                },
                indent=2,
            )
        )


@tokenizer.command("eval")
@click.argument("tokenizers", nargs=-1, required=True)
@click.option("--recipe", help="evaluate on this recipe's cleaned documents")
@click.option("--build", help="build directory of the recipe (default: the recipe's output)")
@click.option("--files", multiple=True, help="file/glob, or SOURCE=GLOB (repeatable)")
@click.option(
    "--max-bytes",
    type=int,
    default=20_000_000,
    show_default=True,
    help="evaluate on a seeded sample of this many bytes",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the evaluation(s) as JSON")
def evaluate_command(
    tokenizers: tuple[str, ...],
    recipe: str | None,
    build: str | None,
    files: tuple[str, ...],
    max_bytes: int,
    seed: int,
    as_json: bool,
) -> None:
    """Evaluate one tokenizer, or two side by side: bytes/token, chars/token, tokens/word, byte fallback.

    TOKENIZER is a tokenizer directory, a tokenizer.json or a sentencepiece .model.

    \b
    Examples:
      gristmill tokenizer eval tok/ --files 'held-out/*.parquet'
      gristmill tokenizer eval tok/ llama2/tokenizer.model --recipe recipes/demo.yaml --json
    """
    from rich.console import Console
    from rich.table import Table

    from gristmill.tokenizer.evaluate import comparison_rows, evaluate
    from gristmill.tokenizer.interface import Tokenizer
    from gristmill.tokenizer.sample import draw_sample
    from gristmill.tokenizer.train import summary_table

    if len(tokenizers) > 2:
        raise click.UsageError("give one tokenizer, or two to compare")
    loaded = [Tokenizer.load(t) for t in tokenizers]
    documents, weights, _ = _documents(recipe, build, files)
    docs = draw_sample(documents, max_bytes, seed, weights).train
    evaluations = [evaluate(tok, docs, name=name) for tok, name in zip(loaded, tokenizers)]
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in evaluations], indent=2))
        return
    console = Console()
    for evaluation in evaluations:
        console.print(summary_table(evaluation, f"{evaluation.tokenizer} (vocab {evaluation.vocab_size:,})"))
    if len(evaluations) == 2:
        table = Table(title="side by side")
        for col in ("group", "metric", tokenizers[0], tokenizers[1], "ratio"):
            table.add_column(col, justify="left" if col in ("group", "metric") else "right")
        for group, metric, a, b in comparison_rows(*evaluations):
            table.add_row(group, metric, f"{a:.4f}", f"{b:.4f}", f"{b / a:.3f}" if a else "-")
        console.print(table)
