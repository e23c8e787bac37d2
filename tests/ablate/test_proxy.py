"""Proxy presets: the parameter counts and FLOPs per token docs/ablate.md states are the code's; budgets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gristmill.ablate.config import load_ablation
from gristmill.ablate.proxy import PROXIES, preset_table, proxy_model, token_budget
from gristmill.ablate.runner import stage_steps
from gristmill.shards.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]


def _doc_rows(header_start: str) -> dict[str, list[str]]:
    text = (ROOT / "docs" / "ablate.md").read_text()
    table = text[text.index(header_start) :].split("\n\n")[0]
    return {
        m.group(1): [c.strip() for c in line.split("|")[2:-1]]
        for line in table.splitlines()
        if (m := re.match(r"\| `([\w-]+)` \|", line))
    }


def test_the_documented_proxy_table_is_the_code():
    documented = _doc_rows("| proxy | layers |")
    assert set(documented) == set(PROXIES)
    for row in preset_table(vocab_size=32000, seq_len=2048):
        cells = documented[row["proxy"]]
        assert cells[4] == f"{row['parameters'] / 1e6:.2f}M"
        assert cells[5] == f"{row['with_embedding'] / 1e6:.2f}M"
        assert cells[6] == f"{row['flops_per_token'] / 1e6:.1f}M"
        preset = PROXIES[row["proxy"]]
        assert cells[7:10] == [
            f"{preset.lr:g}",
            f"{preset.micro_batch_tokens:,}",
            f"{preset.tokens_per_step:,}",
        ]
    small = _doc_rows("| proxy | N | with embedding |")
    for row in preset_table(vocab_size=2048, seq_len=512):
        if row["proxy"] in small:
            cells = small[row["proxy"]]
            assert cells[:3] == [
                f"{row['parameters']:,}",
                f"{row['with_embedding']:,}",
                f"{row['flops_per_token'] / 1e6:.2f}M",
            ]
            assert cells[3:] == [
                f"{10 * row['parameters'] / 1e6:.2f}M",
                f"{20 * row['parameters'] / 1e6:.2f}M",
            ]


def test_the_budget_is_tokens_per_parameter_and_stages_share_its_steps():
    model = proxy_model("cpu-tiny", 2048)
    assert token_budget(model, 20) == 20 * 223_552
    manifest = Manifest.model_construct(
        stages=[
            type("S", (), {"name": "a", "rows": 300, "seq_len": 512})(),
            type("S", (), {"name": "b", "rows": 100, "seq_len": 2048})(),
        ]
    )
    # tokens 153,600 and 204,800: 7 steps share 3 (floor of 3.0) and 4 (the rest, to the last)
    assert stage_steps(manifest, 7) == [("a", 3), ("b", 4)]
    assert stage_steps(manifest, 1) == [("b", 1)]


@pytest.mark.parametrize("name", ["clean-vs-junk", "same-recipe", "recipes-150m"])
def test_the_shipped_ablations_validate_and_their_recipes_take_their_overrides(name, monkeypatch):
    from gristmill.pipelines.recipe import load_recipe

    monkeypatch.setenv("GRISTMILL_DATA", "/data")
    config = load_ablation(str(ROOT / "ablations" / f"{name}.yaml"))
    assert len(config.candidates) == 2 and len(config.seeds) >= 2
    for candidate in config.candidates:
        recipe = load_recipe(ROOT / candidate.recipe, {**candidate.set, "output": "/tmp/x"})
        assert recipe.stages and recipe.tokenizer is not None
