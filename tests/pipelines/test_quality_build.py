"""The classifier trained in the build (`quality.train`), selection by top fraction, and the seeded sampler
both use (and `recipe check`'s)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from gristmill.errors import BuildError, ConfigError, InputError
from gristmill.pipelines.build.accounting import collect_accounting
from gristmill.pipelines.build.engine import run_locally
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.quality import TOP_FRACTION_REASON
from gristmill.pipelines.quality.model import QualityModel, card_path, read_card
from gristmill.pipelines.quality.sampling import RuleJudge, SampleCounts, sample_files, sample_source
from gristmill.pipelines.quality.selection import resolve_fractions, top_fraction_threshold
from gristmill.pipelines.recipe import parse_recipe
from gristmill.pipelines.steps.ingest import ingest_step, plan_work_units
from gristmill.pipelines.steps.quality import collect_quality, quality_model_step
from gristmill.sample.quality import quality_split

SMALL = {"dim": 16, "bucket": 65536, "heldout_fraction": 0.2}
FILES = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A Pile-layout corpus in 6 files: real text (Wikipedia (en)), junk (Pile-CC), and held-out documents
    of both kinds to select among (Books3); plus a jsonl of more real text."""
    train, test = quality_split(heldout=0.3, every=16, max_debian=20)
    root = tmp_path_factory.mktemp("corpus")
    real = [d.text for d in train if d.label] + [d.text for d in test if d.label][1::2]
    junk = [d.text for d in train if not d.label]
    mixed = [d.text for d in test if not d.label] + [d.text for d in test if d.label][::2]
    records = [{"text": t, "meta": {"pile_set_name": "Wikipedia (en)"}} for t in real]
    records += [{"text": t, "meta": {"pile_set_name": "Pile-CC"}} for t in junk]
    records += [{"text": t, "meta": {"pile_set_name": "Books3"}} for t in mixed]
    random.Random(0).shuffle(records)
    (root / "pile").mkdir()
    for i in range(FILES):
        lines = [json.dumps(r) for r in records[i::FILES]]
        (root / "pile" / f"{i:02d}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "real.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in real[::3]) + "\n")
    return root


def _recipe(corpus: Path, output: Path, quality: dict, **source) -> dict:
    pile = {
        "name": "pile",
        "format": "pile",
        "paths": [str(corpus / "pile")],
        "profiles": {"Pile-CC": "none", "Wikipedia (en)": "none"},  # Books3: curated (the Pile's default)
        **source,
    }
    return {"name": "q", "output": str(output), "sources": [pile], "quality": quality}


def _train(documents: int = 500, **settings) -> dict:
    return {
        "real": [{"source": "pile", "subsets": ["Wikipedia (en)"]}],
        "junk": [{"source": "pile", "subsets": ["Pile-CC"]}],
        "documents": documents,
        "settings": {**SMALL, **settings},
    }


def test_training_and_selection_settings_are_checked(tmp_path):
    def problem(quality: dict, **source) -> str:
        with pytest.raises(ConfigError) as err:
            parse_recipe(_recipe(tmp_path, tmp_path / "b", quality, **source))
        return str(err.value)

    assert "give `model`" in problem({"model": "q.bin", "train": _train()})
    bad = _train()
    bad["real"][0]["source"] = "pil"
    assert "quality.train.real.0.source: unknown source 'pil'; expected one of pile" in problem(
        {"train": bad}
    )
    said = problem({"train": _train()}, exclude_subsets=["Pile-CC"])
    assert "quality.train.junk.0.subsets: ['Pile-CC'] are not read from source 'pile'" in said
    assert "quality.train.junk" in problem({"train": {**_train(), "junk": []}})
    both = {"source": "pile", "files": ["x.jsonl"]}
    assert "exactly one of `source`" in problem({"train": {**_train(), "junk": [both]}})
    assert "`subsets` go with a `source`" in problem(
        {"train": {**_train(), "junk": [{"files": ["x"], "subsets": ["a"]}]}}
    )
    two = {"min_score": 0.5, "top_fraction": 0.1}
    assert "exactly one of `min_score` or `top_fraction`" in problem(
        {"train": _train(), "select": {"web": two}}
    )
    assert "quality.select.web.top_fraction" in problem(
        {"train": _train(), "select": {"web": {"top_fraction": 0}}}
    )
    assert "`select` needs a classifier" in problem({"select": {"web": {"top_fraction": 0.1}}})
    assert "`sha256` is the checksum of a `model`" in problem({"train": _train(), "sha256": "0" * 64})
    recipe = parse_recipe(_recipe(tmp_path, tmp_path / "b", {"train": _train()}))
    assert recipe.quality.enabled and recipe.quality.model is None
    typo = _train()
    typo["real"][0]["subsets"] = ["Wikipedia"]  # the Pile calls it "Wikipedia (en)"
    recipe = parse_recipe(_recipe(tmp_path, tmp_path / "b", {"train": typo}))
    with pytest.raises(ConfigError, match=r"\['Wikipedia'\] are not subsets of 'pile'") as err:
        quality_model_step(recipe, BuildLayout(recipe.output))
    assert err.value.where == "quality.train.real.0.subsets"


