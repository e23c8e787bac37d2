"""Real evaluation items planted in real documents: decontamination's recall and false-positive corpus.

Each plant puts one item of a packaged evaluation set into a longer document every machine has (the
language reference's pages for prose, the standard library's sources for code items), in one of three
forms, disguised (case, whitespace and punctuation changed; words kept):

- `whole`: the item as a page would print it: the prompt, then the choices lettered ("A.", "(b)", "C)" …)
  and sometimes "Answer: B"; or the prompt and then its answer, solution or code;
- `question`: the prompt alone (only where it has at least `min_words` words: a shorter question is no
  evidence on its own, so it is not planted alone, and `plant_items` counts what it left out);
- `lines`: the whole item re-flowed into short lines of two to five words.

For tests and bench/decontam_bench.py; nothing in a build imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from gristmill.pipelines.decontam.items import BenchmarkSet, Item
from gristmill.pipelines.decontam.words import word_list
from gristmill.sample.text import doc_topics, python_modules

FORMS = ("whole", "question", "lines")
CODE_SETS = frozenset({"humaneval", "mbpp"})
_LABELS = ("{}.", "({})", "{})", "{}:", "{} -")
_PUNCTUATION = ".,;:?!\"'()"


@dataclass(frozen=True)
class Plant:
    """A host document with one item planted in it."""

    benchmark: str
    item_id: str
    form: str
    host: int  # the host document's position in its list
    text: str


def prose_hosts(min_chars: int = 2000) -> list[str]:
    """The language reference's pages of at least `min_chars` characters, in key order."""
    return [t for t in doc_topics() if len(t) >= min_chars]


def code_hosts(min_chars: int = 2000, limit: int = 400) -> list[str]:
    """Standard-library modules of at least `min_chars` characters, in path order (the first `limit`)."""
    return [t for _, t in python_modules() if len(t) >= min_chars][:limit]


def _lettered(item: Item, rng: Random) -> str:
    style = rng.choice(_LABELS)
    upper = rng.random() < 0.5
    lines = [" ".join(item.prompt)]
    for i, choice in enumerate(item.choices):
        letter = chr(ord("A" if upper else "a") + i)
        lines.append(f"{style.format(letter)} {choice}")
    if rng.random() < 0.5:
        lines.append(f"Answer: {chr(ord('A') + rng.randrange(len(item.choices)))}")
    return "\n".join(lines)


def render(item: Item, form: str, rng: Random, min_words: int = 8) -> str | None:
    """Return the item's text in `form`, undisguised; None for a `question` shorter than `min_words`."""
    if form == "question":
        prompt = " ".join(item.prompt)
        return prompt if len(word_list(prompt)) >= min_words else None
    if len(item.choices) >= 2:
        whole = _lettered(item, rng)
    else:
        whole = "\n".join(item.prompt + item.choices + item.text[:1])
    if form == "whole":
        return whole
    lines, line = [], []
    for piece in whole.split():
        line.append(piece)
        if len(line) >= rng.randint(2, 5):
            lines.append(" ".join(line))
            line = []
    return "\n".join([*lines, " ".join(line)] if line else lines)


def disguise(text: str, rng: Random) -> str:
    """Change case, spacing and punctuation, never a letter or digit: the words stay the same."""
    case = rng.choice(("upper", "lower", "title", "swap", "keep"))
    text = {"upper": str.upper, "lower": str.lower, "title": str.title, "swap": str.swapcase}.get(
        case, lambda t: t
    )(text)
    out = []
    for ch in text:
        if ch in _PUNCTUATION and rng.random() < 0.5:
            out.append(rng.choice(_PUNCTUATION + " "))
        elif ch == " " and rng.random() < 0.3:
            out.append(rng.choice(("  ", "\t", "\n", " \n ")))
        else:
            out.append(ch)
    return "".join(out)


def embed(host: str, text: str, rng: Random) -> str:
    """Put `text` between two lines of `host`, away from its ends."""
    breaks = [i for i, ch in enumerate(host) if ch == "\n" and len(host) // 5 < i < 4 * len(host) // 5]
    at = rng.choice(breaks) if breaks else len(host) // 2
    return host[:at] + "\n\n" + text + "\n\n" + host[at:]


def plant_items(
    sets: list[BenchmarkSet],
    per_set: int,
    prose: list[str],
    code: list[str],
    seed: int = 0,
    min_words: int = 8,
) -> tuple[list[Plant], dict[str, int]]:
    """Plant `per_set` items of each set (drawn with `seed`) in each form; return the plants and, per set,
    how many `question` plants were left out because the prompt is shorter than `min_words` words."""
    rng = Random(seed)
    plants: list[Plant] = []
    short: dict[str, int] = {}
    for bench in sets:
        hosts = code if bench.name in CODE_SETS else prose
        for item in rng.sample(bench.items, min(per_set, len(bench.items))):
            for form in FORMS:
                rendered = render(item, form, rng, min_words)
                if rendered is None:
                    short[bench.name] = short.get(bench.name, 0) + 1
                    continue
                host = rng.randrange(len(hosts))
                text = embed(hosts[host], disguise(rendered, rng), rng)
                plants.append(Plant(bench.name, item.id, form, host, text))
    return plants, short
