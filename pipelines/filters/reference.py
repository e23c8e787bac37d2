"""The reference our filters are held to: datatrove's own filter classes, and documents to compare them on.

Used by the agreement tests and by `bench/filters.py`; nothing in the build imports it. Running datatrove's
English filters needs spaCy (`pip install spacy`), which they use to split words and sentences.

The documents are real English prose and reference text from the standard library (the language reference in
`pydoc_data.topics` and the docstrings of its modules, cut into documents of varied sizes), plus synthetic
junk of every kind the rules target: repeated lines and paragraphs, lorem ipsum, navigation menus of short
lines, word salad, JavaScript and cookie notices, bullet lists, lines ending in ellipses, hashtags, curly
brackets, tables of numbers, overlong words, repeated phrases and empty documents.
"""

from __future__ import annotations

import ast
import inspect
import sysconfig
from pathlib import Path
from random import Random
from typing import Any

from gristmill.pipelines.filters.config import (
    C4Config,
    FineWebConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)

RULE_SETS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")

# Our rule name -> datatrove's reason for the same drop (for reporting which rule disagreed).
DATATROVE_REASONS = {
    "gopher_quality": {
        "min_doc_words": "gopher_short_doc",
        "max_doc_words": "gopher_long_doc",
        "min_avg_word_length": "gopher_below_avg_threshold",
        "max_avg_word_length": "gopher_above_avg_threshold",
        "hash_ratio": "gopher_too_many_hashes",
        "ellipsis_ratio": "gopher_too_many_ellipsis",
        "bullet_lines": "gopher_too_many_bullets",
        "ellipsis_lines": "gopher_too_many_end_ellipsis",
        "alpha_words": "gopher_below_alpha_threshold",
        "stop_words": "gopher_enough_stop_words",
    },
    "gopher_repetition": {
        "empty": "empty",
        "dup_para_frac": "dup_para_frac",
        "dup_para_char_frac": "dup_para_char_frac",
        "dup_line_frac": "dup_line_frac",
        "dup_line_char_frac": "dup_line_char_frac",
        **{f"top_{n}_gram": f"top_{n}_gram" for n in range(1, 21)},
        **{f"dup_{n}_gram": f"duplicated_{n}_n_grams" for n in range(1, 21)},
    },
    "c4": {
        "lorem_ipsum": "lorem_ipsum",
        "curly_bracket": "curly_bracket",
        "min_num_sentences": "too_few_sentences",
    },
    "fineweb": {
        "empty": "empty",
        "line_punct_ratio": "line_punct_ratio",
        "short_line_ratio": "short_line_ratio",
        "char_dup_ratio": "char_dup_ratio",
        "new_line_ratio": "list_ratio",
    },
}

_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
    "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
    "aliquip ex ea commodo consequat."
)
_NOTICES = [
    "Please enable JavaScript to view the comments powered by Disqus.",
    "This site uses cookies. By continuing to browse you agree to our use of cookies.",
    "You must enable javascript in your browser to use this page.",
    "Read our privacy policy and terms of use before you continue.",
]
_MENU = ["Home", "About us", "Products", "Contact", "Login", "Sign up", "Blog", "Careers", "Help", "Search"]


def datatrove_filter(rule_set: str, config: Any = None) -> Any:
    """Return datatrove's filter for `rule_set` with `config`'s thresholds (published defaults if None).

    Our config models name every threshold exactly as datatrove's constructors do, so the thresholds are
    passed through as they are (n-gram settings as tuples).
    """
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    classes = {
        "gopher_quality": (GopherQualityConfig, GopherQualityFilter),
        "gopher_repetition": (GopherRepetitionConfig, GopherRepetitionFilter),
        "c4": (C4Config, C4QualityFilter),
        "fineweb": (FineWebConfig, FineWebQualityFilter),
    }
    if rule_set not in classes:
        raise ValueError(f"unknown rule set {rule_set!r}; expected one of {', '.join(RULE_SETS)}")
    config_class, filter_class = classes[rule_set]
    thresholds = (config or config_class()).model_dump(exclude={"enabled"})
    kwargs = {k: tuple(map(tuple, v)) if isinstance(v, list) else v for k, v in thresholds.items()}
    return filter_class(**kwargs)


def datatrove_verdicts(rule_set: str, texts: list[str], config: Any = None) -> list[str | None]:
    """Return datatrove's verdict per text: None if kept, else its drop reason.

    datatrove's C4 filter keeps a document after deleting some of its lines; that counts as kept here,
    since our C4 filter only decides whether a document goes (docs/filters.md, "C4").
    """
    from datatrove.data import Document

    flt = datatrove_filter(rule_set, config)
    verdicts: list[str | None] = []
    for i, text in enumerate(texts):
        result = flt.filter(Document(text=text, id=str(i)))
        verdicts.append(None if result is True else (result[1] if isinstance(result, tuple) else "dropped"))
    return verdicts


