"""Seeded samples of a recipe's documents, spread over its files: what the build trains its classifier on,
what a profile's `top_fraction` is resolved on, and what `recipe check` scores.

A source's files are visited in an order drawn from the seed, and each visited file gives at most a quota of
documents (`per_file`, or more when the sample's size needs more of each file), so a sample is spread over
as many files as it can fill, never the first file's first documents alone. A document is taken when its
subset is one the sample wants and its profile's rule sets keep it: the classifier learns, and is
calibrated on, the documents it will score in the build. Records a reader cannot read are passed over and
counted (`SampleCounts.unreadable`), as ingest quarantines them; files named by `files` are read as
`gristmill classifier train` reads them, and a bad one is an InputError naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields
from random import Random

from datatrove.data import Document

from gristmill.pipelines.config.quality import TrainingSet
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.filters.guard import guarded
from gristmill.pipelines.filters.profiles import ProfileScope
from gristmill.pipelines.readers import reader_for, source_files
from gristmill.pipelines.readers.base import BadRecord
from gristmill.pipelines.recipe import Recipe, SourceConfig
from gristmill.storage import expand
from gristmill.tokenizer.corpus import read_files

_BATCH = 64  # documents judged by the rule sets at a time
PATH_KEY = "repo_path"  # where a code source's documents keep their file path (rule sets judging by type)


@dataclass
class SampleCounts:
    """What drawing a sample took: files opened, records read, records passed over unreadable, documents
    the rule sets dropped."""

    files: int = 0
    records: int = 0
    unreadable: int = 0
    dropped: int = 0

    def add(self, other: SampleCounts) -> None:
        """Add `other`'s counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, int]:
        """Return the counts as a plain dict (for cards and JSON files)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def seeded_order(items: list[str], seed: int, salt: str) -> list[str]:
    """Return `items` shuffled by `seed` and `salt` (a name that gives each sample its own order)."""
    out = sorted(items)
    Random(f"{seed}/{salt}").shuffle(out)
    return out


def file_quota(target: int, files: int, per_file: int) -> int:
    """Return the documents one file may give to a sample of `target` from `files` files: `per_file`, or
    more when even every file giving `per_file` would not reach the target."""
    return max(per_file, math.ceil(target / max(files, 1)))


def shares(total: int, parts: int) -> list[int]:
    """Return `total` split into `parts` near-equal integers, the larger ones first."""
    return [total // parts + (i < total % parts) for i in range(parts)]


class RuleJudge:
    """A recipe's rule sets by profile, asked which of a batch of documents their profile keeps (the ingest
    chain's verdict, without the recipe's own datatrove steps)."""

    def __init__(self, recipe: Recipe) -> None:
        self.scope = ProfileScope.of_recipe(recipe)
        limit = recipe.filters.max_seconds_per_document
        self.rule_sets = {
            name: [guarded(rules, limit) for rules in make_filters(recipe.filters, name)]
            for name in recipe.filters.profiles
        }

    def profile(self, source: str, subset: str) -> str | None:
        """Return the profile of `source`'s `subset`."""
        return self.scope.profile(source, subset)

    def kept(self, docs: list[Document]) -> list[Document]:
        """Return the documents of `docs` that every rule set of their profile keeps, in order (a document
        a rule set spent too long on is not kept)."""
        keep = [True] * len(docs)
        by_profile: dict[str | None, list[int]] = {}
        for i, doc in enumerate(docs):
            by_profile.setdefault(self.profile(doc.metadata["source"], doc.metadata["subset"]), []).append(i)
        for profile, where in by_profile.items():
            for rules in self.rule_sets.get(profile, []) if profile is not None else []:
                judged = [i for i in where if keep[i]]
                if not judged:
                    break
                paths = [docs[i].metadata.get(PATH_KEY) for i in judged]
                verdicts = rules.check_batch([docs[i].text for i in judged], paths if any(paths) else None)
                for i, verdict in zip(judged, verdicts):
                    keep[i] = verdict is None
        return [doc for doc, k in zip(docs, keep) if k]


