"""The tokenize → plan → pack steps on a tiny build: every document rebuilt from its pieces, packing quality,
plain-Arrow shards, the shards CLI, and byte-identical output with 1 and 2 Ray workers."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.pipelines.build.engine import run_locally
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.documents import DOCUMENT_SCHEMA
from gristmill.pipelines.recipe import parse_recipe
from gristmill.pipelines.steps import shard_steps
from gristmill.pipelines.steps.pack import collect_stages, tokenizer_entry
from gristmill.sample.text import doc_topics, paragraphs
from gristmill.shards.manifest import Manifest, SourceEntry, write_manifest
from gristmill.shards.reader import open_shard
from gristmill.tokenizer.hf_export import export_hf_tokenizer
from gristmill.tokenizer.interface import Tokenizer

from . import packed

SHARD_BYTES = 64 << 10  # small shards so that stages have several
SLICED_SHARD_BYTES = 5 << 10
STAGES = [
    {
        "name": "short",
        "seq_len": 64,
        "tokens": 30_000,
        "tokens_per_step": 640,
        "weights": {"web": 3, "books": 2},
    },
    {
        "name": "long",
        "seq_len": 256,
        "tokens": 40_000,
        "tokens_per_step": 1024,
        "weights": {"web": 1, "books": 1},
    },
    {"name": "hq", "seq_len": 256, "tokens": 12_000, "tokens_per_step": 1024, "weights": {"hq": 1}},
]


def _corpus() -> dict[str, list[list[str]]]:
    """Return source → files → document texts, from the Python docs' topic pages (stdlib text)."""
    pages = doc_topics()
    short = [p for page in pages[:60] for p in paragraphs(page)]
    hq = [p for page in pages[60:] for p in paragraphs(page, min_chars=41)][:80]
    half = len(short) // 2
    return {"web": [short[:half], short[half:]], "books": [pages], "hq": [hq]}


