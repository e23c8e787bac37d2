"""Decontamination in a build (Ray): items of a user's evaluation set planted in real documents are cut out or
dropped, the accounting balances with them, and the manifest, the match records, the report, the summary and
`gristmill decontam check` all say what was found."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.pipelines.build.driver import BuildOptions, run_build
from gristmill.pipelines.build.progress import decontam_caption
from gristmill.pipelines.config.decontam import BenchmarkFile
from gristmill.pipelines.decontam.items import read_benchmark_file
from gristmill.pipelines.origins import check_origins
from gristmill.pipelines.recipe import parse_recipe
from gristmill.sample.text import doc_topics

pytestmark = pytest.mark.ray

ITEMS = [
    {
        "id": "river",
        "question": "Which river flows through the valley of the old mills before it reaches the harbour?",
        "answer": "The Gristle, which turned every wheel in the valley for three hundred years.",
    },
    {
        "id": "bread",
        "question": "How long must the miller's dough rest before the second proving in a cold kitchen?",
        "answer": "About four hours, or overnight when the kitchen is colder than the cellar.",
    },
    {
        "id": "unused",
        "question": "Which bird nests under the eaves of the granary every spring?",
        "answer": "Swifts",
    },
]


def corpus(root: Path) -> tuple[Path, Path, list[str]]:
    """Write the documents (a cut, a drop, and clean ones) and the evaluation set; return their paths and
    the texts of the two planted documents."""
    topics = [t for t in doc_topics() if len(t) > 4000][:10]
    river, bread = ITEMS[0], ITEMS[1]
    planted = [
        topics[0][:2000]
        + "\n\n"
        + river["question"].upper()
        + "\n"
        + river["answer"]
        + "\n\n"
        + topics[0][2000:],
        "Quiz night!\n" + bread["question"].replace(" ", "  ") + "\n" + bread["answer"],
    ]
    docs = [{"id": f"doc{i}", "text": t} for i, t in enumerate(planted + topics[1:])]
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    evals = root / "evals.jsonl"
    evals.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    return data, evals, planted


def recipe_for(root: Path, data: Path, evals: Path, **decontam) -> dict:
    return {
        "name": "decontam",
        "output": str(root / "build"),
        "sources": [
            {
                "name": "web",
                "format": "jsonl",
                "paths": [str(data)],
                "fields": {"id": "id"},
                "profiles": {"*": "none"},
            }
        ],
        "decontam": {
            "enabled": True,
            "benchmarks": [],
            "files": [
                {
                    "name": "mill-quiz",
                    "paths": [str(evals)],
                    "id": "id",
                    "prompt": ["question"],
                    "text": ["answer"],
                }
            ],
            **decontam,
        },
        "dedupe": {"near": {"enabled": False}},
        "tokenizer": {
            "train": {"backend": "sentencepiece-bpe", "vocab_size": 400, "sample_bytes": 1_000_000}
        },
        "stages": [
            {"name": "s", "seq_len": 256, "tokens": 200_000, "tokens_per_step": 1024, "weights": {"web": 1}}
        ],
    }


def test_a_build_cuts_and_drops_planted_items_and_accounts_for_them(ray_local, tmp_path):
    data, evals, planted = corpus(tmp_path)
    recipe = parse_recipe(recipe_for(tmp_path, data, evals, action="cut", margin=50, min_chars_left=400))
    manifest = run_build(recipe, BuildOptions())

    counts = manifest.accounting["web"]["default"]
    assert counts.balanced() and counts.filtered == {"decontam:mill-quiz": 1} and counts.kept == 10
    entry = manifest.decontamination
    assert entry is not None and entry.settings["action"] == "cut" and entry.settings["n"] == 13
    (bench,) = entry.benchmarks
    spec = BenchmarkFile(name="mill-quiz", paths=[str(evals)], id="id", prompt=["question"], text=["answer"])
    assert (bench.name, bench.items, bench.checksum) == ("mill-quiz", 3, read_benchmark_file(spec).checksum)
    found = entry.found["mill-quiz"]["web"]
    assert (found.items, found.documents_cut, found.documents_dropped) == (2, 1, 1)
    assert found.chars_removed >= len(planted[1]) + 2 * 50 and found.tokens_removed > 0
    assert "1 documents dropped (mill-quiz 1)" in decontam_caption(manifest) and "1 cut" in decontam_caption(
        manifest
    )

    build = Path(recipe.output)
    kept = {r["id"]: r["text"] for p in build.glob("clean/*/*.parquet") for r in pq.read_table(p).to_pylist()}
    assert "web/doc1" not in kept
    cut = kept["web/doc0"]
    assert "OLD MILLS" not in cut and "Gristle" not in cut and len(cut) > 3000
    assert cut.startswith(planted[0][:1000]) and cut.endswith(planted[0][-1000:].rstrip())
    matches = [json.loads(line) for p in build.glob("decontamination/matches/*/*.jsonl") for line in p.open()]
    assert {(m["document"], m["item"], m["action"]) for m in matches} == {
        ("web/doc0", "river", "cut"),
        ("web/doc1", "bread", "drop"),
    }
    river = next(m for m in matches if m["item"] == "river")
    assert river["text"].startswith("WHICH RIVER FLOWS") and "three hundred years" in river["text"]
    report = (build / "reports" / "index.html").read_text()
    assert (
        "<h2>Decontamination</h2>" in report and "mill-quiz / web" in report and "WHICH RIVER FLOWS" in report
    )
    # provenance: every segment round-trips to its input record, but the cut document's, counted as changed
    origins = check_origins(str(build), recipe)
    assert origins.ok and origins.changed > 0 and origins.matched + origins.changed == origins.segments
    assert (build / "decontamination" / "index" / "meta.json").exists()

    # the same files without a build: `gristmill decontam check` finds the same, and can fail a pipeline on it
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps(recipe_for(tmp_path, data, evals)))
    out = CliRunner().invoke(cli, ["decontam", "check", "--recipe", str(recipe_file), "--json", str(data)])
    assert out.exit_code == 0, out.output
    checked = json.loads(out.output)
    assert checked["documents"] == {str(data): 11}
    assert checked["found"]["mill-quiz"][str(data)] == {
        "items": 2,
        "documents_dropped": 2,
        "documents_cut": 0,
        "chars_removed": len(planted[0]) + len(planted[1]),
        "tokens_removed": None,
    }
    failing = CliRunner().invoke(
        cli, ["decontam", "check", "--recipe", str(recipe_file), "--fail-on-match", str(data)]
    )
    assert failing.exit_code == 3, failing.output


def test_check_names_a_bad_document_file(tmp_path):
    data, evals, _ = corpus(tmp_path)
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps(recipe_for(tmp_path, data, evals)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    out = CliRunner().invoke(cli, ["decontam", "check", "--recipe", str(recipe_file), str(bad)])
    assert out.exit_code == 1
    assert f"{bad}:line 2: no string field `text`" in out.output and "--text-field" in out.output
