"""The tokenize → plan → pack steps on a tiny build: every document rebuilt from its pieces, packing quality,
plain-Arrow shards, the shards CLI, and byte-identical output with 1 and 2 Ray workers."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.steps import shard_steps
from gristmill.shards.reader import open_shard
from gristmill.tokenizer.hf_export import export_hf_tokenizer
from gristmill.tokenizer.interface import Tokenizer

from . import packed, tiny


@pytest.fixture(scope="module", params=["one plan task", "plan in slices"])
def build(tmp_path_factory, request):
    """A packed tiny build (steps run in-process): (recipe, layout, manifest, corpus); planned by one task,
    or in slices of 100 documents (smaller shards, so that every stage has enough for each slice)."""
    sliced = request.param == "plan in slices"
    if sliced:
        recipe, layout, manifest, corpus = request.getfixturevalue("tiny_sliced")
    else:
        recipe, layout, manifest, corpus = tiny.build_tiny(tmp_path_factory.mktemp("build"))
    plan = json.loads(Path(layout.plan_file).read_text())
    if sliced:  # as many slices as the fewest shards of a stage: hq's, stored once
        assert plan["slices"] == min(plan["shards"]) == plan["shards"][2] > 1
    else:
        assert plan["slices"] == 1
    return recipe, layout, manifest, corpus


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
    recipe, inputs, _ = tiny.make_inputs(first)
    shutil.copytree(first, tmp_path / "two")
    for root, workers in ((first, 1), (tmp_path / "two", 2)):
        layout = BuildLayout(str(root))
        for step in shard_steps(recipe, layout, inputs, shard_bytes=tiny.SHARD_BYTES):
            run_step(step, layout, workers=workers)
    shards = sorted(p.relative_to(first) for p in first.glob("stage-*/*"))  # shards, provenance, index
    assert len(shards) >= 8 and any(p.name.endswith(".docs.parquet") for p in shards)
    for rel in [*shards, Path("plan.json"), *sorted(p.relative_to(first) for p in first.glob("plan/*/*"))]:
        assert filecmp.cmp(first / rel, tmp_path / "two" / rel, shallow=False), rel
