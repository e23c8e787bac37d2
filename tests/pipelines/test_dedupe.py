"""Dedupe end to end: planted pairs, priority survival, exact duplicates, increments (in one process), and
worker-count independence on a real local Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from gristmill.errors import ConfigError
from gristmill.pipelines.build.engine import run_locally, run_step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.dedupe import DedupeConfig, NearDedupeConfig
from gristmill.pipelines.documents import DocumentFileWriter
from gristmill.pipelines.recipe import Recipe, SourceConfig
from gristmill.pipelines.steps.dedupe import dedupe_steps
from gristmill.sample.planted import TextMaker

PRIORITY = {"starcoderdata": 10, "dolma": 0, "pile": 0}


def make_recipe(
    root: Path, dedupe: DedupeConfig | None = None, sources=("starcoderdata", "dolma", "pile")
) -> Recipe:
    """A recipe whose sources exist only as already-ingested documents files under `root`."""
    return Recipe(
        name="t",
        output=str(root),
        dedupe=dedupe or DedupeConfig(docs_per_partition=40),
        sources=[
            SourceConfig(name=s, format="jsonl", paths=["unused"], priority=PRIORITY[s]) for s in sources
        ],
    )


def write_documents(layout: BuildLayout, files: dict[tuple[str, int], list[str]]) -> list[tuple[str, int]]:
    """Write documents files as the ingest step would; ids repeat across files on purpose (as in Dolma)."""
    for (source, task), texts in files.items():
        writer = DocumentFileWriter(layout.task_file("documents", source, task, "parquet"))
        for row, text in enumerate(texts):
            writer.write(
                Document(
                    text=text, id=f"doc-{row}", metadata={"source": source, "subset": f"{source}-{row % 2}"}
                )
            )
        writer.close()
    return list(files)


def build(
    root: Path,
    files: dict[tuple[str, int], list[str]],
    dedupe: DedupeConfig | None = None,
    sources=("starcoderdata", "dolma", "pile"),
) -> BuildLayout:
    """Write the documents and run every dedupe step in this process."""
    layout = BuildLayout(str(root))
    recipe = make_recipe(root, dedupe, sources)
    inputs = write_documents(layout, files)
    run_locally(dedupe_steps(recipe, layout, inputs), layout)
    return layout


def decisions(layout: BuildLayout, source: str, task: int) -> list[dict]:
    """Return one file's decisions as dicts, in row order."""
    return pq.read_table(layout.path("dedupe", "decisions", source, f"{task:05d}.parquet")).to_pylist()


def clean_texts(layout: BuildLayout, source: str, task: int) -> list[str]:
    """Return the clean documents' texts of one file."""
    return pq.read_table(layout.task_file("clean", source, task, "parquet")).column("text").to_pylist()


@pytest.fixture(scope="module")
def maker() -> TextMaker:
    return TextMaker(seed=7)


def test_planted_pairs_recall_and_false_positives(tmp_path, maker):
    # 200-word documents: 1-3 edits give J ≈ 0.87-0.95, 17-40 edits give J ≈ 0.2-0.5.
    pairs = maker.pairs(200, words=200, edits=(1, 3), shingle_size=5)
    pairs += maker.pairs(200, words=200, edits=(17, 40), shingle_size=5)
    originals = [p.original for p in pairs]
    copies = [p.copy for p in pairs]
    # Originals and copies in different files and sources: the pile copies are the ones to remove.
    layout = build(
        tmp_path,
        {("dolma", 0): originals[:200], ("dolma", 1): originals[200:], ("pile", 0): copies},
        DedupeConfig(docs_per_partition=300),
    )
    removed = {d["row"]: d for d in decisions(layout, "pile", 0)}
    similarity = np.array([p.similarity for p in pairs])
    found = np.array([i in removed for i in range(len(pairs))])
    high, low = similarity >= 0.85, similarity <= 0.5
    assert high.sum() > 150 and low.sum() > 150  # the fixture spans both ranges
    assert found[high].mean() >= 0.95
    assert found[low].mean() <= 0.01
    for i, d in removed.items():
        assert d["kept_source"] == "dolma"
        assert d["kept_id"] == f"doc-{i % 200}"
        assert d["kind"] == ("exact" if pairs[i].similarity == 1.0 else "near")
    assert clean_texts(layout, "pile", 0) == [c for i, c in enumerate(copies) if i not in removed]
    assert clean_texts(layout, "dolma", 1) == originals[200:]


