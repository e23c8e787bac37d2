"""A tiny ablation end to end: equal tokens per run, one decontaminated evaluation set, ranked results with
decisions, the report; a killed run resumes, a rerun skips what is done, and Ray runs the same jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gristmill.ablate.config import load_ablation
from gristmill.ablate.runner import run_ablation
from gristmill.cli import cli
from gristmill.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def candidates(builds, build_fixture, tmp_path_factory):
    """Two finished builds with the same tokenizer (the pydoc build and a small one), and held-out text."""
    root = tmp_path_factory.mktemp("ablate")
    texts, held_out = build_fixture.documents()
    small = root / "small"
    build_fixture.write_build(
        small, texts[:400], builds.tokenizer, build_fixture.TRAIN_STAGES[:1], name="small"
    )
    eval_file = root / "held-out.jsonl"
    eval_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in held_out[:40]))
    return {"pydoc": str(builds.train), "small": str(small), "eval": str(eval_file)}


def _config(tmp_path: Path, candidates, **overrides) -> Path:
    data = {
        "name": "tiny",
        "output": str(tmp_path / "out"),
        "candidates": [
            {"name": "pydoc", "build": candidates["pydoc"]},
            {"name": "small", "build": candidates["small"]},
        ],
        "proxy": "cpu-tiny",
        "tokens_per_param": 0.15,  # 8 steps of 2048 tokens with the fixture's 384-token vocabulary
        "tokens_per_step": 2048,
        "train": {"micro_batch_tokens": 512},
        "seeds": [0, 1],
        "eval": {
            "text": {"held": [candidates["eval"]]},
            "tasks": ["arc_easy:rc_0shot"],
            "task_items": 10,
            "every_steps": 4,
        },
        **overrides,
    }
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_tiny_ablation_ranks_resumes_and_skips(candidates, tmp_path, monkeypatch):
    from gristmill.trainer import train as train_module

    config = load_ablation(str(_config(tmp_path, candidates)))
    real_train = train_module.train
    killed = []

    def killed_once(settings, **kwargs):  # the first run is killed after step 4, past its checkpoint at 4
        if not killed:
            killed.append(settings.output_dir)
            real_train(settings, stop_at_step=5, **kwargs)
            raise KeyboardInterrupt
        return real_train(settings, **kwargs)

    monkeypatch.setattr(train_module, "train", killed_once)
    with pytest.raises(KeyboardInterrupt):
        run_ablation(config, console=lambda line: None)
    monkeypatch.setattr(train_module, "train", real_train)

    lines: list[str] = []
    summary = run_ablation(config, console=lines.append)
    assert any("resuming from step 4 of 8" in line for line in lines)
    assert (tmp_path / "out" / "results.json").exists() and (tmp_path / "out" / "report.html").exists()
    runs = summary["runs"]
    assert {(r["candidate"], r["seed"]) for r in runs} == {
        ("pydoc", 0),
        ("pydoc", 1),
        ("small", 0),
        ("small", 1),
    }
    assert {r["tokens"] for r in runs} == {8 * 2048} and {r["steps"] for r in runs} == {8}
    records = [json.loads(x) for x in Path(killed[0], "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == sorted(
        {r["step"] for r in records}
    )  # no step twice after the kill

    held = summary["metrics"]["text_bpb/held"]
    assert [r["candidate"] for r in held["ranking"]] in (["pydoc", "small"], ["small", "pydoc"])
    assert all(r["n"] == 2 and r["low"] <= r["mean"] <= r["high"] for r in held["ranking"])
    (pair,) = held["pairs"]
    assert isinstance(pair["decided"], bool) and pair["better"] == held["ranking"][0]["candidate"]
    assert {"task_bpb/arc_easy:rc_0shot", "task_acc/arc_easy:rc_0shot"} <= set(summary["metrics"])
    assert summary["decontamination"]["sets"]["held"]["documents"] == 40
    page = (tmp_path / "out" / "report.html").read_text()
    assert "text_bpb/held" in page and "decided" in page and page.count("<img") >= 2

    lines.clear()
    again = run_ablation(config, console=lines.append)
    assert sum("done earlier, skipped" in line for line in lines) == 4
    assert again["metrics"] == summary["metrics"]

    changed = load_ablation(str(_config(tmp_path, candidates, tokens_per_param=0.3)))
    with pytest.raises(ConfigError, match="started with another configuration"):
        run_ablation(changed, console=lambda line: None)


@pytest.mark.ray
def test_on_ray_every_run_is_a_task_and_gives_the_same_results(candidates, tmp_path, ray_local):
    path = _config(tmp_path, candidates, ray={"gpus_per_run": 0, "cpus_per_run": 1})
    result = CliRunner().invoke(cli, ["ablate", str(path), "--address", "local", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert "4 training job(s) submitted to Ray" in result.stderr
    local = run_ablation(
        load_ablation(str(path), {"output": str(tmp_path / "local")}), console=lambda line: None
    )
    for metric, entry in summary["metrics"].items():
        for ours, theirs in zip(entry["ranking"], local["metrics"][metric]["ranking"]):
            assert ours["candidate"] == theirs["candidate"]
            assert ours["mean"] == pytest.approx(theirs["mean"], rel=1e-4)


def test_a_bad_ablation_is_refused_naming_each_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "output": "o",
                "candidates": [{"name": "A", "build": "b"}, {"name": "b", "recipe": "r.yaml", "build": "b"}],
                "proxy": "gpt-9",
                "seeds": [0],
                "eval": {},
            }
        )
    )
    result = CliRunner().invoke(cli, ["ablate", str(path)])
    assert result.exit_code == 1
    for field in ("candidates.0.name", "candidates.1", "proxy", "seeds", "eval"):
        assert f"  {field}: " in result.output, (field, result.output)
