"""The keep-rate corpus: curated prose, hand-written code and plain junk, from text every machine has.

- prose: whole documents as a curated corpus holds them: each language-reference topic (`pydoc_data.topics`),
  each standard-library module's docstrings as one document, and the plain-text documentation Debian ships
  under /usr/share/doc (README, NEWS and copyright files, gzip or not);
- code: standard-library Python modules and the C headers under /usr/include, leaving out files that say in
  their first lines that a tool generated them (the code rules drop those on purpose: `generated_code`
  returns them);
- junk: what no profile but `none` may keep: empty and whitespace-only texts, stubs of a few words, binary
  data decoded as text, and extreme repetition (a line, a paragraph, a word or a phrase over and over).

The web rules' own junk (menus, word salad, notices: `text.junk_documents`) is not in `junk`, because
curated text and code are not judged by web rules; bench/keep_rates.py reports it apart.
"""

from __future__ import annotations

import ast
import gzip
import inspect
import re
from pathlib import Path
from random import Random

from gristmill.sample.text import STDLIB, doc_topics, python_modules

DEBIAN_DOCS = Path("/usr/share/doc")
C_HEADERS = Path("/usr/include")
_GENERATED = re.compile(r"generated|do not edit", re.IGNORECASE)
_DOC_NAMES = re.compile(r"^(?:README(?:\.md|\.txt)?|NEWS|copyright)(?:\.gz)?$")
_MAX_CHARS = 200_000


def prose_documents(every: int = 1, max_debian: int = 300) -> list[str]:
    """Return curated prose documents, each text once: the reference topics, every `every`-th standard-library
    module's docstrings, and up to `max_debian` of Debian's text documentation files."""
    docs = [t for t in doc_topics() if t.strip()]
    modules = python_modules(STDLIB, skip_dirs=frozenset({"test", "tests", "idle_test", "site-packages"}))
    for _, text in modules[::every]:
        docstrings = _docstrings(text)
        if len(docstrings) > 200:
            docs.append(docstrings)
    return list(dict.fromkeys(docs + _debian_docs(max_debian)))


def _docstrings(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef | ast.FunctionDef))]
    return "\n\n".join(inspect.cleandoc(d) for d in map(ast.get_docstring, nodes) if d)


def _debian_docs(limit: int) -> list[str]:
    if not DEBIAN_DOCS.is_dir():
        return []
    docs = []
    for path in sorted(p for p in DEBIAN_DOCS.rglob("*") if _DOC_NAMES.match(p.name) and p.is_file()):
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            continue
        if text.strip() and len(text) <= _MAX_CHARS:
            docs.append(text)
        if len(docs) == limit:
            break
    return docs


def _code_files(every: int) -> list[tuple[str, str]]:
    files = python_modules(STDLIB, skip_dirs=frozenset({"site-packages"}))[::every]
    if C_HEADERS.is_dir():
        for path in sorted(C_HEADERS.rglob("*.h"))[::every]:
            try:
                files.append((path.as_posix(), path.read_text("utf-8")))
            except (OSError, UnicodeDecodeError):
                continue
    return [(name, text) for name, text in files if text.strip() and len(text) <= _MAX_CHARS]


def _is_generated(text: str) -> bool:
    return _GENERATED.search("\n".join(text.splitlines()[:5])) is not None


def code_documents(every: int = 3) -> list[tuple[str, str]]:
    """Return (path, text) of every `every`-th standard-library module and C header written by hand."""
    return [(name, text) for name, text in _code_files(every) if not _is_generated(text)]


def generated_code(every: int = 3) -> list[tuple[str, str]]:
    """Return (path, text) of the files `code_documents` leaves out as generated."""
    return [(name, text) for name, text in _code_files(every) if _is_generated(text)]


def junk_documents(seed: int = 0, per_kind: int = 40) -> list[tuple[str, str]]:
    """Return (kind, text) of `per_kind` plain junk documents of each kind, made from real prose and code."""
    rng = Random(seed)
    prose = [p for doc in doc_topics() for p in doc.split("\n\n") if len(p) > 200 and not p.startswith(" ")]
    lines = [line for p in prose for line in p.splitlines() if len(line) > 30]
    words = sorted({w for p in prose[:200] for w in p.split() if w.isalpha()})
    makers = {
        "empty": lambda: rng.choice(["", " ", "\n", "\n\n  \n", "\t \r\n"]) * rng.randint(1, 20),
        "stub": lambda: " ".join(rng.sample(words, rng.randint(1, 4))) + rng.choice([".", "", " »", "!"]),
        "binary-bytes": lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(200, 5000))).decode(
            "latin-1"
        ),
        "bad-decode": lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(200, 5000))).decode(
            "utf-8", errors="replace"
        ),
        "repeated-line": lambda: "\n".join([rng.choice(lines)] * rng.randint(10, 200)),
        "repeated-paragraph": lambda: "\n\n".join([rng.choice(prose)] * rng.randint(3, 12)),
        "repeated-word": lambda: " ".join([rng.choice(words)] * rng.randint(50, 2000)),
        "repeated-phrase": lambda: " ".join(rng.sample(words, rng.randint(2, 3)) * rng.randint(40, 500)),
        "stuffed-keyword": lambda: (
            rng.choice(prose) + "\n" + " ".join([rng.choice(words)] * rng.randint(400, 2000))
        ),
    }
    return [(kind, make()) for kind, make in makers.items() for _ in range(per_kind)]
