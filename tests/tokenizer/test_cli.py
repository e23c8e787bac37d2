"""`gristmill tokenizer train|eval` through click's CliRunner."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from gristmill.cli import cli


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_train_from_files_with_weights_then_eval_side_by_side(tmp_path, corpus_files):
    out = tmp_path / "tok"
    result = _run(
        "tokenizer",
        "train",
        str(out),
        "--files",
        f"prose={corpus_files}/prose/*",
        "--files",
        f"code={corpus_files}/code/*.txt",
        "--weight",
        "prose=1",
        "--weight",
        "code=1",
        "--vocab-size",
        "500",
        "--pad-to-multiple",
        "64",
        "--seed",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["vocab_size"] == 512 and set(report["sample"]["sources"]) == {"prose", "code"}
    assert (out / "tokenizer.model").exists() and (out / "evaluation.json").exists()
    hf = tmp_path / "hf"
    assert (
        _run(
            "tokenizer",
            "train",
            str(hf),
            "--files",
            f"{corpus_files}/code/*.txt",
            "--backend",
            "hf-bpe",
            "--hf-pretokenizer",
            "bounded",
            "--vocab-size",
            "400",
        ).exit_code
        == 0
    )
    assert json.loads((hf / "settings.json").read_text())["trainer"]["pretokenizer"] == "bounded"
    result = _run(
        "tokenizer",
        "eval",
        str(out),
        str(hf / "tokenizer.json"),
        "--files",
        f"code={corpus_files}/code/*.txt",
    )
    assert result.exit_code == 0 and "side by side" in result.output and "bytes_per_token" in result.output
    result = _run("tokenizer", "eval", str(out), "--files", f"{corpus_files}/prose/*", "--json")
    evaluation = json.loads(result.output)[0]
    assert evaluation["total"]["round_trip_lossless"] and evaluation["sources"].keys() == {"prose"}


def _recipe(tmp_path, build):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
name: t
seed: 5
output: {build}
sources:
  - {{name: prose, format: jsonl, paths: [x.jsonl]}}
  - {{name: code, format: jsonl, paths: [y.jsonl]}}
tokenizer:
  train: {{vocab_size: 400, heldout_fraction: 0.1}}
stages:
  - {{name: s, seq_len: 64, tokens: 1000, tokens_per_step: 128, weights: {{prose: 3, code: 1}}}}
""")
    return recipe


def test_train_from_a_recipe_build(tmp_path, documents):
    build = tmp_path / "build"
    recipe = _recipe(tmp_path, build)
    result = _run("tokenizer", "train", str(tmp_path / "tok"), "--recipe", str(recipe))
    assert result.exit_code == 1 and "no cleaned documents" in result.output
    assert "gristmill build" in result.output
    for source in ("prose", "code"):
        docs = [d for d in documents if d[1] == source]
        (build / "clean" / source).mkdir(parents=True)
        pq.write_table(
            pa.table(
                {
                    "id": [str(i) for i in range(len(docs))],
                    "text": [d[0] for d in docs],
                    "source": [source] * len(docs),
                    "subset": [d[2] for d in docs],
                    "metadata": ["{}"] * len(docs),
                }
            ),
            build / "clean" / source / "00000.parquet",
        )
    result = _run("tokenizer", "train", str(tmp_path / "tok"), "--recipe", str(recipe), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["vocab_size"] == 400 and report["sample"]["seed"] == 5
    assert report["sample"]["sources"]["prose"]["weight"] == 0.75


def test_bad_input_messages(tmp_path):
    result = _run("tokenizer", "train", str(tmp_path / "t"), "--files", str(tmp_path / "none*.txt"))
    assert result.exit_code == 1 and "matches no files" in result.output
    (tmp_path / "a.txt").write_text("some text")
    result = _run(
        "tokenizer", "train", str(tmp_path / "t"), "--files", str(tmp_path / "a.txt"), "--weight", "x"
    )
    assert result.exit_code == 2 and "SOURCE=WEIGHT" in result.output
    result = _run(
        "tokenizer", "train", str(tmp_path / "t"), "--files", str(tmp_path / "a.txt"), "--vocab-size", "10"
    )
    assert result.exit_code == 1 and "vocab_size" in result.output
    assert "Examples" in _run("tokenizer", "train", "--help").output
    assert "Examples" in _run("tokenizer", "eval", "--help").output
