"""`gristmill build` on the sample corpus: accounting balances, reruns resume, killed builds recover."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import BuildError, ConfigError
from gristmill.pipelines.build.driver import BuildOptions, run_build
from gristmill.pipelines.recipe import load_recipe, parse_recipe
from gristmill.shards.manifest import read_manifest

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]


def ingest_recipe(sample: Path, output: Path, **extra) -> dict:
    """The demo recipe pointed at `sample`, writing to `output`, stopping after cleaning (no stages), without
    decontamination or a quality classifier unless `extra` asks for them (test_decontam_build.py,
    test_quality*.py and the demo build test them)."""
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml").model_dump(mode="json", exclude_none=True)
    for source in recipe["sources"]:
        source["paths"] = [str(sample / p.removeprefix("sample/")) for p in source["paths"]]
    recipe.update(
        {"stages": [], "tokenizer": None, "decontam": {"enabled": False}, "quality": {}, **extra},
        output=str(output),
    )
    return recipe


def document_files(build: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(build)): p.read_bytes() for p in sorted((build / "documents").rglob("*.parquet"))
    }


def test_build_accounts_for_every_record(ray_local, sample_corpus, tmp_path):
    recipe = parse_recipe(ingest_recipe(sample_corpus, tmp_path / "b"))
    manifest = run_build(recipe, BuildOptions())
    totals = manifest.source_totals()
    assert set(totals) == {"slimpajama", "starcoderdata", "dolma", "pile"}
    for source, counts in totals.items():
        assert counts.records_in > 0, source
        assert counts.balanced(), (source, counts)
        assert counts.kept > 0
    # the excluded subset is read, counted, and never kept
    github = manifest.accounting["slimpajama"].get("RedPajamaGithub")
    assert (
        github is not None and github.kept == 0 and github.filtered == {"excluded_subset": github.records_in}
    )
    # the manifest on disk is what run_build returned
    assert read_manifest(str(tmp_path / "b")).accounting == manifest.accounting


def test_rerun_skips_finished_work_and_refuses_another_recipe(ray_local, sample_corpus, tmp_path):
    data = ingest_recipe(sample_corpus, tmp_path / "b", seed=5)
    run_build(parse_recipe(data), BuildOptions())
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b" / "documents").rglob("*.parquet")}
    run_build(parse_recipe(data), BuildOptions())
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "b" / "documents").rglob("*.parquet")}
    assert before == after, "a rerun rewrote finished outputs"
    with pytest.raises(BuildError, match="different recipe"):
        run_build(parse_recipe({**data, "seed": 6}), BuildOptions())


def test_a_rerun_removes_the_temporary_files_a_killed_build_left(ray_local, sample_corpus, tmp_path):
    build = tmp_path / "b"
    data = ingest_recipe(sample_corpus, build)
    run_build(parse_recipe(data), BuildOptions())
    finished = document_files(build)
    # what a build killed mid-write leaves: a tokenizer being trained, half-written files beside outputs
    (build / ".tokenizer.k1ll3d" / "sample").mkdir(parents=True)
    (build / ".tokenizer.k1ll3d" / "sample" / "train.jsonl").write_text("{}\n")
    leftovers = [
        build / ".manifest.json.a1b2c3.tmp",
        build / "documents" / "dolma" / ".00000.parquet.x9.tmp",
        build / "clean" / "pile" / "00000.parquet.link.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    run_build(parse_recipe(data), BuildOptions())
    assert not (build / ".tokenizer.k1ll3d").exists()
    assert [p for p in leftovers if p.exists()] == []
    assert not [p for p in build.rglob("*.tmp") if "logs" not in p.relative_to(build).parts]
    assert document_files(build) == finished


def test_fresh_refuses_a_directory_that_is_not_a_build(tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "precious.txt").write_text("do not delete")
    data = ingest_recipe(tmp_path / "no-corpus", mine)
    with pytest.raises(BuildError, match=r"holds: precious\.txt, sub") as err:
        run_build(parse_recipe(data), BuildOptions(fresh=True))
    assert err.value.path == str(mine)
    result = CliRunner().invoke(cli, ["build", "--fresh", _write_yaml(tmp_path, data)])
    assert result.exit_code != 0 and "--fresh deletes only a gristmill build" in result.output
    assert (mine / "precious.txt").read_text() == "do not delete" and (mine / "sub").is_dir()


@pytest.mark.slow
def test_killed_build_resumes_to_identical_outputs(ray_local, sample_corpus, tmp_path):
    reference = tmp_path / "ref"
    run_build(parse_recipe(ingest_recipe(sample_corpus, reference, files_per_task=1)), BuildOptions())

    killed = tmp_path / "killed"
    recipe_file = tmp_path / "r.json"
    recipe_file.write_text(json.dumps(ingest_recipe(sample_corpus, killed, files_per_task=1)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gristmill", "build", str(recipe_file), "--num-cpus", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    completions = killed / "logs" / "ingest" / "completions"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if completions.exists() and len(list(completions.iterdir())) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed; the test needs a slower build"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "manifest.json").exists()

    run_build(parse_recipe(json.loads(recipe_file.read_text())), BuildOptions())
    assert document_files(killed) == document_files(reference)
    assert read_manifest(str(killed)).accounting == read_manifest(str(reference)).accounting


def test_strict_stops_at_first_bad_record_naming_file_and_line(ray_local, sample_corpus, tmp_path):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "a.jsonl").write_text('{"text": "fine"}\n{"text": 3}\n{"text": "also fine"}\n')
    data = ingest_recipe(sample_corpus, tmp_path / "b")
    data["sources"] = [{"name": "generic", "format": "jsonl", "paths": [str(bad_dir / "*.jsonl")]}]
    data["filters"] = {"enabled": False}
    manifest = run_build(parse_recipe(data), BuildOptions())
    counts = manifest.source_totals()["generic"]
    assert (counts.records_in, counts.kept, counts.quarantined) == (3, 2, 1)
    quarantine = (tmp_path / "b" / "quarantine" / "generic" / "00000.jsonl").read_text().splitlines()
    assert len(quarantine) == 1 and "line 2" in json.loads(quarantine[0])["where"]

    result = CliRunner().invoke(
        cli,
        ["build", "--strict", "--fresh", "--set", f"output={tmp_path / 's'}", _write_yaml(tmp_path, data)],
    )
    assert result.exit_code == 1, result.output
    assert "a.jsonl" in result.output and "line 2" in result.output


def _write_yaml(tmp_path: Path, data: dict) -> str:
    import yaml

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_recipe_inserts_a_stock_datatrove_filter_and_its_drops_are_accounted(
    ray_local, sample_corpus, tmp_path
):
    # Between Gopher quality and Gopher repetition: drop every document with the word "import" (the sample's
    # prose is Python's documentation, so some documents of each text source have it).
    step = {
        "step": "datatrove.pipeline.filters.RegexFilter",
        "kwargs": {"regex_exp": r"\bimport\b"},
        "name": "no-import",
        "after": "gopher_quality",
    }
    recipe = parse_recipe(ingest_recipe(sample_corpus, tmp_path / "b", ingest_steps=[step]))
    manifest = run_build(recipe, BuildOptions())
    dropped = {
        source: sum(c.filtered.get("no-import", 0) for c in subsets.values())
        for source, subsets in manifest.accounting.items()
    }
    assert sum(dropped.values()) > 0, dropped
    for source, counts in manifest.source_totals().items():
        assert counts.balanced(), (source, counts)
    # every document the regex matches is gone from the kept documents; none that it does not match is
    import re

    import pyarrow.parquet as pq

    pattern = re.compile(r"\bimport\b")
    for path in (tmp_path / "b" / "documents").rglob("*.parquet"):
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        assert not any(pattern.search(t) for t in texts), path
    samples = [
        json.loads(line)
        for p in (tmp_path / "b" / "dropped").rglob("*.jsonl")
        for line in p.read_text().splitlines()
    ]
    assert any(s["reason"] == "no-import" and pattern.search(s["text"]) for s in samples)


def test_recipe_check_refuses_a_bad_ingest_step(sample_corpus, tmp_path):
    base = ingest_recipe(sample_corpus, tmp_path / "b")
    cases = {
        "datatrove.pipeline.filters.NoSuchFilter": "names nothing importable",
        "json.JSONDecoder": "not a datatrove PipelineStep",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message) as e:
            parse_recipe({**base, "ingest_steps": [{"step": path}]})
        assert "ingest_steps.0" in str(e.value)
    with pytest.raises(ConfigError, match="unexpected keyword argument 'nope'"):
        parse_recipe(
            {
                **base,
                "ingest_steps": [
                    {
                        "step": "datatrove.pipeline.filters.RegexFilter",
                        "kwargs": {"regex_exp": "x", "nope": 1},
                    }
                ],
            }
        )
    with pytest.raises(ConfigError, match="unknown rule set 'gopher'"):
        parse_recipe(
            {
                **base,
                "ingest_steps": [
                    {
                        "step": "datatrove.pipeline.filters.RegexFilter",
                        "kwargs": {"regex_exp": "x"},
                        "after": "gopher",
                    }
                ],
            }
        )
