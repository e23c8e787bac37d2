"""The tokenize step writes every document's reference ids, framed, from flat arrays; an install without
gigatoken writes the same bytes with kitoken, and each task's stats say which encoder it used."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.steps import tokenize
from gristmill.pipelines.steps.tokenize import TokenFile, TokenizeDocuments, write_source_histograms
from gristmill.sample.text import doc_topics, paragraphs
from gristmill.tokenizer import interface
from gristmill.tokenizer.config import TokenizerTrainConfig
from gristmill.tokenizer.interface import Tokenizer
from gristmill.tokenizer.train import train_tokenizer

EDGES = ["", "  a <s> literal </s> and <|endoftext|>\r\n", "\t\tdef f():\n\t\treturn 1\n"]
TEXTS = [*[p for page in doc_topics()[:40] for p in paragraphs(page)][:300], *EDGES]


@pytest.fixture(scope="module", params=["llama2", "hf-bpe"])
def tokenizer_dir(request, tmp_path_factory) -> Path:
    """A small trained tokenizer (with its held-out sample): sentencepiece llama2 (bos+eos) or HF (eos)."""
    settings = {"profile": "llama2"} if request.param == "llama2" else {"backend": "hf-bpe"}
    config = TokenizerTrainConfig(vocab_size=600, heldout_fraction=0.1, **settings)
    documents = [(text, "docs", "pydoc") for text in doc_topics()]
    out = tmp_path_factory.mktemp(request.param)
    train_tokenizer(config, documents, out, seed=1, console=Console(quiet=True))
    return out


def _tokenize(root: Path, tokenizer_dir: Path) -> BuildLayout:
    """Write a clean file of TEXTS under `root`, tokenize it as task 0 of source "docs"; return the layout."""
    layout = BuildLayout(str(root))
    shutil.copytree(tokenizer_dir, layout.tokenizer_dir)
    clean = Path(layout.clean_file("docs", 0))
    clean.parent.mkdir(parents=True)
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS}), clean)
    for _ in TokenizeDocuments(layout, [("docs", 0)]).run(rank=0):
        pass
    write_source_histograms(layout, [("docs", 0)])
    return layout


def test_token_file_holds_each_documents_reference_ids_framed(tmp_path, tokenizer_dir, monkeypatch):
    monkeypatch.setattr(tokenize, "ENCODE_BATCH", 64)  # several batches, one of them short
    layout = _tokenize(tmp_path / "build", tokenizer_dir)
    reference = Tokenizer.load(tokenizer_dir, encoder="reference")
    tokens = TokenFile.open(layout, "docs", 0, with_ids=True)
    assert tokens.ids == [f"d{i}" for i in range(len(TEXTS))]
    for d, text in enumerate(TEXTS):
        want = reference.framing.frame(reference.encode(text))
        np.testing.assert_array_equal(tokens.document(d), want, err_msg=repr(text[:60]))
    stats = json.loads(Path(layout.token_file("docs", 0, "json")).read_text())
    assert stats["encoder"] == "gigatoken" and stats["encoder_note"].startswith("gigatoken: ids identical")
    assert stats["tokens"] == int(tokens.lengths.sum()) and stats["documents"] == len(TEXTS)
    assert json.loads(Path(layout.histogram_file("docs")).read_text())["encoders"] == ["gigatoken"]


def test_without_gigatoken_the_build_writes_the_same_tokens(tmp_path, tokenizer_dir, monkeypatch):
    with_it = _tokenize(tmp_path / "with", tokenizer_dir)
    monkeypatch.setattr(interface, "_CHOSEN", {})
    monkeypatch.setitem(sys.modules, "gigatoken", None)  # as if it were not installed
    without = _tokenize(tmp_path / "without", tokenizer_dir)
    for suffix in ("bin", "arrow"):
        first, second = with_it.token_file("docs", 0, suffix), without.token_file("docs", 0, suffix)
        assert Path(first).read_bytes() == Path(second).read_bytes(), suffix
    stats = json.loads(Path(without.token_file("docs", 0, "json")).read_text())
    assert stats["encoder"] == "kitoken" and "gigatoken: ModuleNotFoundError" in stats["encoder_note"]
