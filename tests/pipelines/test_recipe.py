"""Recipes: the shipped ones validate; bad ones fail with the file, the field path and what was expected."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import ConfigError
from gristmill.pipelines.filters.profiles import ProfileScope, resolved_profiles
from gristmill.pipelines.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
GOOD = """
name: t
output: out
sources:
  - {name: web, format: slimpajama, paths: [data/*.jsonl.zst], exclude_subsets: [RedPajamaGithub]}
  - {name: code, format: starcoder, paths: [code/*/*.parquet], priority: 2}
tokenizer: {path: tok/tokenizer.json}
stages:
  - {name: s1, seq_len: 2048, tokens: 1000000, tokens_per_step: 2097152, weights: {web: 0.69, code: 0.31}}
"""


def write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", ["demo", "tinyllama", "fox1"])
def test_shipped_recipes_validate(name, monkeypatch):
    monkeypatch.setenv("GRISTMILL_DATA", "/data")
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    assert recipe.name == name
    assert recipe.stages


def test_tinyllama_mixture_and_subsets(monkeypatch):
    monkeypatch.setenv("GRISTMILL_DATA", "/data")
    recipe = load_recipe(RECIPES / "tinyllama.yaml")
    shares = recipe.stages[0].shares()
    assert shares == pytest.approx({"slimpajama": 0.69, "starcoderdata": 0.31})
    assert not recipe.source("slimpajama").wants_subset("RedPajamaGithub")
    assert recipe.source("slimpajama").wants_subset("RedPajamaC4")
    assert recipe.tokenizer.train.profile == "llama2" and recipe.tokenizer.train.vocab_size == 32000
    assert recipe.stages[0].seq_len == 2048
    assert recipe.source("slimpajama").paths[0].startswith("/data/")


def test_fox1_curriculum_shares(monkeypatch):
    monkeypatch.setenv("GRISTMILL_DATA", "/data")
    stages = load_recipe(RECIPES / "fox1.yaml").stages
    total = sum(s.tokens for s in stages)
    assert stages[0].seq_len == 2048 and 0.37 <= stages[0].tokens / total <= 0.41
    long = sum(s.tokens for s in stages[1:-1])
    assert {s.seq_len for s in stages[1:-1]} == {4096, 8192} and 0.57 <= long / total <= 0.61
    assert stages[-1].seq_len == 8192 and stages[-1].weights == stages[0].weights  # the four corpora …
    assert stages[-1].top_fractions() == dict.fromkeys(stages[0].weights, 0.1)  # … their top-scored tenth
    assert not any(s.top_fractions() for s in stages[:-1])
    assert stages[0].tokens_per_step == 2 * 1024 * 1024 and stages[1].tokens_per_step == 4 * 1024 * 1024


def test_good_recipe_resolves_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.source("code").kind == "code" and recipe.source("web").kind == "text"
    assert recipe.filters.gopher_quality.min_doc_words == 50
    assert recipe.dedupe.near.num_perm == 112


def test_override(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD), {"output": "/else", "stages.0.tokens": 5})
    assert recipe.output == "/else" and recipe.stages[0].tokens == 5


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("format: starcoder", "format: starcode"), "sources.1.format"),
        (("seq_len: 2048", "seq_len: -1"), "stages.0.seq_len"),
        (("code: 0.31}", "cod: 0.31}"), "unknown sources ['cod']"),
        (("tokens_per_step: 2097152", "tokens_per_step: 1000"), "multiple of seq_len"),
        (("name: t\n", "name: t\nbogus: 1\n"), "bogus"),
        (("tokenizer: {path: tok/tokenizer.json}", "tokenizer: {}"), "exactly one of"),
        (("{name: code,", "{name: web,"), "source names must be unique"),
        (("tokens_per_step: 2097152", "tokens_per_batch: 2097152"), "now called `tokens_per_step`"),
        (("name: t\n", "name: t\nfilters: {text: {c4: {enabled: false}}}\n"), "directly under `filters`"),
    ],
)
def test_bad_recipe_names_file_and_field(tmp_path, edit, expected):
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert path in str(err.value)
    assert expected in str(err.value)


def test_bad_yaml_names_line(tmp_path):
    path = write(tmp_path, "name: [t\noutput: x\n")
    with pytest.raises(ConfigError, match=r"r\.yaml:line \d+, column \d+: invalid YAML"):
        load_recipe(path)


def test_missing_recipe_and_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="recipe must be a mapping of settings, got list"):
        load_recipe(write(tmp_path, "- a\n- b\n"))


def test_cli_check_prints_resolved_recipe_or_error(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(cli, ["recipe", "check", write(tmp_path, GOOD), "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"min_doc_words": 50' in ok.output
    bad = runner.invoke(
        cli, ["recipe", "check", write(tmp_path, GOOD.replace("seq_len: 2048", "seq_len: x"))]
    )
    assert bad.exit_code == 1
    assert "stages.0.seq_len" in bad.output and "r.yaml" in bad.output


def test_document_size_limit_reaches_the_reader(tmp_path):
    from gristmill.pipelines.readers import reader_for

    recipe = load_recipe(
        write(tmp_path, GOOD.replace("priority: 2}", "priority: 2, max_document_bytes: 4096}"))
    )
    assert reader_for(recipe.source("code")).max_document_bytes == 4096
    assert reader_for(recipe.source("web")).max_document_bytes == 32 << 20


PROFILED = """
name: p
output: out
filters:
  profiles: {strict-code: [curated, code, gopher_repetition]}