def test_highest_priority_copy_survives_and_overlap_is_counted(tmp_path, maker):
    shared = [maker.document(120) for _ in range(6)]
    near = maker.edited(shared[0], 1)
    own = {name: [maker.document(100) for _ in range(3)] for name in ("starcoderdata", "dolma", "pile")}
    layout = build(
        tmp_path,
        {
            ("dolma", 0): own["dolma"] + shared[:3] + [near],
            ("pile", 0): shared + own["pile"],
            ("starcoderdata", 0): own["starcoderdata"] + shared[2:],
        },
    )
    # starcoderdata (priority 10) keeps shared[2:]; dolma beats pile by recipe order for shared[:2].
    assert clean_texts(layout, "starcoderdata", 0) == own["starcoderdata"] + shared[2:]
    assert clean_texts(layout, "dolma", 0) == own["dolma"] + shared[:2]
    assert clean_texts(layout, "pile", 0) == own["pile"]
    dolma = {d["row"]: d for d in decisions(layout, "dolma", 0)}
    assert dolma[5] == {
        "id": "doc-5",
        "row": 5,
        "kind": "exact",
        "cluster": dolma[5]["cluster"],
        "kept_id": "doc-3",
        "kept_source": "starcoderdata",
    }
    assert (dolma[6]["kind"], dolma[6]["kept_id"], dolma[6]["kept_source"]) == ("near", "doc-3", "dolma")
    pile = decisions(layout, "pile", 0)
    assert [(d["row"], d["kept_source"], d["kept_id"]) for d in pile] == [
        (0, "dolma", "doc-3"),
        (1, "dolma", "doc-4"),
        (2, "starcoderdata", "doc-3"),
        (3, "starcoderdata", "doc-4"),
        (4, "starcoderdata", "doc-5"),
        (5, "starcoderdata", "doc-6"),
    ]
    overlap = json.loads(Path(layout.path("dedupe", "overlap.json")).read_text())
    assert overlap == {"dolma": {"dolma": 1, "starcoderdata": 1}, "pile": {"dolma": 2, "starcoderdata": 4}}
    stats = json.loads(Path(layout.stats_file("dedupe", "dolma", 0)).read_text())
    assert stats == {"dolma-0": {"exact": 0, "near": 1}, "dolma-1": {"exact": 1, "near": 0}}


def test_exact_duplicates_after_normalisation_across_sources(tmp_path, maker):
    text = maker.document(30)
    variants = [text, text.upper(), "  " + text.replace(" ", "\n\t "), "short", "SHORT ", "!!!", " !!! "]
    layout = build(
        tmp_path,
        {("pile", 0): variants[:4], ("dolma", 0): variants[4:]},
        DedupeConfig(near=NearDedupeConfig(enabled=False)),
    )
    assert clean_texts(layout, "dolma", 0) == ["SHORT ", "!!!"]
    assert clean_texts(layout, "pile", 0) == [text]  # dolma comes first in the recipe: its "SHORT " wins
    assert [(d["row"], d["kind"], d["kept_source"]) for d in decisions(layout, "dolma", 0)] == [
        (2, "exact", "dolma")
    ]


def test_dedupe_disabled_copies_documents(tmp_path, maker):
    texts = [maker.document(50)] * 3
    layout = build(
        tmp_path, {("pile", 0): texts}, DedupeConfig(exact=False, near=NearDedupeConfig(enabled=False))
    )
    assert clean_texts(layout, "pile", 0) == texts
    assert decisions(layout, "pile", 0) == []
    assert json.loads(Path(layout.stats_file("dedupe", "pile", 0)).read_text()) == {
        "pile-0": {"exact": 0, "near": 0},
        "pile-1": {"exact": 0, "near": 0},
    }


def test_rerun_resumes_without_rewriting(tmp_path, maker):
    layout = build(tmp_path, {("pile", 0): [maker.document(50)] * 2})
    clean = Path(layout.task_file("clean", "pile", 0, "parquet"))
    before = clean.stat().st_mtime_ns
    recipe = make_recipe(tmp_path)
    run_locally(dedupe_steps(recipe, layout, [("pile", 0)]), layout)
    assert clean.stat().st_mtime_ns == before
    assert len(clean_texts(layout, "pile", 0)) == 1