def reference_documents(seed: int = 0) -> list[str]:
    """Return a few hundred documents: cut-up standard-library prose and synthetic junk, fixed by `seed`."""
    rng = Random(seed)
    sections = _stdlib_sections()
    real = _cut(sections, rng)
    real = [real[i] for i in sorted(rng.sample(range(len(real)), min(len(real), 450)))]
    return real + [doc for _ in range(8) for doc in _junk(sections, rng)]


def bench_documents(target_bytes: int, seed: int = 0) -> list[str]:
    """Return documents totalling about `target_bytes` of UTF-8: the reference documents over and over,
    each copy varied (paragraphs shuffled and re-cut) so that no two copies are the same text."""
    rng = Random(seed)
    sections = _stdlib_sections()
    docs: list[str] = []
    total = 0
    while total < target_bytes:
        batch = _cut(sections, rng) + _junk(sections, rng)
        for doc in batch:
            docs.append(doc)
            total += len(doc.encode("utf-8"))
            if total >= target_bytes:
                break
    return docs


def _stdlib_sections() -> list[str]:
    """Return the language reference's topics and, per stdlib module, its docstrings joined by blank lines."""
    from pydoc_data.topics import topics

    sections = [topics[key] for key in sorted(topics)]
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py"))[:160]:
        try:
            tree = ast.parse(path.read_text("utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        nodes = [tree, *(n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)))]
        docs = [inspect.cleandoc(d) for d in map(ast.get_docstring, nodes) if d]
        if docs:
            sections.append("\n\n".join(docs))
    return sections


def _cut(sections: list[str], rng: Random) -> list[str]:
    """Return documents of 1 to 40 consecutive paragraphs of each section (a long section gives several)."""
    docs = []
    for section in sections:
        paragraphs = section.split("\n\n")
        start = 0
        while start < len(paragraphs):
            size = rng.choice((1, 2, 3, 5, 8, 13, 21, 40))
            docs.append("\n\n".join(paragraphs[start : start + size]).strip("\n"))
            start += size
    return [d for d in docs if d.strip()]


def _junk(sections: list[str], rng: Random) -> list[str]:
    """Return documents made to fail (or nearly fail) one rule each, mixed with real prose."""
    words = sorted({w for s in sections[:40] for w in s.split() if w.isalpha() and len(w) > 3})
    prose = [p for s in sections for p in s.split("\n\n") if len(p) > 200 and not p.startswith(" ")]

    def para() -> str:
        return rng.choice(prose)

    def salad(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    line = para().split("\n")[0]
    docs = [
        "",
        "   \n\n  ",
        "Short text.",
        salad(30),
        salad(rng.randint(40, 400)),
        "\n".join([line] * rng.randint(3, 30) + [para()]),
        "\n\n".join([para()] * rng.randint(2, 5)),
        para() + "\n\n" + _LOREM + "\n\n" + para(),
        "\n".join(rng.sample(_MENU, 8)) + "\n" + para(),
        "\n".join(_MENU * 3) + "\n" + para(),
        "\n".join(rng.sample(_NOTICES, 2)) + "\n" + para() + "\n" + para(),
        "\n".join(_NOTICES),
        "\n".join(f"• {salad(rng.randint(3, 12))}" for _ in range(rng.randint(10, 40))),
        "\n".join(f"- {para()[:80]}" for _ in range(20)) + "\nThe end of the list.",
        "\n".join(f"{salad(rng.randint(4, 10))}..." for _ in range(rng.randint(5, 20))) + "\n" + para(),
        "\n".join(f"{salad(8)} …" for _ in range(10)),
        para() + " " + " ".join(f"#{rng.choice(words)}" for _ in range(rng.randint(5, 60))),
        para() + " ... " * rng.randint(5, 60),
        para() + "\nfunction f(x) { return x + 1; }\n" + para(),
        "\n".join(" ".join(str(rng.randint(0, 9999)) for _ in range(8)) for _ in range(30)),
        para() + " " + "x" * rng.randint(990, 1100) + " end.\n" + para(),
        " ".join([salad(6)] * rng.randint(5, 60)) + " " + para(),
        para() + " " + " ".join(["the same phrase again and again"] * rng.randint(3, 40)),
        "It is. " * rng.randint(1, 8),
        "\n".join(f"Line {i} of a list that goes on." for i in range(rng.randint(3, 12))),
        para().upper(),
        para().replace(" ", "  "),
        para().replace(". ", ".\n"),
        para() + " [1] [2] [citation needed]\n" + para() + " [edit]",
        "\n".join(p[:25] for p in rng.sample(prose, 30)),
        "\n".join(f"{rng.choice(words)}: {rng.randint(1, 100)}" for _ in range(40)),
    ]
    return docs