def sample_source(
    source: SourceConfig,
    bucket_of: Callable[[str], Hashable | None],
    targets: dict[Hashable, int],
    judge: RuleJudge,
    seed: int,
    per_file: int,
    counts: SampleCounts,
) -> dict[Hashable, list[str]]:
    """Return bucket → texts: a seeded sample of `source`'s documents, up to `targets[bucket]` in each.

    `bucket_of(subset)` says which bucket a subset's documents go to (None: not wanted; subsets the source
    does not read are never wanted). Files are visited in a seeded order until every bucket is full or the
    files run out; a file gives each bucket at most its `file_quota`. Counts go into `counts`."""
    files = seeded_order(source_files(source), seed, source.name)
    quotas = {bucket: file_quota(target, len(files), per_file) for bucket, target in targets.items()}
    taken: dict[Hashable, list[str]] = {bucket: [] for bucket in targets}
    reader = reader_for(source)

    def full(bucket: Hashable) -> bool:
        return len(taken[bucket]) >= targets[bucket]

    def done_with(bucket: Hashable) -> bool:
        return full(bucket) or in_file[bucket] >= quotas[bucket]

    for path in files:
        if all(full(b) for b in targets):
            break
        counts.files += 1
        in_file = dict.fromkeys(targets, 0)
        pending: list[tuple[Hashable, Document]] = []
        for record in reader.iter_file(path):
            if isinstance(record, BadRecord):
                counts.unreadable += 1
                continue
            counts.records += 1
            subset = record.metadata["subset"]
            bucket = bucket_of(subset) if source.wants_subset(subset) else None
            if bucket is None or bucket not in targets:
                continue
            if in_file[bucket] + sum(b == bucket for b, _ in pending) >= quotas[bucket] or full(bucket):
                _take(pending, judge, taken, targets, in_file, counts)  # judged: the room left is known
                pending = []
                if all(done_with(b) for b in targets):
                    break
                if done_with(bucket):
                    continue
            pending.append((bucket, record))
            if len(pending) >= _BATCH:
                _take(pending, judge, taken, targets, in_file, counts)
                pending = []
        _take(pending, judge, taken, targets, in_file, counts)
    return taken


def _take(
    pending: list[tuple[Hashable, Document]],
    judge: RuleJudge,
    taken: dict[Hashable, list[str]],
    targets: dict[Hashable, int],
    in_file: dict[Hashable, int],
    counts: SampleCounts,
) -> None:
    kept = {id(doc) for doc in judge.kept([doc for _, doc in pending])}
    for bucket, doc in pending:
        if id(doc) not in kept:
            counts.dropped += 1
        elif len(taken[bucket]) < targets[bucket]:
            taken[bucket].append(doc.text)
            in_file[bucket] += 1


def sample_files(
    patterns: list[str], target: int, seed: int, per_file: int, counts: SampleCounts
) -> list[str]:
    """Return up to `target` texts of the files matching `patterns`, visited in a seeded order, each giving
    at most its `file_quota`. Raises InputError naming a file that matches nothing or cannot be read."""
    paths = sorted({path for pattern in patterns for path in expand(pattern)})
    files = seeded_order(paths, seed, "files")
    quota = file_quota(target, len(files), per_file)
    texts: list[str] = []
    for path in files:
        if len(texts) >= target:
            break
        counts.files += 1
        for n, (text, _, _) in enumerate(read_files([path])):
            counts.records += 1
            texts.append(text)
            if n + 1 >= quota or len(texts) >= target:
                break
    return texts


def sample_training_set(
    recipe: Recipe,
    entry: TrainingSet,
    target: int,
    judge: RuleJudge,
    seed: int,
    per_file: int,
    counts: SampleCounts,
) -> list[str]:
    """Return up to `target` texts of one training entry: its source's subsets (every subset the source
    reads when it names none), judged by their profiles' rule sets, or its files as they are."""
    if entry.files is not None:
        return sample_files(entry.files, target, seed, per_file, counts)
    source = recipe.source(str(entry.source))
    wanted = None if entry.subsets is None else set(entry.subsets)
    taken = sample_source(
        source,
        lambda subset: 0 if wanted is None or subset in wanted else None,
        {0: target},
        judge,
        seed,
        per_file,
        counts,
    )
    return taken[0]


def profile_sample(
    recipe: Recipe, profiles: list[str], per_source: int, seed: int, per_file: int, counts: SampleCounts
) -> dict[str, list[str]]:
    """Return profile → texts: up to `per_source` documents of each of `profiles` from each source (of the
    subsets it reads, that their profile's rule sets keep), every source sampled in its seeded file order."""
    judge = RuleJudge(recipe)
    out: dict[str, list[str]] = {profile: [] for profile in profiles}
    for source in recipe.sources:
        possible = set(judge.scope.source_patterns.get(source.name, {}).values()) & set(profiles)
        if not possible:
            continue
        taken = sample_source(
            source,
            lambda subset, name=source.name: judge.profile(name, subset),
            dict.fromkeys(sorted(possible), per_source),
            judge,
            seed,
            per_file,
            counts,
        )
        for profile, texts in taken.items():
            out[str(profile)] += texts
    return out