def test_against_an_earlier_build(tmp_path, maker):
    old = [maker.document(150) for _ in range(4)]
    first = build(tmp_path / "first", {("pile", 0): [*old, old[0]]})
    assert len(clean_texts(first, "pile", 0)) == 4
    new = [maker.document(150) for _ in range(2)]
    second = build(
        tmp_path / "second",
        {("starcoderdata", 0): [maker.edited(old[1], 1), old[2], *new], ("dolma", 0): [old[3], new[0]]},
        DedupeConfig(against=[str(tmp_path / "first")], docs_per_partition=5),
    )
    # The earlier build wins even over the higher-priority source.
    assert clean_texts(second, "starcoderdata", 0) == new
    assert clean_texts(second, "dolma", 0) == []
    got = [
        (d["row"], d["kind"], d["kept_source"], d["kept_id"]) for d in decisions(second, "starcoderdata", 0)
    ]
    assert got == [(0, "near", "pile", "doc-1"), (1, "exact", "pile", "doc-2")]
    # The second build's own index holds only what it kept, ready for a third build.
    meta = json.loads(Path(second.path("dedupe", "index", "meta.json")).read_text())
    assert [f["rows"] for f in meta["files"]] == [2, 0]


def test_against_a_build_with_other_settings_is_refused(tmp_path, maker):
    build(tmp_path / "first", {("pile", 0): [maker.document(40)]})
    layout = BuildLayout(str(tmp_path / "second"))
    recipe = make_recipe(
        tmp_path / "second", DedupeConfig(against=[str(tmp_path / "first")], near=NearDedupeConfig(bands=10))
    )
    inputs = write_documents(layout, {("pile", 0): ["x"]})
    with pytest.raises(ConfigError, match="other settings"):
        dedupe_steps(recipe, layout, inputs)


def test_against_an_index_of_older_signatures_is_refused(tmp_path, maker):
    """An index written before the fast-similarity-sketching signatures (version 1, classic MinHash) holds
    signatures that cannot be compared with today's: refused, saying so, even with the same settings."""
    first = build(tmp_path / "first", {("pile", 0): [maker.document(40)]})
    meta_path = Path(first.path("dedupe", "index", "meta.json"))
    meta = json.loads(meta_path.read_text())
    assert (meta["version"], meta["signatures"]) == (2, "fss-v1")
    del meta["signatures"]
    meta_path.write_text(json.dumps({**meta, "version": 1}))
    layout = BuildLayout(str(tmp_path / "second"))
    recipe = make_recipe(tmp_path / "second", DedupeConfig(against=[str(tmp_path / "first")]))
    inputs = write_documents(layout, {("pile", 0): ["x"]})
    with pytest.raises(ConfigError, match="version 1 with classic MinHash signatures") as refused:
        dedupe_steps(recipe, layout, inputs)
    assert "cannot be compared" in str(refused.value)


def _outputs(root: Path) -> dict[str, bytes]:
    """Every final output file of the dedupe, by path relative to the build."""
    wanted = ["clean", "stats/dedupe", "dedupe/decisions", "dedupe/index"]
    files = {p for w in wanted for p in (root / w).rglob("*") if p.is_file()}
    files.add(root / "dedupe" / "overlap.json")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(files)}


@pytest.mark.slow  # ~40 s: about 30 Ray tasks per build on 2 CPUs
def test_outputs_do_not_depend_on_worker_count(tmp_path, ray_local):
    maker = TextMaker(seed=3)
    originals = [maker.document(120) for _ in range(30)]
    files = {
        ("dolma", 0): originals[:15],
        ("dolma", 1): [*originals[15:], originals[0]],
        ("pile", 0): [maker.edited(t, 2) for t in originals[::2]] + [maker.document(80)],
        ("starcoderdata", 0): originals[5:9],
    }
    results = []
    for workers in (1, 2):
        layout = BuildLayout(str(tmp_path / f"w{workers}"))
        # Few bands and two partitions: every kind of step runs, with few Ray tasks (each costs ~1 s here).
        config = DedupeConfig(docs_per_partition=40, near=NearDedupeConfig(bands=2, rows=4))
        recipe = make_recipe(tmp_path / f"w{workers}", config)
        inputs = write_documents(layout, files)
        for step in dedupe_steps(recipe, layout, inputs):
            run_step(step, layout, workers)
        results.append(_outputs(tmp_path / f"w{workers}"))
    assert results[0] == results[1]
    assert len(results[0]) == 4 * 4 + 2  # clean, stats, decisions, index per file + overlap + index meta
    decided = sum(len(b) for p, b in results[0].items() if p.startswith("dedupe/decisions"))
    assert decided > 0


def test_batches_of_short_documents_get_signatures():
    """A batch whose documents are all shorter than one shingle (even in total) still gets signatures."""
    from gristmill.pipelines.steps.dedupe.minhash import MinHasher

    hasher = MinHasher(shingle_size=5, bands=14, rows=8, seed=1)
    signatures, has = hasher.signatures(["fine", "also fine"])
    assert signatures.shape == (2, 112) and has.all()
    again, _ = hasher.signatures(["also fine"])
    assert (again[0] == signatures[1]).all()  # a document's signature does not depend on its batch
