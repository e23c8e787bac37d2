"""The shipped run configs (runs/*.yaml) validate and name the presets their recipes are built for."""

from __future__ import annotations

from pathlib import Path

import pytest

from gristmill.trainer.config import load_train_config

RUNS = Path(__file__).resolve().parents[2] / "runs"


@pytest.mark.parametrize(
    ("name", "layers", "vocab"), [("demo", 2, None), ("tinyllama", 22, 32000), ("fox1", 32, 256000)]
)
def test_shipped_run_configs_validate(name, layers, vocab, monkeypatch):
    monkeypatch.setenv("GRISTMILL_DATA", "/data")
    config = load_train_config(RUNS / f"{name}.yaml")
    assert config.model.n_layers == layers
    if vocab is not None:
        assert config.model.vocab_size == vocab
        assert config.build == f"/data/builds/{name}"