sources:
  - name: pile
    format: pile
    paths: [pile/*.jsonl.zst]
    profiles: {"Books*": none, "ArXiv": strict-code}
  - {name: dolma, format: dolma, paths: [dolma/*.json.gz]}
  - {name: slim, format: slimpajama, paths: [slim/*.jsonl.zst]}
  - {name: code, format: starcoder, paths: [code/*/*.parquet]}
  - {name: mine, format: jsonl, paths: [mine/*.jsonl]}
  - {name: mycode, format: jsonl, paths: [mycode/*.jsonl], kind: code}
"""


def test_profiles_resolve_per_subset_recipe_first_then_reader_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, PROFILED))
    profile = ProfileScope.of_recipe(recipe).profile
    assert [profile("pile", s) for s in ("Books3", "ArXiv", "Github", "Pile-CC", "Wikipedia (en)")] == [
        "none",
        "strict-code",
        "code",
        "web",
        "curated",
    ]
    assert [profile("dolma", s) for s in ("stack", "cc_en_head", "c4", "wiki", "gutenberg", "pes2o")] == [
        "code",
        "web",
        "web",
        "curated",
        "curated",
        "curated",
    ]
    assert [profile("slim", s) for s in ("RedPajamaGithub", "RedPajamaCommonCrawl", "RedPajamaBook")] == [
        "code",
        "curated",
        "curated",
    ]
    assert profile("code", "python") == "code"
    assert profile("mine", "default") == "web"  # `kind: text`, no reader defaults
    assert profile("mycode", "default") == "code"
    assert recipe.filters.profiles["strict-code"] == ["curated", "code", "gopher_repetition"]
    assert recipe.filters.profiles["web"] == ["gopher_quality", "gopher_repetition", "c4", "fineweb"]


def test_resolved_profiles_try_the_recipe_first_and_resolve_once(tmp_path):
    pile = load_recipe(write(tmp_path, PROFILED)).source("pile")
    assert pile.profiles == {"Books*": "none", "ArXiv": "strict-code"}  # as written
    resolved = resolved_profiles(pile.format, pile.kind, pile.profiles)
    assert list(resolved)[:3] == ["Books*", "ArXiv", "Pile-CC"]  # the recipe's own, then the reader's
    assert list(resolved)[-1] == "*"
    assert resolved_profiles(pile.format, pile.kind, resolved) == resolved


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('"ArXiv": strict-code', '"ArXiv": strict'), "sources.0.profiles.ArXiv: unknown profile 'strict'"),
        (("gopher_repetition]}", "gopher_rep]}"), "'strict-code' names unknown rule sets ['gopher_rep']"),
        (("[curated, code,", "[code, code,"), "names a rule set twice"),
    ],
)
def test_bad_profiles_name_the_field(tmp_path, edit, expected):
    path = write(tmp_path, PROFILED.replace(*edit))
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert expected in str(err.value), str(err.value)


def test_shipped_recipes_route_code_and_curated_subsets(monkeypatch):
    monkeypatch.setenv("GRISTMILL_DATA", "/data")
    fox1 = ProfileScope.of_recipe(load_recipe(RECIPES / "fox1.yaml")).profile
    assert fox1("pile", "Github") == "code"
    assert fox1("dolma", "stack") == "code"
    assert fox1("slimpajama", "RedPajamaGithub") == "code"
    assert fox1("slimpajama", "RedPajamaWikipedia") == "curated"
    assert fox1("pile", "Pile-CC") == "web"
    tinyllama = ProfileScope.of_recipe(load_recipe(RECIPES / "tinyllama.yaml")).profile
    assert {tinyllama("slimpajama", s) for s in ("RedPajamaC4", "RedPajamaCommonCrawl", "RedPajamaBook")} == {
        "curated"
    }
    assert tinyllama("starcoderdata", "python") == "code"


def test_cli_check_shows_profiles_and_warns_of_unknown_excluded_subsets(tmp_path):
    runner = CliRunner()
    text = GOOD.replace("exclude_subsets: [RedPajamaGithub]", "exclude_subsets: [RedPajamaGitHub]")
    out = runner.invoke(cli, ["recipe", "check", write(tmp_path, text)])
    assert out.exit_code == 0, out.output
    assert "RedPajamaGithub: code" in out.output and "RedPajama*: curated" in out.output
    assert "warning: sources.0.exclude_subsets: ['RedPajamaGitHub'] are not subsets" in out.output
    quiet = runner.invoke(cli, ["recipe", "check", write(tmp_path, GOOD, "good.yaml")])
    assert "warning" not in quiet.output


def test_the_config_layer_imports_no_step_rule_set_reader_or_build():
    # In a fresh interpreter: this session has imported everything already.
    code = (
        "import sys, gristmill.pipelines.recipe; "
        "print(sorted(m for m in sys.modules if m.startswith('gristmill.pipelines.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = ast.literal_eval(done.stdout)
    assert loaded == [
        "gristmill.pipelines.config",
        "gristmill.pipelines.config.decontam",
        "gristmill.pipelines.config.dedupe",
        "gristmill.pipelines.config.filters",
        "gristmill.pipelines.config.quality",
        "gristmill.pipelines.recipe",
    ]