def test_samples_are_seeded_and_spread_over_the_files(files, tmp_path):
    prose = "A plain sentence of prose that the curated rules keep, with enough words in it to pass. " * 3
    for i in range(8):
        lines = [{"text": f"file {i} document {j}. {prose}", "subset": "s"} for j in range(30)]
        lines.insert(3, b"{not json")
        lines.insert(5, {"text": "x", "subset": "s"})  # too short for the curated rules
        files.write(f"corpus/{i}.jsonl", files.jsonl(lines))
    source = {
        "name": "c",
        "format": "jsonl",
        "paths": [str(files.root / "corpus")],
        "fields": {"subset": "subset"},
        "profiles": {"*": "curated"},
    }
    recipe = parse_recipe({"name": "s", "output": str(tmp_path / "b"), "sources": [source]})
    judge = RuleJudge(recipe)

    def draw(seed: int, target: int = 40) -> tuple[list[str], SampleCounts]:
        counts = SampleCounts()
        taken = sample_source(recipe.sources[0], lambda s: s, {"s": target}, judge, seed, 5, counts)
        return taken["s"], counts

    texts, counts = draw(seed=0)
    per_file = [sum(t.startswith(f"file {i} ") for t in texts) for i in range(8)]
    assert len(texts) == 40 and per_file == [5] * 8  # 5 from each file, not 40 from the first
    assert counts.files == 8 and counts.unreadable == 8 and counts.dropped == 8
    assert draw(seed=0)[0] == texts and draw(seed=1)[0] != texts  # the files' order is the seed's
    few = draw(seed=0, target=12)[0]  # 5 a file from the seed's first files, until 12
    assert sorted(sum(t.startswith(f"file {i} ") for t in few) for i in range(8)) == [0] * 5 + [2, 5, 5]
    bigger, _ = draw(seed=0, target=160)  # more than 5 a file: each file gives its share, 20
    assert len(bigger) == 160 and {sum(t.startswith(f"file {i} ") for t in bigger) for i in range(8)} == {20}

    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"txt": 1}\n')
    with pytest.raises(InputError) as err:
        sample_files([str(tmp_path / "bad.jsonl")], 10, 0, 5, SampleCounts())
    assert err.value.path == str(tmp_path / "bad.jsonl") and err.value.where == "line 2"


def test_top_fraction_threshold_keeps_that_share():
    scores = [0.1 * i for i in range(10)]
    assert top_fraction_threshold(scores, 0.3) == pytest.approx(0.7)
    assert top_fraction_threshold(scores, 0.01) == pytest.approx(0.9)  # at least one kept
    assert top_fraction_threshold(scores, 1.0) == 0.0
    with pytest.raises(ValueError):
        top_fraction_threshold([], 0.5)


def test_the_build_trains_its_classifier_the_same_twice_and_refuses_another_train(corpus, tmp_path):
    quality = {"train": _train()}
    quality["train"]["real"].append({"files": [str(corpus / "real.jsonl")]})
    builds = []
    for name in ("a", "b"):
        recipe = parse_recipe(_recipe(corpus, tmp_path / name, quality))
        layout = BuildLayout(recipe.output)
        run_locally([quality_model_step(recipe, layout)], layout)
        builds.append(Path(layout.quality_model_file).read_bytes())
    assert builds[0] == builds[1]
    card = read_card(layout.quality_model_file)
    assert card.documents["real"] + card.documents["junk"] <= 2 * 500
    assert card.heldout is not None and card.heldout["roc_auc"] >= 0.9 and card.heldout["real"] > 0
    assert card.sample["files"] >= FILES and card.sample["unreadable"] > 0  # NUL-byte junk, passed over
    assert not Path(layout.quality_selection_file).exists()  # no top_fraction to resolve

    run_locally([quality_model_step(recipe, layout)], layout)  # resumed: kept as it is
    assert Path(layout.quality_model_file).read_bytes() == builds[0]
    other = {"train": {**quality["train"], "settings": {**SMALL, "epoch": 3}}}
    with pytest.raises(BuildError) as err:
        quality_model_step(parse_recipe(_recipe(corpus, tmp_path / "a", other)), layout)
    assert err.value.where == "quality.train" and "--fresh" in str(err.value)
    given = parse_recipe(_recipe(corpus, tmp_path / "a", {"model": layout.quality_model_file}))
    quality_model_step(given, layout)  # the same bytes, given by path: nothing to refuse


