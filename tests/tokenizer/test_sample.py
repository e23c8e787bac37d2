"""The seeded sampler: deterministic, order-independent, mixed by weight, held-out set disjoint."""

from __future__ import annotations

import json
import random

import pytest

from gristmill.errors import InputError
from gristmill.tokenizer.sample import draw_sample


def _docs(n: int = 400) -> list[tuple[str, str, str]]:
    rng = random.Random(0)
    return [
        (f"document {i} " + "x" * rng.randrange(50, 150), "web" if i % 4 else "code", "a" if i % 3 else "b")
        for i in range(n)
    ]


def test_same_seed_same_sample_whatever_the_order():
    docs = _docs()
    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    a = draw_sample(docs, 10_000, seed=5, heldout_bytes=2000, heldout_fraction=0.1)
    b = draw_sample(shuffled, 10_000, seed=5, heldout_bytes=2000, heldout_fraction=0.1)
    assert a.train == b.train and a.heldout == b.heldout
    assert a.manifest() == b.manifest()
    assert draw_sample(docs, 10_000, seed=6).train != a.train


def test_budget_weights_and_heldout():
    sample = draw_sample(
        _docs(), 12_000, seed=0, weights={"web": 3, "code": 1}, heldout_bytes=3000, heldout_fraction=0.2
    )
    web, code = sample.sources["web"], sample.sources["code"]
    assert 9000 <= web.train_bytes < 9000 + 200 and 3000 <= code.train_bytes < 3000 + 200
    assert not set(sample.train) & set(sample.heldout) and sample.heldout
    assert code.seen_docs == 100 and web.seen_docs == 300


def test_a_small_source_is_taken_whole_and_unweighted_sources_skipped():
    sample = draw_sample(_docs(), 10**9, seed=0, weights={"code": 1})
    assert {s for _, s, _ in sample.train} == {"code"}
    assert sample.sources["code"].train_docs == 100 and "web" not in sample.sources


def test_write(tmp_path):
    sample = draw_sample(_docs(), 5000, seed=0, heldout_bytes=500, heldout_fraction=0.1)
    sample.write(tmp_path)
    lines = (tmp_path / "sample" / "train.jsonl").read_text().splitlines()
    assert [tuple(json.loads(line).values()) for line in lines] == sample.train
    assert json.loads((tmp_path / "sample-manifest.json").read_text())["seed"] == 0


def test_empty_and_bad_weights():
    with pytest.raises(InputError, match="corpus is empty"):
        draw_sample([], 100, seed=0)
    with pytest.raises(InputError, match="weighted sources"):
        draw_sample(_docs(), 100, seed=0, weights={"nothing": 1})
    with pytest.raises(InputError, match="weights"):
        draw_sample(_docs(), 100, seed=0, weights={"web": -1})
