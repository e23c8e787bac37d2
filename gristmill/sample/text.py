"""Documents made from text every machine has: Python's language reference (`pydoc_data.topics`), the
docstrings and sources of its standard library, and synthetic junk of every kind the web filters target.

For tests and benches (the filters' agreement with datatrove, their speed, the tokenizer and pack benches)
and the bundled sample corpus; nothing in a build imports it. The junk: repeated lines and paragraphs, lorem
ipsum, navigation menus of short lines, word salad, JavaScript and cookie notices, bullet lists, lines ending
in ellipses, hashtags, curly brackets, tables of numbers, overlong words, repeated phrases and empty
documents.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import sysconfig
from pathlib import Path
from random import Random

STDLIB = Path(sysconfig.get_paths()["stdlib"])
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip "
    "ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore "
    "eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia "
    "deserunt mollit anim id est laborum."
)
_LOREM_START = LOREM[: LOREM.index("consequat.") + len("consequat.")]  # its first three sentences
_NOTICES = [
    "Please enable JavaScript to view the comments powered by Disqus.",
    "This site uses cookies. By continuing to browse you agree to our use of cookies.",
    "You must enable javascript in your browser to use this page.",
    "Read our privacy policy and terms of use before you continue.",
]
_MENU = ["Home", "About us", "Products", "Contact", "Login", "Sign up", "Blog", "Careers", "Help", "Search"]


def doc_topics() -> list[str]:
    """Return the language reference's topic pages, in key order."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def paragraphs(text: str, min_chars: int = 1) -> list[str]:
    """Return the blank-line-separated paragraphs of `text`, stripped, of at least `min_chars` characters."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) >= min_chars]


def stdlib_top_modules() -> list[tuple[str, str]]:
    """Return (file name, text) of the standard library's top-level modules, in name order."""
    return [(p.name, p.read_text(encoding="utf-8", errors="replace")) for p in sorted(STDLIB.glob("*.py"))]


def python_modules(root: Path = STDLIB, skip_dirs: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Return (path under `root`, text) of every readable Python module below it, in path order, not
    descending into `skip_dirs` (or `config-*` build folders)."""
    found = []
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip_dirs and not d.startswith("config-"))
        for name in sorted(names):
            if name.endswith(".py"):
                path = Path(directory, name)
                try:
                    found.append((path.relative_to(root).as_posix(), path.read_text("utf-8")))
                except (UnicodeDecodeError, OSError):
                    continue
    return found


def reference_documents(seed: int = 0) -> list[str]:
    """Return a few hundred documents: cut-up standard-library prose and synthetic junk, fixed by `seed`."""
    rng = Random(seed)
    sections = stdlib_sections()
    real = cut_documents(sections, rng)
    real = [real[i] for i in sorted(rng.sample(range(len(real)), min(len(real), 450)))]
    return real + [doc for _ in range(8) for doc in junk_documents(sections, rng)]


def bench_documents(target_bytes: int, seed: int = 0) -> list[str]:
    """Return documents totalling about `target_bytes` of UTF-8: the reference documents over and over,
    each copy varied (paragraphs shuffled and re-cut) so that no two copies are the same text."""
    rng = Random(seed)
    sections = stdlib_sections()
    docs: list[str] = []
    total = 0
    while total < target_bytes:
        batch = cut_documents(sections, rng) + junk_documents(sections, rng)
        for doc in batch:
            docs.append(doc)
            total += len(doc.encode("utf-8"))
            if total >= target_bytes:
                break
    return docs


def stdlib_sections() -> list[str]:
    """Return the language reference's topics and, per stdlib module, its docstrings joined by blank lines."""
    sections = doc_topics()
    for path in sorted(STDLIB.glob("*.py"))[:160]:
        try:
            tree = ast.parse(path.read_text("utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        nodes = [tree, *(n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)))]
        docs = [inspect.cleandoc(d) for d in map(ast.get_docstring, nodes) if d]
        if docs:
            sections.append("\n\n".join(docs))
    return sections


def cut_documents(sections: list[str], rng: Random) -> list[str]:
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


def junk_documents(sections: list[str], rng: Random) -> list[str]:
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
        para() + "\n\n" + _LOREM_START + "\n\n" + para(),
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
