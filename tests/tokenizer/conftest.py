"""Fixtures: a small prose + code corpus (pydoc topics, stdlib sources) and tokenizers trained on it."""

from __future__ import annotations

import json
import re
import sysconfig
from pathlib import Path

import pytest
from rich.console import Console

from gristmill.tokenizer.config import TokenizerTrainConfig

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CODE_FILES = sorted(
    [
        *(STDLIB / "json").glob("*.py"),
        *(STDLIB / "email").glob("*.py"),
        STDLIB / "textwrap.py",
        STDLIB / "tabnanny.py",
    ]
)
EDGE_CASES = [
    "",
    " ",
    "  ",
    " leading space",
    "trailing space ",
    "double  space",
    "\ttab\tseparated\t",
    "a\r\nb\r\n",
    "non\u00a0breaking\u00a0space",
    "combining e\u0301 a\u0300 o\u0308",
    "emoji 🦀 🎉👩‍💻",
    "<s> literal </s> <unk>",
    "digits 1234567890 3.14159",
    "    def f(x):\n        return x\n\n\tif y:\n\t\tpass\n",
    "\n",
    "\n\n  \n",
    "日本語のテキスト",
    "Ünïcödé ß",
    "mixed\u2028separator",
    "<unused0> <|endoftext|>",
    "x" * 5000,
]


def corpus() -> list[tuple[str, str, str]]:
    """Return (text, source, subset) documents: pydoc topics as prose, stdlib modules as code."""
    from gristmill.sample.text import doc_topics

    prose = [(text, "prose", "pydoc") for text in doc_topics()]
    code = [(path.read_text(encoding="utf-8"), "code", path.parent.name) for path in CODE_FILES]
    # tab-indented code (as in Go or Makefiles): the stdlib's json package with its indentation as tabs
    tabbed = [
        (re.sub(r"(?m)^((?:    )+)", lambda m: "\t" * (len(m.group(1)) // 4), text), "code", "tabs")
        for text, _, subset in code
        if subset == "json"
    ]
    return prose + code + tabbed


@pytest.fixture(scope="session")
def documents() -> list[tuple[str, str, str]]:
    """The test corpus."""
    return corpus()


@pytest.fixture(scope="session")
def quiet() -> Console:
    """A console that prints nothing."""
    return Console(quiet=True)


def small_config(**overrides) -> TokenizerTrainConfig:
    """Return a fast training config: vocabulary 600, 10% of the documents held out."""
    settings = {"vocab_size": 600, "sample_bytes": 10**8, "heldout_fraction": 0.1, "heldout_bytes": 10**8}
    return TokenizerTrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def trained(tmp_path_factory, documents, quiet):
    """Return a function (name, **config) → TrainedTokenizer, training each configuration once per session."""
    from gristmill.tokenizer.train import train_tokenizer

    cache: dict[str, object] = {}

    def get(name: str, **overrides):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = train_tokenizer(small_config(**overrides), documents, out, seed=7, console=quiet)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory, documents) -> Path:
    """The corpus as files: prose/topics.jsonl, code/*.py (one document each), and a parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("files")
    (root / "prose").mkdir()
    (root / "code").mkdir()
    prose = [d for d in documents if d[1] == "prose"]
    with (root / "prose" / "topics.jsonl").open("w") as f:
        for text, _, subset in prose[: len(prose) // 2]:
            f.write(json.dumps({"text": text, "subset": subset}) + "\n")
    rest = prose[len(prose) // 2 :]
    pq.write_table(
        pa.table(
            {"text": [d[0] for d in rest], "source": ["prose"] * len(rest), "subset": ["pydoc"] * len(rest)}
        ),
        root / "prose" / "more.parquet",
    )
    for path in CODE_FILES:
        (root / "code" / f"{path.parent.name}-{path.name}.txt").write_text(path.read_text(encoding="utf-8"))
    return root
