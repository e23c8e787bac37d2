"""`gristmill classifier train|eval`: train the quality classifier from real and junk files; evaluate one."""

from __future__ import annotations

import json

import click


def _print_evaluation(evaluation, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        click.echo(json.dumps({**(extra or {}), **evaluation.to_dict()}, indent=2))
        return
    for key, value in (extra or {}).items():
        click.echo(f"{key}: {value}")
    click.echo(
        f"held-out documents: {evaluation.documents:,} ({evaluation.real:,} real, {evaluation.junk:,} junk)\n"
        f"at score ≥ {evaluation.threshold:g}: precision {evaluation.precision:.4f}, "
        f"recall {evaluation.recall:.4f}\n"
        f"ROC AUC: {evaluation.roc_auc:.4f}"
    )


def _scored(model, real: list[str], junk: list[str]):
    import numpy as np

    labels = np.r_[np.ones(len(real), dtype=bool), np.zeros(len(junk), dtype=bool)]
    return labels, model.score(real + junk)


@click.group()
def classifier() -> None:
    """Train the quality classifier a recipe's `quality.model` names, and evaluate it.

    \b
    Examples:
      gristmill classifier train --real 'wiki/*.jsonl' --junk 'web/*.jsonl.zst' --out quality.bin
      gristmill classifier eval quality.bin --real held/real.jsonl --junk held/junk.jsonl
    """


@classifier.command()
@click.option("--real", "real_files", multiple=True, required=True, help="files or globs of real text")
@click.option("--junk", "junk_files", multiple=True, required=True, help="files or globs of junk text")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the model file to write (.bin)")
@click.option("--set", "overrides", multiple=True, help="a training setting, KEY=VALUE (e.g. dim=64, seed=1)")
@click.option("--json", "as_json", is_flag=True, help="print the held-out figures as JSON")
def train(real_files, junk_files, out, overrides, as_json) -> None:
    """Train a fastText classifier of real against junk text; print its figures on held-out documents.

    Files are parquet or jsonl (a `text` field; .zst/.gz too), one document per row or line, or any other
    file as one document. `heldout_fraction` of each side (by a hash of the text) is kept out of training.

    \b
    Example:
      gristmill classifier train --real 'docs/*.txt' --junk spam.jsonl --out q.bin --set epoch=10
    """
    from gristmill.models import apply_overrides, parse_override, validated
    from gristmill.pipelines.config.quality import ClassifierSettings
    from gristmill.pipelines.quality import QualityModel, evaluate, train_classifier
    from gristmill.pipelines.quality.labelled import read_texts, split

    given = apply_overrides({}, dict(parse_override(o) for o in overrides))
    settings = validated(ClassifierSettings, given, None, "--set")
    real_train, real_test = split(read_texts(real_files, "real"), settings.heldout_fraction)
    junk_train, junk_test = split(read_texts(junk_files, "junk"), settings.heldout_fraction)
    card = train_classifier(real_train, junk_train, out, settings, held_out=(real_test, junk_test))
    extra = {"model": out, "sha256": card.sha256, "bytes": card.bytes, "trained_on": card.documents}
    if not real_test or not junk_test:
        extra["held_out"] = "none on one side: raise heldout_fraction or give more documents"
        lines = [f"{k}: {v}" for k, v in extra.items()]
        click.echo(json.dumps(extra, indent=2) if as_json else "\n".join(lines))
        return
    labels, scores = _scored(QualityModel.load(out), real_test, junk_test)
    _print_evaluation(evaluate(labels, scores), as_json, extra)


@classifier.command("eval")
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option("--real", "real_files", multiple=True, required=True, help="files or globs of real text")
@click.option("--junk", "junk_files", multiple=True, required=True, help="files or globs of junk text")
@click.option("--threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--sha256", default=None, help="the model file's expected sha256")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def eval_(model_path, real_files, junk_files, threshold, sha256, as_json) -> None:
    """Score labelled documents: precision and recall at --threshold, and ROC AUC.

    \b
    Example:
      gristmill classifier eval q.bin --real held/real.jsonl --junk held/junk.jsonl --threshold 0.8
    """
    from gristmill.pipelines.quality import QualityModel, evaluate
    from gristmill.pipelines.quality.labelled import read_texts

    model = QualityModel.load(model_path, sha256)
    labels, scores = _scored(model, read_texts(real_files, "real"), read_texts(junk_files, "junk"))
    about = {"model": model_path, "sha256": model.sha256}
    _print_evaluation(evaluate(labels, scores, threshold), as_json, about)
