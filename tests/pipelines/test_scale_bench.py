"""bench/scale_bench.py's corpus: the four layouts parse with gristmill's readers, the planted duplicates and
their rates in the ground truth are in the files, and a seed gives the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from datatrove.data import Document

from gristmill.pipelines.readers import reader_for
from gristmill.pipelines.recipe import SourceConfig
from gristmill.sample.planted import jaccard

FORMATS = {"slimpajama": "slimpajama", "starcoderdata": "starcoder", "dolma": "dolma", "pile": "pile"}


@pytest.fixture(scope="module")
def scale_corpus(bench_module):
    """bench/scale_corpus.py."""
    return bench_module("scale_corpus")


@pytest.fixture(scope="module")
def models(scale_corpus):
    return scale_corpus.fit_models()


@pytest.fixture(scope="module")
def corpus(scale_corpus, models, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("scale") / "corpus"
    truth = scale_corpus.generate(4_000_000, out, seed=3, processes=1, tokenizer=False, models=models)
    return out, truth


def read_all(out: Path) -> dict[str, dict[str, Document]]:
    """Return source → id → Document of every file, through the readers (failing on any bad record)."""
    docs: dict[str, dict[str, Document]] = {}
    for source, fmt in FORMATS.items():
        reader = reader_for(SourceConfig(name=source, format=fmt, paths=[str(out / source)]))
        for path in sorted((out / source).rglob("*.*")):
            for item in reader.iter_file(str(path)):
                assert isinstance(item, Document), item
                docs.setdefault(source, {})[item.id] = item
    return docs


def test_the_layouts_parse_and_hold_what_the_ground_truth_says(corpus):
    out, truth = corpus
    docs = read_all(out)
    assert sorted(docs) == sorted(FORMATS)
    for source, figures in truth["sources"].items():
        assert len(docs[source]) == sum(figures["documents"].values()), source  # ids unique, none lost
        subsets = {d.metadata["subset"] for d in docs[source].values()}
        assert subsets == set(figures["documents"]), source
        assert figures["bytes"] == sum(p.stat().st_size for p in (out / source).rglob("*.*"))
    assert not any(d.text.startswith("<reponame>") for d in docs["starcoderdata"].values())  # header stripped
    junk = sum(n for s in truth["sources"].values() for kinds in s["junk"].values() for n in kinds.values())
    assert junk > 0.02 * truth["documents"]


def test_planted_pairs_are_in_the_files_at_the_recorded_rates(scale_corpus, corpus):
    out, truth = corpus
    by_id = {i: d for source in read_all(out).values() for i, d in source.items()}
    exact, near = truth["pairs"]["exact"], truth["pairs"]["near"]
    assert truth["rates"]["exact"] == round(len(exact) / truth["documents"], 5)
    assert truth["rates"]["near"] == round(len(near) / truth["documents"], 5)
    assert 0.02 < truth["rates"]["exact"] < 0.04 and 0.02 < truth["rates"]["near"] < 0.04
    assert any(p["cross_source"] for p in exact) and any(not p["cross_source"] for p in exact)
    for pair in exact:
        assert by_id[pair["original"]].text == by_id[pair["copy"]].text
    for pair in near:
        a, b = by_id[pair["original"]].text, by_id[pair["copy"]].text
        assert a != b and abs(jaccard(a, b, scale_corpus.SHINGLE) - pair["jaccard"]) < 1e-3
        assert 0.7 < pair["jaccard"] < 0.95, pair
    unique = {d.text for d in by_id.values()}
    assert len(unique) == len(by_id) - len(exact), "the only exact duplicates are the planted ones"


def test_a_seed_gives_the_same_bytes(scale_corpus, corpus, models, tmp_path):
    out, truth = corpus
    again = scale_corpus.generate(
        4_000_000, tmp_path / "again", seed=3, processes=1, tokenizer=False, models=models
    )
    assert again["pairs"] == truth["pairs"] and again["files"] != []
    for path in sorted(p for p in out.rglob("*.*") if p.name != scale_corpus.GROUND_TRUTH):
        assert (tmp_path / "again" / path.relative_to(out)).read_bytes() == path.read_bytes(), path
    drop = ("timings", "generation_mb_per_s", "files")
    assert {k: v for k, v in again.items() if k not in drop} == {
        k: v for k, v in truth.items() if k not in drop
    }
    assert [{**f, "seconds": 0} for f in again["files"]] == [{**f, "seconds": 0} for f in truth["files"]]
