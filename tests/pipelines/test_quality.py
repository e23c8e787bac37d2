"""Model-based quality: the classifier (deterministic training, verified loading, held-out figures), its
metrics, the recipe's `quality` settings, and scoring and selection in the ingest step."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from gristmill.errors import BuildError, ConfigError, InputError
from gristmill.pipelines.build.accounting import collect_accounting
from gristmill.pipelines.build.engine import run_locally
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.quality import REASON, ClassifierSettings
from gristmill.pipelines.quality import QualityModel, evaluate, roc_auc, train_classifier
from gristmill.pipelines.quality.model import card_path, file_sha256, read_card
from gristmill.pipelines.recipe import parse_recipe
from gristmill.pipelines.steps.ingest import ingest_step, plan_work_units
from gristmill.pipelines.steps.quality import collect_quality, quality_model_step
from gristmill.sample.quality import quality_split

SMALL = ClassifierSettings(dim=16, bucket=65536)


@pytest.fixture(scope="module")
def labelled():
    train, test = quality_split(heldout=0.3, every=16, max_debian=20)
    return train, test


@pytest.fixture(scope="module")
def model_file(labelled, tmp_path_factory):
    train, _ = labelled
    path = tmp_path_factory.mktemp("classifier") / "quality.bin"
    train_classifier([d.text for d in train if d.label], [d.text for d in train if not d.label], path, SMALL)
    return path


def test_roc_auc_equals_the_share_of_real_junk_pairs_ordered_right_ties_half():
    rng = np.random.default_rng(0)
    labels = rng.random(60) < 0.4
    scores = rng.integers(0, 8, 60) / 8  # many ties
    pairs = [
        1.0 if r > j else 0.5 if r == j else 0.0
        for r, j in itertools.product(scores[labels], scores[~labels])
    ]
    assert roc_auc(labels, scores) == pytest.approx(np.mean(pairs))
    with pytest.raises(ValueError, match="both labels"):
        roc_auc(np.ones(3, bool), np.zeros(3))


def test_precision_and_recall_at_the_threshold():
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.0])
    e = evaluate(labels, scores, threshold=0.5)
    assert (e.precision, e.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert e.roc_auc == pytest.approx(7 / 9) and (e.real, e.junk) == (3, 3)


def test_held_out_real_text_scores_above_junk(labelled, model_file):
    _, test = labelled
    model = QualityModel.load(model_file)
    scores = model.score([d.text for d in test])
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    figures = evaluate(np.array([d.label for d in test], bool), scores)
    assert figures.roc_auc >= 0.9, figures
    assert model.score([]).shape == (0,)


def test_training_is_deterministic_by_seed(labelled, model_file, tmp_path):
    train, _ = labelled
    real, junk = [d.text for d in train if d.label], [d.text for d in train if not d.label]
    garbage = [bytes(range(1, 256)) * 4000 for _ in range(64)]  # leave freed, non-zero memory on the heap
    del garbage
    again = train_classifier(real, junk, tmp_path / "again.bin", SMALL)
    assert (tmp_path / "again.bin").read_bytes() == model_file.read_bytes()
    assert again.sha256 == file_sha256(model_file) and again.documents == {
        "real": len(real),
        "junk": len(junk),
    }
    other = train_classifier(real, junk, tmp_path / "seed1.bin", SMALL.model_copy(update={"seed": 1}))
    assert other.sha256 != again.sha256


def test_training_needs_both_sides_and_says_when_fasttext_fails(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="0 junk"):
        train_classifier(["real text"], [], tmp_path / "m.bin", SMALL)
    import fasttext

    def diverges(**_):
        raise RuntimeError("Encountered NaN.")

    monkeypatch.setattr(fasttext, "train_supervised", diverges)
    with pytest.raises(InputError, match="training diverged: Encountered NaN") as err:
        train_classifier(["real text"], ["junk text"], tmp_path / "m.bin", SMALL)
    assert "lower `lr`" in str(err.value) and not (tmp_path / "m.bin").exists()


def test_untrusted_model_files_are_checked_before_fasttext_reads_them(model_file, tmp_path):
    with pytest.raises(InputError, match="classifier file not found"):
        QualityModel.load(tmp_path / "missing.bin")
    bare = tmp_path / "bare.bin"
    bare.write_bytes(model_file.read_bytes())
    with pytest.raises(InputError, match="file not found") as err:
        QualityModel.load(bare)  # no card
    assert err.value.path == card_path(bare)
    card = json.loads(Path(card_path(model_file)).read_text())
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(model_file.read_bytes()[:-1] + b"\0")
    Path(card_path(tampered)).write_text(json.dumps(card))
    with pytest.raises(InputError, match="its card says"):
        QualityModel.load(tampered)
    with pytest.raises(InputError, match="the recipe says"):
        QualityModel.load(model_file, "0" * 64)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model at all")
    Path(card_path(junk)).write_text(json.dumps({**card, "sha256": file_sha256(junk)}))
    with pytest.raises(InputError, match="not a fastText model"):
        QualityModel.load(junk)
    Path(card_path(junk)).write_text("{")
    with pytest.raises(InputError, match="invalid JSON"):
        QualityModel.load(junk)


def _recipe(tmp_path, quality: dict, pile_dir) -> dict:
    return {
        "name": "q",
        "output": str(tmp_path / "build"),
        "sources": [{"name": "pile", "format": "pile", "paths": [str(pile_dir)]}],
        "quality": quality,
    }


def test_recipe_quality_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"quality.select names unknown profiles \['wbe'\]"):
        parse_recipe(_recipe(tmp_path, {"model": "q.bin", "select": {"wbe": {"min_score": 0.5}}}, tmp_path))
    with pytest.raises(ConfigError, match="`select` needs a classifier"):
        parse_recipe(_recipe(tmp_path, {"select": {"web": {"min_score": 0.5}}}, tmp_path))
    with pytest.raises(ConfigError, match=r"quality\.sha256"):
        parse_recipe(_recipe(tmp_path, {"model": "q.bin", "sha256": "abc"}, tmp_path))
    with pytest.raises(ConfigError, match=r"quality\.select\.web\.min_score"):
        parse_recipe(_recipe(tmp_path, {"model": "q.bin", "select": {"web": {"min_score": 2}}}, tmp_path))


def test_a_stage_drawing_by_score_is_checked(tmp_path):
    def stage(top) -> dict:
        data = _recipe(tmp_path, {"model": "q.bin"}, tmp_path)
        stage = {"name": "hq", "seq_len": 64, "tokens": 1000, "tokens_per_step": 128, "weights": {"pile": 1}}
        return data | {"tokenizer": {"path": "t"}, "stages": [stage | {"top_by_score": top}]}

    assert parse_recipe(stage(0.1)).stages[0].top_fractions() == {"pile": 0.1}
    assert parse_recipe(stage({"pile": 1})).stages[0].top_fractions() == {"pile": 1.0}
    assert parse_recipe(stage(None)).stages[0].top_fractions() == {}
    with pytest.raises(ConfigError, match=r"stages\.0\.top_by_score.*in \(0, 1\]"):
        parse_recipe(stage(0))
    with pytest.raises(ConfigError, match=r"does not weight: \['dolma'\]"):
        parse_recipe(stage({"dolma": 0.5}))
    with pytest.raises(ConfigError, match=r"draw by `top_by_score`, which needs a quality classifier"):
        parse_recipe(stage(0.5) | {"quality": {}})


def test_ingest_scores_every_document_and_selects_by_profile(files, labelled, model_file, tmp_path):
    _, test = labelled
    real = [d.text for d in test if d.label][:30]
    junk = [d.text for d in test if not d.label][:30]
    records = [{"text": t, "meta": {"pile_set_name": "Books3"}} for t in real + junk]  # curated
    records += [{"text": t, "meta": {"pile_set_name": "Github"}} for t in real[:10] + junk[:10]]  # code
    files.write("pile/00.jsonl", files.jsonl(records))
    quality = {
        "model": str(model_file),
        "sha256": file_sha256(model_file),
        "select": {"curated": {"min_score": 0.5}},
    }
    recipe = parse_recipe(_recipe(tmp_path, quality, files.root / "pile"))
    layout = BuildLayout(recipe.output)
    units = plan_work_units(recipe)
    run_locally([quality_model_step(recipe, layout), ingest_step(recipe, layout, units)], layout)

    accounting = collect_accounting(layout, {"pile": [0]})["pile"]
    entry = collect_quality(recipe, layout, {"pile": [0]})
    books, github = entry.scores["pile"]["Books3"], entry.scores["pile"]["Github"]
    assert entry.sha256 == file_sha256(model_file) and entry.model == "quality/model.bin"
    assert Path(layout.quality_model_file).read_bytes() == model_file.read_bytes()
    dropped = accounting["Books3"].filtered.get(REASON, 0)
    assert sum(books.scored) == 60 - sum(accounting["Books3"].filtered.values()) + dropped
    assert sum(books.selected) == sum(books.scored) - dropped and books.min_score == 0.5
    assert dropped > 0 and sum(books.selected) > 0
    assert github.min_score is None and github.selected == github.scored  # the code profile selects nothing
    assert all(c.balanced() for c in accounting.values())

    # a resumed build refuses a model file changed since the build copied it
    changed = tmp_path / "changed.bin"
    train_classifier(real, junk, changed, SMALL)
    model_file_bytes = model_file.read_bytes()
    recipe_changed = parse_recipe(_recipe(tmp_path, {"model": str(changed)}, files.root / "pile"))
    with pytest.raises(BuildError, match="the build's classifier has sha256") as err:
        quality_model_step(recipe_changed, layout)
    assert err.value.where == "quality.model" and model_file.read_bytes() == model_file_bytes

    table = pq.read_table(layout.documents_file("pile", 0))
    subsets, scores = table["subset"].to_pylist(), table["quality"].to_pylist()
    assert None not in scores
    kept_books = [s for subset, s in zip(subsets, scores) if subset == "Books3"]
    assert min(kept_books) >= 0.5 and len(kept_books) == sum(books.selected)


def test_cli_trains_and_evaluates_with_held_out_figures(labelled, tmp_path):
    from click.testing import CliRunner

    from gristmill.cli import cli

    train, test = labelled
    for label, name in ((1, "real"), (0, "junk")):
        lines = [json.dumps({"text": d.text}) for d in train + test if d.label == label]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    sides = ["--real", str(tmp_path / "real.jsonl"), "--junk", str(tmp_path / "junk.jsonl")]
    out = str(tmp_path / "q.bin")
    small = [f"--set={k}={v}" for k, v in (("dim", 16), ("bucket", 65536), ("heldout_fraction", 0.3))]
    runner = CliRunner()
    result = runner.invoke(cli, ["classifier", "train", *sides, "--out", out, *small, "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.output)
    assert trained["sha256"] == file_sha256(out) and trained["roc_auc"] >= 0.9
    assert trained["documents"] == trained["real"] + trained["junk"] > 0
    assert read_card(out).heldout["roc_auc"] == pytest.approx(trained["roc_auc"])  # in its card too
    result = runner.invoke(cli, ["classifier", "eval", out, *sides, "--threshold", "0.7"])
    assert result.exit_code == 0, result.output
    assert "at score ≥ 0.7: precision" in result.output and "ROC AUC: " in result.output
    result = runner.invoke(cli, ["classifier", "eval", out, *sides, "--sha256", "0" * 64])
    assert result.exit_code == 1 and "q.bin: the file's sha256 is" in result.output
    result = runner.invoke(cli, ["classifier", "train", *sides, "--out", out, "--set", "dim=1"])
    assert result.exit_code == 1 and "dim" in result.output


def test_report_shows_each_subsets_scores(tmp_path):
    from gristmill.pipelines.build.report import render_report
    from gristmill.shards.manifest import Manifest, QualityEntry, QualityScores, SourceEntry

    scores = QualityScores(scored=[1, 1, 0, 2], selected=[0, 0, 0, 2], min_score=0.5)
    quality = QualityEntry(
        model="quality/model.bin",
        sha256="ab" * 32,
        bytes=10,
        settings={},
        trained_on={"real": 3, "junk": 4},
        bins=4,
        scores={"pile": {"Pile-CC": scores}},
    )
    manifest = Manifest(
        name="m",
        recipe={},
        recipe_hash="h",
        seed=0,
        sources=[SourceEntry(name="pile", format="pile", kind="text", priority=0)],
        accounting={},
        quality=quality,
    )
    page = render_report(manifest, BuildLayout(str(tmp_path)))
    assert "<h2>Quality scores</h2>" in page and "trained on 3 real and 4 junk documents" in page
    # mean of the bin centres (0.125 + 0.375 + 2 × 0.875) / 4; the top half (2 bins) and the top bin hold 2
    row = "<td>pile / Pile-CC</td><td>4</td><td>2</td><td>0.5</td><td>0.5625</td><td>50.0%</td><td>50.0%</td>"
    assert row in page and "<th>score ≥ 0.5</th><th>score ≥ 0.75</th>" in page


@pytest.mark.ray
@pytest.mark.slow
def test_build_scores_selects_and_records_the_classifier(ray_local, sample_corpus, model_file, tmp_path):
    from gristmill.pipelines.build.driver import BuildOptions, run_build
    from gristmill.shards.manifest import read_manifest

    from .test_build import ingest_recipe

    quality = {"model": str(model_file), "select": {"web": {"min_score": 0.5}}}
    recipe = parse_recipe(ingest_recipe(sample_corpus, tmp_path / "b", quality=quality))
    manifest = run_build(recipe, BuildOptions())
    assert read_manifest(str(tmp_path / "b")).quality == manifest.quality
    assert manifest.quality.sha256 == file_sha256(model_file) and manifest.artifacts["quality"] == "quality/"
    dropped = 0
    for source, subsets in manifest.accounting.items():
        for subset, counts in subsets.items():
            assert counts.balanced(), (source, subset, counts)
            scores = manifest.quality.scores[source].get(subset)
            if scores is not None:
                assert sum(scores.scored) - sum(scores.selected) == counts.filtered.get(REASON, 0)
                assert (scores.min_score == 0.5) == (counts.profile == "web")
            dropped += counts.filtered.get(REASON, 0)
    assert dropped > 0
    assert "<h2>Quality scores</h2>" in (tmp_path / "b" / "reports" / "index.html").read_text()


def test_recipe_check_measures_each_selection_on_a_sample(files, labelled, model_file, tmp_path):
    import yaml
    from click.testing import CliRunner

    from gristmill.cli import cli

    _, test = labelled
    real = [d.text for d in test if d.label][:20]
    junk = [d.text for d in test if not d.label][:20]
    files.write(
        "pile/00.jsonl", files.jsonl([{"text": t, "meta": {"pile_set_name": "Books3"}} for t in real + junk])
    )
    quality = {"model": str(model_file), "select": {"curated": {"min_score": 0.5}}}
    data = _recipe(tmp_path, quality, files.root / "pile")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["recipe", "check", str(path), "--quality-sample", "30"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("# quality.select.curated"))
    assert "min_score 0.5 keeps" in line and "of 30 sampled documents" in line  # the first 30 records
    assert "keeps 0.0%" not in line and "keeps 100.0%" not in line  # real and junk both among them

    shop = [d.text for d in test if d.kind == "shop"][:10]  # junk the model scores near 0
    files.write(
        "pile/00.jsonl", files.jsonl([{"text": t, "meta": {"pile_set_name": "Books3"}} for t in shop])
    )
    data["quality"]["select"]["curated"]["min_score"] = 0.99
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["recipe", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:quality.select.curated.min_score: min_score 0.99 keeps none of 10" in result.output


def test_recipe_check_shows_where_each_stages_top_fraction_starts_on_a_sample(
    files, labelled, model_file, tmp_path
):
    import yaml
    from click.testing import CliRunner

    from gristmill.cli import cli

    _, test = labelled
    texts = [d.text for d in test if d.label][:10] + [d.text for d in test if not d.label][:30]
    files.write(
        "pile/00.jsonl", files.jsonl([{"text": t, "meta": {"pile_set_name": "Books3"}} for t in texts])
    )
    stage = {"name": "hq", "seq_len": 64, "tokens": 1000, "tokens_per_step": 128, "weights": {"pile": 1}}
    data = _recipe(tmp_path, {"model": str(model_file)}, files.root / "pile") | {
        "tokenizer": {"path": str(tmp_path / "tok")},
        "stages": [stage | {"top_by_score": 0.25}],
    }
    data["sources"][0]["profiles"] = {"*": "none"}  # every document sampled: no rule set judges them
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["recipe", "check", str(path)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("# stages.0.top_by_score.pile"))
    scores = QualityModel.load(str(model_file)).score(texts)
    expected = np.sort(scores)[-math.ceil(len(texts) / 4)]  # the lowest of the best quarter
    assert f"the top 0.25 of {len(texts)} sampled documents score ≥ {expected:.4f}" in line
    assert expected > np.median(scores)


@pytest.mark.ray
@pytest.mark.slow
def test_a_stage_drawn_by_score_stores_only_its_sources_top_scored_documents(
    ray_local, sample_corpus, model_file, tmp_path
):
    from gristmill.pipelines.build.driver import BuildOptions, run_build
    from gristmill.pipelines.recipe import load_recipe
    from gristmill.pipelines.steps.tokenize import TokenFile

    from .test_build import ROOT, ingest_recipe

    demo = load_recipe(ROOT / "recipes" / "demo.yaml")
    stages = [s.model_dump(mode="json", exclude_none=True) for s in demo.stages[:2]]
    stages[1]["weights"] = {"slimpajama": 0.5, "dolma": 0.5}
    stages[1]["top_by_score"] = {"slimpajama": 0.3, "dolma": 0.25}
    stages[1]["tokens"] = 80_000
    data = ingest_recipe(
        sample_corpus,
        tmp_path / "b",
        quality={"model": str(model_file)},
        stages=stages,
        tokenizer=demo.tokenizer.model_dump(mode="json", exclude_none=True),
    )
    manifest = run_build(parse_recipe(data), BuildOptions())
    layout = BuildLayout(str(tmp_path / "b"))
    short, top = manifest.stages
    assert short.scores.draws == {} and set(top.scores.draws) == {"slimpajama", "dolma"}
    plan = json.loads(Path(layout.plan_file).read_text())
    for name, fraction in (("slimpajama", 0.3), ("dolma", 0.25)):
        draw = top.scores.draws[name]
        assert draw.model_dump() == plan["stages"][1]["score_draws"][name]
        assert draw.top_fraction == fraction and draw.share >= fraction
        scores: dict[str, float] = {}
        for path in sorted(Path(layout.tokens_dir, name).glob("*.arrow")):
            tokens = TokenFile.open(layout, name, int(path.stem), with_ids=True, with_scores=True)
            scores.update(zip(tokens.ids, tokens.scores.tolist()))
        assert not np.isnan(list(scores.values())).any()  # every clean document is scored
        assert sum(s >= draw.min_score for s in scores.values()) == draw.documents
        assert draw.documents >= fraction * len(scores)
        stored, firsts = {}, {}
        for stage in (short, top):
            segments = [seg for shard in stage.shards for seg in _sidecar_segments(layout, shard.path)]
            stored[stage.number] = {i for i, source, _ in segments if source == name}
            firsts[stage.number] = sum(source == name and start == 0 for _, source, start in segments)
        assert stored[2] and all(scores[i] >= draw.min_score for i in stored[2])
        assert not stored[1] & stored[2]  # stored once: the short stage has none of the top stage's documents
        assert sum(top.scores.histograms[name]) == firsts[2]  # a document per first segment
        assert sum(short.scores.histograms[name]) == firsts[1]
    page = (tmp_path / "b" / "reports" / "index.html").read_text()
    assert "<h2>Quality scores by stage</h2>" in page and "slimpajama: top 0.3" in page


def _sidecar_segments(layout: BuildLayout, shard_path: str) -> list[tuple[str, str, int]]:
    """Return (id, source, start) of every segment in a shard's provenance sidecar."""
    from gristmill.shards.provenance import sidecar_path

    docs = pq.read_table(sidecar_path(layout.path(shard_path)), columns=["id", "source", "start"]).to_pydict()
    return list(zip(docs["id"], docs["source"], docs["start"]))