def test_top_fraction_drops_about_that_share_and_the_accounting_balances(corpus, tmp_path):
    quality = {"train": _train(), "select": {"curated": {"top_fraction": 0.3}}, "fraction_sample": 100}
    recipe = parse_recipe(_recipe(corpus, tmp_path / "b", quality))
    layout = BuildLayout(recipe.output)
    units = plan_work_units(recipe)
    run_locally([quality_model_step(recipe, layout), ingest_step(recipe, layout, units)], layout)

    resolved = json.loads(Path(layout.quality_selection_file).read_text())["profiles"]["curated"]
    assert resolved["top_fraction"] == 0.3 and resolved["documents"] == 100 and resolved["kept"] >= 0.3
    tasks = {"pile": [u.task for u in units]}
    accounting = collect_accounting(layout, tasks)["pile"]
    entry = collect_quality(recipe, layout, tasks)
    books = entry.scores["pile"]["Books3"]
    assert (books.min_score, books.top_fraction) == (resolved["min_score"], 0.3)
    dropped = accounting["Books3"].filtered[TOP_FRACTION_REASON]
    assert sum(books.scored) - sum(books.selected) == dropped
    # 100 of about 150 documents sampled: the share kept of all of them is near 0.3, not exactly it
    assert abs(sum(books.selected) / sum(books.scored) - 0.3) <= 0.1
    assert all(c.balanced() for c in accounting.values())
    assert entry.trained_in_build and entry.heldout["roc_auc"] >= 0.9
    assert entry.selection["curated"].min_score == resolved["min_score"]
    assert entry.scores["pile"]["Pile-CC"].min_score is None  # profile none: nothing selected

    code = parse_recipe(
        _recipe(corpus, tmp_path / "b", {**quality, "select": {"code": {"top_fraction": 0.5}}})
    )
    with pytest.raises(BuildError, match="no document of profile 'code' in the sample") as err:
        resolve_fractions(code, QualityModel.load(layout.quality_model_file))  # the corpus has no Github
    assert err.value.where == "quality.select.code.top_fraction"

    from gristmill.pipelines.build.report import _quality_section
    from gristmill.shards.manifest import Manifest

    manifest = Manifest(
        name="q", recipe={}, recipe_hash="h", seed=0, sources=[], accounting={}, quality=entry
    )
    page = _quality_section(manifest)
    assert "trained in the build" in page and "held-out ROC AUC" in page
    assert "top_fraction 0.3 → min_score" in page


def test_recipe_check_resolves_top_fraction_on_its_sample(corpus, tmp_path):
    import yaml
    from click.testing import CliRunner

    from gristmill.cli import cli

    recipe = parse_recipe(_recipe(corpus, tmp_path / "b", {"train": _train()}))
    layout = BuildLayout(recipe.output)
    run_locally([quality_model_step(recipe, layout)], layout)
    model = str(tmp_path / "b" / "quality" / "model.bin")
    assert Path(card_path(model)).exists()

    quality = {"model": model, "select": {"curated": {"top_fraction": 0.25}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_recipe(corpus, tmp_path / "c", quality)))
    result = CliRunner().invoke(cli, ["recipe", "check", str(path), "--quality-sample", "40"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("# quality.select.curated"))
    assert "top_fraction 0.25 resolves to min_score" in line and "on 40 sampled documents" in line

    quality = {"train": _train(), "select": {"curated": {"top_fraction": 0.25}}}
    path.write_text(yaml.safe_dump(_recipe(corpus, tmp_path / "c", quality)))
    result = CliRunner().invoke(cli, ["recipe", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "# the classifier is trained in the build (quality.train)" in result.output
