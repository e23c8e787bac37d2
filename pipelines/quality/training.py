"""The classifier a build trains (`quality.train`): a seeded sample of each side's documents, split by a hash
of the text into training and held-out documents, trained deterministically, its held-out figures and what
it was trained from (`training_sha256`) recorded in its card."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gristmill.errors import ConfigError, InputError
from gristmill.pipelines.quality.labelled import split
from gristmill.pipelines.quality.model import ModelCard, normalise, train_classifier
from gristmill.pipelines.quality.sampling import RuleJudge, SampleCounts, sample_training_set, shares
from gristmill.pipelines.readers import READERS
from gristmill.pipelines.recipe import Recipe


def training_sha256(recipe: Recipe) -> str:
    """Return the sha256 of what decides a classifier trained in the build: the recipe's `quality.train`,
    the settings of the sources it names (where their files are, which subsets they read, their profiles)
    and the filter settings that judge their documents. Raises ValueError when the recipe trains none."""
    train = recipe.quality.train
    if train is None:
        raise ValueError("the recipe has no quality.train")
    named = sorted({e.source for e in [*train.real, *train.junk] if e.source is not None})
    content = recipe.content()
    decided = {
        "train": train.model_dump(mode="json"),
        "per_file": recipe.quality.sample_per_file,
        "sources": [s for s in content["sources"] if s["name"] in named],
        "filters": content["filters"] if named else None,
    }
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()


def check_training_subsets(recipe: Recipe) -> None:
    """Raise ConfigError naming the field when a `quality.train` entry names subsets its source's corpus does
    not have (only corpora whose subsets are a fixed list, `known_subsets`, can be checked before reading):
    the sample would read every file looking for them."""
    train = recipe.quality.train
    for side in ("real", "junk") if train is not None else ():
        for i, entry in enumerate(getattr(train, side)):
            if entry.source is None or entry.subsets is None:
                continue
            known = READERS[recipe.source(entry.source).format].known_subsets
            unknown = [] if known is None else [s for s in entry.subsets if s not in known]
            if unknown:
                raise ConfigError(
                    f"{unknown} are not subsets of {entry.source!r} (a {recipe.source(entry.source).format} "
                    f"corpus; its subsets: {', '.join(sorted(known))})",
                    where=f"quality.train.{side}.{i}.subsets",
                )


def training_sample(recipe: Recipe) -> tuple[list[str], list[str], SampleCounts]:
    """Return (real texts, junk texts, counts): up to `documents` of each side, shared evenly by its entries,
    each drawn by `sampling.sample_training_set` with the training settings' seed, and kept as the model
    reads it (`normalise`: its first `max_words` words, lowercased), which bounds the sample's memory."""
    train = recipe.quality.train
    if train is None:
        raise ValueError("the recipe has no quality.train")
    check_training_subsets(recipe)
    judge = RuleJudge(recipe)
    counts = SampleCounts()
    sides = []
    for entries in (train.real, train.junk):
        texts: list[str] = []
        for entry, target in zip(entries, shares(train.documents, len(entries))):
            taken = sample_training_set(
                recipe, entry, target, judge, train.settings.seed, recipe.quality.sample_per_file, counts
            )
            texts += [normalise(t, train.settings.max_words) for t in taken]  # all the model sees of each
        sides.append(texts)
    return sides[0], sides[1], counts


def train_from_recipe(recipe: Recipe, out: str | Path) -> ModelCard:
    """Train the recipe's classifier on its sample, holding `heldout_fraction` of each side out by a hash of
    the text; write `out` and its card (held-out figures, `training_sha256`, the sample's counts) and return
    the card. Raises InputError when a side has no document, or a named file cannot be read."""
    train = recipe.quality.train
    if train is None:
        raise ValueError("the recipe has no quality.train")
    real, junk, counts = training_sample(recipe)
    for side, texts in (("real", real), ("junk", junk)):
        if not texts:
            raise InputError(
                f"the sample holds no {side} documents (read {counts.records:,} records in {counts.files} "
                f"files; {counts.dropped:,} dropped by the rule sets, {counts.unreadable:,} unreadable)",
                where=f"quality.train.{side}",
                hint="name subsets the sources hold, whose documents the rule sets keep",
            )
    settings = train.settings
    real_train, real_test = split(real, settings.heldout_fraction)
    junk_train, junk_test = split(junk, settings.heldout_fraction)
    return train_classifier(
        real_train,
        junk_train,
        out,
        settings,
        held_out=(real_test, junk_test),
        train_sha256=training_sha256(recipe),
        sample=counts.to_dict(),
    )