def _train_tokenizer(directory: Path, texts: list[str]) -> None:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["</s>", "<pad>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    directory.mkdir(parents=True)
    tok.save(str(directory / "tokenizer.json"))


def _make_inputs(root: Path, **settings) -> tuple[object, list[tuple[str, int]], dict]:
    """Write a tokenizer and clean parquet files under `root`; return (recipe, inputs, corpus). `settings`
    are more recipe fields."""
    corpus = _corpus()
    _train_tokenizer(root / "tokenizer", [t for files in corpus.values() for f in files for t in f])
    inputs = []
    for source, files in corpus.items():
        for task, texts in enumerate(files):
            n = len(texts)
            rows = {
                "id": [f"{source}-{task}-{i}" for i in range(n)],
                "text": texts,
                "source": [source] * n,
                "subset": ["all"] * n,
                "metadata": ["{}"] * n,
            }
            path = root / "clean" / source / f"{task:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(rows, schema=DOCUMENT_SCHEMA), path)
            inputs.append((source, task))
    recipe = parse_recipe(
        {
            "name": "tiny",
            "seed": 5,
            "output": str(root),
            "sources": [{"name": s, "format": "jsonl", "paths": ["unused"]} for s in corpus],
            "tokenizer": {"path": str(root / "tokenizer")},
            "stages": STAGES,
            **settings,
        }
    )
    return recipe, inputs, corpus


def _write_manifest(recipe, layout: BuildLayout) -> Manifest:
    manifest = Manifest(
        name=recipe.name,
        recipe=recipe.model_dump(mode="json"),
        recipe_hash="test",
        seed=recipe.seed,
        accounting={},
        sources=[
            SourceEntry(name=s.name, format=s.format, kind=s.kind, priority=s.priority)
            for s in recipe.sources
        ],
        tokenizer=tokenizer_entry(layout),
        stages=collect_stages(recipe, layout),
    )
    write_manifest(layout.root, manifest)
    return manifest


@pytest.fixture(scope="module", params=["one plan task", "plan in slices"])
def build(tmp_path_factory, request):
    """A packed tiny build (steps run in-process): (recipe, layout, manifest, corpus); planned by one task,
    or in slices of 100 documents (smaller shards, so that every stage has enough for each slice)."""
    sliced = request.param == "plan in slices"
    root = tmp_path_factory.mktemp("build")
    recipe, inputs, corpus = _make_inputs(root, **({"plan_docs_per_task": 100} if sliced else {}))
    layout = BuildLayout(str(root))
    run_locally(
        shard_steps(recipe, layout, inputs, shard_bytes=SLICED_SHARD_BYTES if sliced else SHARD_BYTES), layout
    )
    plan = json.loads(Path(layout.plan_file).read_text())
    if sliced:  # as many slices as the fewest shards of a stage: hq's, stored once
        assert plan["slices"] == min(plan["shards"]) == plan["shards"][2] > 1
    else:
        assert plan["slices"] == 1
    return recipe, layout, _write_manifest(recipe, layout), corpus


def test_every_document_rebuilt_from_its_pieces(build):
    _, layout, manifest, corpus = build
    tokenizer = Tokenizer.load(layout.path("tokenizer"))
    plan = json.loads(Path(layout.path("plan.json")).read_text())
    expected = {
        (s, task): [tokenizer.framing.frame(ids) for ids in tokenizer.encode_batch(texts)]
        for s, files in corpus.items()
        for task, texts in enumerate(files)
    }
    texts = {(s, task): texts for s, files in corpus.items() for task, texts in enumerate(files)}
    found = packed.collect_pieces(layout.root, manifest)
    packed.assert_rebuilt(found, expected, texts, plan, tokenizer.decode)
    assert plan["sources"]["hq"]["passes"] > 1  # the fixture repeats one source


def test_rows_hold_what_the_exported_tokenizer_encodes(build, tmp_path):
    # byte-level BPE: documents are eos-separated, no bos, and the HF export adds none either
    transformers = pytest.importorskip("transformers")
    _, layout, manifest, corpus = build
    tokenizer = export_hf_tokenizer(layout.path("tokenizer"), tmp_path, model_max_length=256)
    assert manifest.tokenizer.framing == tokenizer.framing.name == "eos"
    for stage in manifest.stages:
        meta = open_shard(str(Path(layout.root, stage.shards[0].path))).meta
        assert (meta.framing, meta.bos_id) == ("eos", None)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    texts = {(s, task): texts for s, files in corpus.items() for task, texts in enumerate(files)}
    found = packed.collect_pieces(layout.root, manifest)
    packed.assert_rows_encode_like_hf(found, texts, lambda t: hf(t)["input_ids"], tokenizer.eos_id)


def test_packing_quality_in_the_manifest(build):
    recipe, layout, manifest, _ = build
    slices = json.loads(Path(layout.plan_file).read_text())["slices"]
    assert [s.seq_len for s in manifest.stages] == [64, 256, 256]
    for stage, config in zip(manifest.stages, recipe.stages):
        capacity = stage.seq_len + 1
        assert stage.rows == sum(s.rows for s in stage.shards)
        assert stage.tokens + stage.padding_tokens == stage.rows * capacity
        # each slice may leave its last row part empty (a repeated source has no unused document left to
        # close it)
        assert stage.padding_tokens <= 0.005 * stage.rows * capacity + slices * capacity
        assert set(stage.source_tokens) == set(config.weights)
        assert stage.trained_rows == sum(s.visits for s in stage.shards) >= stage.rows
        for source, share in config.shares().items():
            tolerance = capacity * slices  # each slice's budget holds within a row
            trained = stage.source_trained_tokens[source]
            assert abs(trained - config.tokens * share) <= tolerance
            assert abs(trained - stage.trained_tokens * share) <= 2 * tolerance
            if slices == 1:
                assert abs(trained / stage.trained_tokens - share) <= 0.005
        for shard in stage.shards:  # every shard carries the stage's mixture
            assert set(shard.source_tokens) == set(config.weights)
    assert manifest.stages[2].source_tokens.keys() == {"hq"}
    assert manifest.stages[2].sampling["hq"] > 1


def test_shards_are_plain_arrow(build):
    import duckdb
    import polars as pl

    _, layout, manifest, _ = build
    shard = manifest.stages[1].shards[0]
    path = layout.path(shard.path)
    table = pa.ipc.open_file(path).read_all()
    assert table.num_rows == shard.rows and table.schema.field("tokens").type.list_size == 257
    frame = pl.read_ipc(path)
    assert frame.height == shard.rows and frame["tokens"].dtype == pl.Array(pl.UInt16, 257)  # vocab ≤ 65,536
    assert frame["doc_offsets"].list.last().sum() == shard.tokens
    connection = duckdb.connect()
    connection.register("shard", pa.ipc.open_file(path).read_all())
    used = connection.execute("select sum(list_last(doc_offsets)), count(*) from shard").fetchall()
    assert used == [(shard.tokens, shard.rows)]


def test_cli_inspect_verify_show(build):
    _, layout, manifest, _ = build
    runner = CliRunner()
    result = runner.invoke(cli, ["shards", "inspect", layout.root, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [s["name"] for s in summary["stages"]] == ["short", "long", "hq"]
    assert summary["stages"][1]["sources"]["web"]["tokens"] == manifest.stages[1].source_tokens["web"]
    result = runner.invoke(cli, ["shards", "inspect", layout.root])
    assert result.exit_code == 0 and "mixture" in result.output and "long" in result.output
    result = runner.invoke(cli, ["shards", "verify", layout.root])
    assert result.exit_code == 0, result.output
    assert f"{sum(len(s.shards) for s in manifest.stages)} shards" in result.output and "ok" in result.output
    result = runner.invoke(cli, ["shards", "show", layout.root, "--stage", "long", "--row", "3"])
    assert result.exit_code == 0, result.output
    assert "──── piece 1/" in result.output and "──── padding:" in result.output
    result = runner.invoke(cli, ["shards", "show", layout.root, "--stage", "nope", "--row", "0"])
    assert result.exit_code == 1 and "no stage 'nope'" in result.output


@pytest.mark.ray
@pytest.mark.slow
def test_same_bytes_with_one_and_two_ray_workers(tmp_path, ray_local):
    from gristmill.pipelines.build.engine import run_step

    first = tmp_path / "one"
    recipe, inputs, _ = _make_inputs(first)
    shutil.copytree(first, tmp_path / "two")
    for root, workers in ((first, 1), (tmp_path / "two", 2)):
        layout = BuildLayout(str(root))
        for step in shard_steps(recipe, layout, inputs, shard_bytes=SHARD_BYTES):
            run_step(step, layout, workers=workers)
    shards = sorted(p.relative_to(first) for p in first.glob("stage-*/shard-*"))
    assert len(shards) >= 8
    for rel in [*shards, Path("plan.json"), *sorted(p.relative_to(first) for p in first.glob("plan/*/*"))]:
        assert filecmp.cmp(first / rel, tmp_path / "two" / rel, shallow=False), rel
