"""The training loop on a small real build: it learns, follows the curriculum, logs, refuses bad configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import BuildError, ConfigError
from gristmill.shards.curriculum import Curriculum
from gristmill.shards.manifest import Manifest, ShardEntry, SourceEntry, SourceRows, StageEntry
from gristmill.trainer import train as train_module
from gristmill.trainer.config import load_train_config, parse_train_config
from gristmill.trainer.curriculum import schedule_stages
from gristmill.trainer.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


def config(builds, out: Path, **overrides):
    base = dict(
        build=str(builds.train),
        model="llama-tiny",
        output_dir=str(out),
        micro_batch_tokens=512,
        optimizer={"lr": 3e-3, "weight_decay": 0.0},
        schedule={"warmup_steps": 10},
        deterministic=True,
        log_every=1000,
    )
    return parse_train_config({**base, **overrides})


def write_run(path: Path, build, out: Path, **extra) -> Path:
    """Write a run config file for the llama-tiny model on `build` (as `gristmill train` reads one)."""
    run = {"build": str(build), "model": "llama-tiny", "output_dir": str(out), "micro_batch_tokens": 512}
    path.write_text(yaml.safe_dump({**run, **extra}))
    return path


def test_held_out_loss_falls_well_below_unigram_entropy(builds, build_fixture, tmp_path):
    cfg = config(
        builds,
        tmp_path,
        max_steps=120,
        eval={"build": str(builds.held_out), "every_steps": 60, "batches": 12},
    )
    result = train(cfg, console=lambda line: None)
    baseline = build_fixture.unigram_entropy(builds.held_out)
    assert result.eval_losses[120] < result.eval_losses[60]
    assert result.eval_losses[120] < 0.8 * baseline, (result.eval_losses, baseline)
    first, last = sum(result.losses[s] for s in range(1, 11)), sum(result.losses[s] for s in range(111, 121))
    assert last < first


@pytest.fixture(scope="module")
def small_build(builds, build_fixture, tmp_path_factory):
    """A two-stage build of 100 documents: a few optimizer steps per stage."""
    texts, _ = build_fixture.documents()
    root = tmp_path_factory.mktemp("small") / "build"
    build_fixture.write_build(root, texts[:100], builds.tokenizer, build_fixture.TRAIN_STAGES, name="small")
    return root


def test_curriculum_switches_sequence_length_at_the_manifest_stage_boundary(
    builds, small_build, tmp_path, monkeypatch
):
    seen = []  # (step, per-micro-batch (B, L)) as the loop feeds the model
    real_step = train_module.train_step

    def recording_step(model, micro_batches, runtime):
        seen.append([tuple(b["input_ids"].shape) for b in micro_batches])
        return real_step(model, micro_batches, runtime)

    monkeypatch.setattr(train_module, "train_step", recording_step)
    cfg = config(builds, tmp_path, build=str(small_build), log_every=1)
    result = train(cfg, console=lambda line: None)

    manifest = Manifest.model_validate_json((small_build / "manifest.json").read_text())
    first, second = manifest.stages
    steps_1, steps_2 = first.rows * first.seq_len // 1024, second.rows * second.seq_len // 1024
    assert steps_1 >= 2 and steps_2 >= 2
    assert [(s.name, s.steps, s.accumulation) for s in result.stages] == [
        (first.name, steps_1, 2),
        (second.name, steps_2, 2),
    ]
    assert seen == [[(8, 64)] * 2] * steps_1 + [[(4, 128)] * 2] * steps_2
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["seq_len"] for r in records] == [64] * steps_1 + [128] * steps_2
    assert [r["tokens"] for r in records] == [1024 * (i + 1) for i in range(steps_1 + steps_2)]
    for r in records:
        assert {"stage", "step", "loss", "tokens_per_s", "lr", "grad_norm", "mfu"} <= set(r)


def test_eval_on_held_out_rows_of_the_training_build_never_trained_on(
    builds, small_build, tmp_path, monkeypatch
):
    trained, evaluated = [], []  # (stage, row) as the loop feeds the model
    real_step, real_evaluate = train_module.train_step, train_module.evaluate

    def recording_step(model, micro_batches, runtime):
        trained.extend((b["stage"], r) for b in micro_batches for r in b["row_ids"].tolist())
        return real_step(model, micro_batches, runtime)

    def recording_evaluate(scorer, eval_set, ranks):
        evaluated.append(sorted(("stage-1-64", r) for r in eval_set.row_ids.tolist()))
        return real_evaluate(scorer, eval_set, ranks)

    monkeypatch.setattr(train_module, "train_step", recording_step)
    monkeypatch.setattr(train_module, "evaluate", recording_evaluate)
    cfg = config(
        builds,
        tmp_path,
        build=str(small_build),
        eval={"holdout_rows": 16, "stage": "stage-1-64", "every_steps": 2, "batches": 2},
    )
    result = train(cfg, console=lambda line: None)

    manifest = Manifest.model_validate_json((small_build / "manifest.json").read_text())
    first = manifest.stages[0]
    held_rows = Curriculum(manifest, {"stage-1-64": 16}).held_out_rows("stage-1-64")
    held_out = {("stage-1-64", int(r)) for r in held_rows}
    assert evaluated and all(rows == sorted(held_out) for rows in evaluated)  # 2 batches of 8 rows: all 16
    assert not held_out & set(trained)
    trained_first = [r for name, r in trained if name == "stage-1-64"]
    assert len(trained_first) == len(set(trained_first))  # one epoch of the training rows, none twice
    assert result.stages[0].steps == (first.rows - 16) * 64 // 1024  # the epoch is the rows left
    total = sum(s.steps for s in result.stages)
    assert sorted(result.eval_losses) == sorted(
        {*range(2, total + 1, 2), total}
    )  # every 2 steps, and at the end


def test_eval_takes_held_out_rows_from_at_most_one_source_and_needs_something(builds, tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        config(builds, tmp_path, eval={"build": str(builds.held_out), "holdout_rows": 8})
    with pytest.raises(ConfigError, match="eval needs something to score"):
        config(builds, tmp_path, eval={"every_steps": 8})
    with pytest.raises(ConfigError, match="tasks are task:variant"):
        config(builds, tmp_path, eval={"tasks": ["arc_easy"]})
    with pytest.raises(ConfigError, match="cannot hold out 1000000000 of stage"):
        train(config(builds, tmp_path, eval={"holdout_rows": 10**9}))


def test_dataloader_workers_feed_the_same_batches(builds, tmp_path):
    runs = [
        train(
            config(builds, tmp_path / f"workers-{w}", max_steps=3, data_workers=w), console=lambda line: None
        )
        for w in (0, 2)
    ]
    assert runs[0].losses == runs[1].losses


def test_stage_batch_sizes_come_from_the_manifest_with_accumulation_derived():
    def stage(number, name, seq_len, tokens_per_step, rows):
        tokens = rows * (seq_len + 1)
        shard = ShardEntry(
            path=f"{name}/shard-00000.arrow",
            rows=rows,
            tokens=tokens,
            source_tokens={"web": tokens},
            source_rows=[SourceRows(source="web", rows=rows, passes=1, trained_tokens=tokens)],
            xxh3="0",
            bytes=1,
        )
        return StageEntry.of_shards(name, number, seq_len, tokens_per_step, [shard], {"web": 1.0})

    # Fox-1: 2M-token batches at 2K, 4M at 8K; 16K tokens per GPU per micro-batch on 8 GPUs
    manifest = Manifest(
        name="fox",
        recipe={},
        recipe_hash="",
        seed=0,
        sources=[SourceEntry(name="web", format="jsonl", kind="text", priority=0)],
        accounting={},
        stages=[stage(1, "short", 2048, 2 << 20, 10_000), stage(2, "long", 8192, 4 << 20, 5_000)],
    )
    cfg = parse_train_config(dict(build="b", output_dir="o", model="fox1-1.6b", micro_batch_tokens=16384))
    short, long = schedule_stages(cfg, Curriculum(manifest), cfg.model, world_size=8)
    assert (short.micro_batch_rows, short.accumulation, short.steps) == (8, 16, 10_000 * 2048 // (2 << 20))
    assert (long.micro_batch_rows, long.accumulation, long.first_step) == (2, 32, short.steps)
    with pytest.raises(ConfigError, match="not a whole number of micro-batches"):
        schedule_stages(cfg, Curriculum(manifest), cfg.model, world_size=3)


def test_config_that_does_not_fit_the_build_is_refused(builds, tmp_path):
    with pytest.raises(ConfigError, match="vocab_size 100 is smaller than the build tokenizer's vocab_size"):
        train(config(builds, tmp_path, model={"preset": "llama-tiny", "vocab_size": 100}))
    with pytest.raises(ConfigError, match="sequence length 128, above the model's max_seq_len 64"):
        train(config(builds, tmp_path, model={"preset": "llama-tiny", "max_seq_len": 64}))
    with pytest.raises(ConfigError, match="not a multiple of stage"):
        train(config(builds, tmp_path, micro_batch_tokens=100))
    with pytest.raises(BuildError, match="no build here"):
        train(config(builds, tmp_path, build=str(tmp_path / "missing")))


def test_bad_config_file_names_every_bad_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "build": "b",
                "output_dir": "o",
                "model": "llama-tiny",
                "micro_batch_tokens": 512,
                "optimizer": {"lr": -1},
                "log_every": 0,
                "no_such_field": 1,
            }
        )
    )
    with pytest.raises(ConfigError, match=r"3 problem\(s\)") as e:
        load_train_config(str(path))
    assert e.value.path == str(path)
    for field in ("optimizer.lr", "log_every", "no_such_field"):
        assert f"  {field}: " in e.value.message, field
    path.write_text(
        yaml.safe_dump({"build": "b", "output_dir": "o", "model": "gpt-9", "micro_batch_tokens": 512})
    )
    with pytest.raises(ConfigError, match="unknown model preset 'gpt-9'"):
        load_train_config(str(path))


def test_gristmill_train_cli(builds, tmp_path):
    path = write_run(tmp_path / "run.yaml", builds.train, tmp_path / "run", max_steps=3, log_every=1)
    result = CliRunner().invoke(cli, ["train", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["steps"] == 3 and summary["checkpoint"].endswith("step-3")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]

    write_run(path, tmp_path / "nowhere", tmp_path / "run2")
    result = CliRunner().invoke(cli, ["train", str(path)])
    assert result.exit_code == 1 and "no build here" in result.output


def test_the_trainer_says_what_it_does_resumes_and_finishes(builds, tmp_path):
    """Before step 1 a summary (and a warning for a max_steps the curriculum cannot give); a stopped run
    says so, a resumed one says from which step, a finished one that it is finished; metrics.jsonl has
    every step once, though the stopped run logged a step after its last checkpoint."""
    path = write_run(
        tmp_path / "run.yaml", builds.train, tmp_path / "run", log_every=1, checkpoint={"every_steps": 2}
    )
    first = CliRunner().invoke(cli, ["train", str(path), "--set", "max_steps=100000", "--stop-at-step", "3"])
    assert first.exit_code == 0, first.output
    out = first.stderr
    total = (
        sum(
            s.rows * s.seq_len
            for s in Manifest.model_validate_json((builds.train / "manifest.json").read_text()).stages
        )
        // 1024
    )
    for expected in (
        f"build {builds.train}: trainer-test, 2 stage(s)",
        "model llama-tiny: 2 layers, hidden 64, heads 4/2 × 16, vocab 384, 117.06K parameters",
        "device cpu × 1, float32; ops: rms_norm reference, rope reference, swiglu reference, "
        "cross_entropy reference, attention reference",
        "micro-batch 512 tokens per device",
        "  stage stage-1-64 (seq_len 64): steps 1–",
        "1,024 tokens/step = 8 rows × 2 micro-batch(es) × 1 device(s)",
        f"warning: max_steps 100000 is beyond the curriculum's {total} steps, so the run trains {total}",
        f"stopped after step 3 of {total}; checkpoint {tmp_path / 'run' / 'checkpoints' / 'step-2'}",
    ):
        assert expected in out, (expected, out)
    assert out.index("micro-batch") < out.index("step 1/")

    second = CliRunner().invoke(cli, ["train", str(path), "--set", "max_steps=4"])
    assert second.exit_code == 0, second.output
    assert "resuming from step 2 of 4" in second.stderr and "finished: 4 steps, 4,096 tokens" in second.stderr
    assert "warning" not in second.stderr
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]  # step 3 of the stopped run was dropped, then logged again

    third = CliRunner().invoke(cli, ["train", str(path), "--set", "max_steps=4"])
    assert third.exit_code == 0, third.output
    assert "finished: the run trained all 4 steps" in third.stderr and "nothing to do" in third.stderr


def test_export_help_names_the_demo_run_and_the_export_holds_only_model_and_tokenizer(builds, tmp_path):
    help_text = CliRunner().invoke(cli, ["export", "--help"]).output
    demo = yaml.safe_load((Path(__file__).parents[2] / "runs" / "demo.yaml").read_text())
    assert (
        f"gristmill export {demo['output_dir']} --hf" in help_text
    )  # a path `make demo` + the demo run write

    tokenizer = tmp_path / "tokenizer"  # a build's tokenizer directory, with what training it left behind
    builds.tokenizer.save(tokenizer)
    (tokenizer / "evaluation.json").write_text("{}")
    (tokenizer / "settings.json").write_text("{}")
    (tokenizer / "sample").mkdir()
    (tokenizer / "sample" / "heldout.jsonl").write_text('{"text": "x"}\n')
    cfg = config(builds, tmp_path / "run", max_steps=2)
    train(cfg, console=lambda line: None)
    result = CliRunner().invoke(
        cli, ["export", str(tmp_path / "run"), "--hf", str(tmp_path / "hf"), "--tokenizer", str(tokenizer)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
