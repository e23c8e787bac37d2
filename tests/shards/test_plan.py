"""The mixing and curriculum plan on a synthetic length distribution like the real corpora: packing quality,
every document stored once and visited as the budgets need (epochs by reference), a high-quality-only stage,
shards that each carry the mixture in source blocks, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.pipelines.quality.percentile import SCORE_BINS, UNSCORED, bin_score, floor_for_top, score_bins
from gristmill.shards.plan import (
    EVERY,
    StageSpec,
    document_range,
    layout_shards,
    log2_histogram,
    make_plan,
    plan_slices,
    shard_count,
    shard_range,
    slice_specs,
    stage_targets,
    stored_tokens,
    tokens_at_or_above,
)


def _lengths(seed: int = 0) -> dict[str, np.ndarray]:
    """Corpora like the real ones: many short web pages; code of middling length with a long tail; a
    Pile-like mix with a long tail of books; a small curated source."""
    rng = np.random.default_rng(seed)

    def draw(n: int, mu: float, sigma: float, lo: int, hi: int) -> np.ndarray:
        return np.clip(rng.lognormal(mu, sigma, n), lo, hi).astype(np.int64)

    return {
        "web": draw(40_000, 6.0, 1.0, 5, 100_000),
        "code": draw(10_000, 7.0, 1.2, 5, 200_000),
        "pile": np.concatenate([draw(8_000, 6.3, 1.1, 5, 100_000), draw(150, 10.5, 0.8, 2_000, 400_000)]),
        "hq": draw(1_500, 6.5, 1.0, 5, 50_000),
    }


STAGES = [
    StageSpec("2k", 2048, 12_000_000, {"web": 0.6, "code": 0.3, "pile": 0.1}),
    StageSpec("8k", 8192, 12_000_000, {"web": 0.5, "code": 0.3, "pile": 0.2}),
    StageSpec("hq-8k", 8192, 3_000_000, {"hq": 1.0}),
]  # f ≈ 1.8: repeated


@pytest.fixture(scope="module")
def plan():
    return make_plan(_lengths(), STAGES, seed=1, shard_bytes=4 << 20)


def test_budgets_shares_and_padding(plan):
    for stage in plan.stages:
        capacity = stage.spec.capacity
        tokens = sum(p.tokens for p in stage.packings.values())
        trained = sum(p.trained_tokens for p in stage.packings.values())
        padding = sum(p.padding for p in stage.packings.values())
        assert padding <= 0.005 * (tokens + padding)
        assert set(stage.packings) == set(stage.spec.shares)
        for name, packing in stage.packings.items():
            assert abs(packing.trained_tokens - stage.spec.tokens * stage.spec.shares[name]) <= capacity // 2
            assert abs(packing.trained_tokens / trained - stage.spec.shares[name]) <= 0.005


def test_no_document_that_fits_is_split_and_long_ones_go_to_long_stages(plan):
    lengths = _lengths()
    for stage in plan.stages:
        for name, packing in stage.packings.items():
            p = packing.pieces
            fits = lengths[name][p.doc] <= stage.spec.seq_len
            assert (p.length[fits] == lengths[name][p.doc[fits]]).all()
            assert packing.split_documents == int(((p.start == 0) & ~fits).sum()) - int(
                ((p.start == 0) & (lengths[name][p.doc] == stage.spec.capacity)).sum()
            )
    short, long = plan.stages[0].packings["web"], plan.stages[1].packings["web"]

    def first(p):
        return lengths["web"][p.pieces.doc[p.pieces.start == 0]]

    assert np.median(first(long)) > 4 * np.median(first(short))
    assert first(long).max() == lengths["web"].max()  # the longest web page trains at 8K


def test_each_document_is_stored_once_and_repeated_by_its_stages_passes(plan):
    lengths = _lengths()
    for name, sampling in plan.sampling.items():
        counts = np.zeros(len(lengths[name]), np.int64)
        stages = [s for s in plan.stages if name in s.packings]
        for stage in stages:
            p = stage.packings[name].pieces
            np.add.at(counts, p.doc[p.start == 0], 1)
        assert set(np.unique(counts)) <= {0, 1}  # no document is stored twice, in any stage
        assert counts.sum() == sampling.stored_documents and counts @ lengths[name] == sampling.stored_tokens
        demand = sum(round(s.spec.tokens * s.spec.shares[name]) for s in stages)
        if demand >= sampling.tokens:
            assert counts.all()  # repeated: every document is stored
        assert sampling.trained_tokens == sum(s.packings[name].trained_tokens for s in stages)
        assert abs(sampling.trained_tokens - demand) <= sum(s.spec.capacity for s in stages)
        repeats = [s.packings[name].trained_tokens / s.packings[name].tokens for s in stages]
        assert max(repeats) - min(repeats) < 0.1  # every stage of a source repeats its share alike
        for stage in stages:
            packing = stage.packings[name]
            assert packing.passes == packing.trained_tokens // packing.tokens
            assert np.array_equal(packing.extra, np.unique(packing.extra))
            assert packing.extra.size == 0 or 0 <= packing.extra.min() <= packing.extra.max() < packing.rows
            assert packing.visits == packing.passes * packing.rows + packing.extra.size
    assert plan.sampling["hq"].trained_tokens > 1.8 * plan.sampling["hq"].stored_tokens  # 3M of 1.6M stored
    assert plan.sampling["web"].stored_tokens < plan.sampling["web"].tokens  # down-sampled


def test_every_shard_carries_the_mixture_and_rows_are_dealt_once(plan):
    lengths = _lengths()
    stage = plan.stages[1]
    layouts = layout_shards(stage, lengths, seed=1)
    stored = stored_tokens(STAGES, {name: int(n.sum()) for name, n in lengths.items()})[1]
    assert len(layouts) == stage.shards == shard_count(stage.spec, stored, 4, 4 << 20) > 2
    assert sum(s.rows for s in layouts) == stage.rows
    assert sum(s.split_documents for s in layouts) == sum(p.split_documents for p in stage.packings.values())
    names = list(stage.packings)
    for shard in layouts:
        assert [b.source for b in shard.blocks] == names
        first = 0
        for i, (name, block) in enumerate(zip(names, shard.blocks)):
            rows = np.unique(shard.pieces.row[shard.source == i])
            assert np.array_equal(
                rows, np.arange(first, first + block.rows)
            )  # one block per source, in order
            assert abs(block.rows - stage.packings[name].rows / stage.shards) <= 1
            row_tokens = np.bincount(
                shard.pieces.row[shard.source == i], shard.pieces.length[shard.source == i], shard.rows
            )[first : first + block.rows]
            assert block.tokens == row_tokens.sum()
            assert block.trained_tokens == block.passes * block.tokens + row_tokens[: block.extra_rows].sum()
            first += block.rows
        assert np.array_equal(np.unique(shard.pieces.row), np.arange(shard.rows))
    total = sum(int(s.pieces.length.sum()) for s in layouts)
    assert total == sum(p.tokens for p in stage.packings.values())
    for i, name in enumerate(names):  # the extra rows are dealt over the shards, and come first in blocks
        assert sum(s.blocks[i].extra_rows for s in layouts) == stage.packings[name].extra.size
        assert sum(s.blocks[i].trained_tokens for s in layouts) == stage.packings[name].trained_tokens


def test_a_source_of_books_only():
    """Documents all far longer than a row: little padding still (their pieces close the gaps); the budget
    is met within half a row, by visits of the books stored (none is cut to fit)."""
    books = _lengths()["pile"][-150:]
    plan = make_plan(
        {"books": books},
        [StageSpec("2k", 2048, 2_000_000, {"books": 1.0}), StageSpec("8k", 8192, 2_000_000, {"books": 1.0})],
        seed=2,
    )
    for stage in plan.stages:
        packing = stage.packings["books"]
        assert packing.padding < packing.capacity
        assert packing.tokens <= 2_000_000 + packing.capacity  # what does not fit is left unstored
        assert abs(packing.trained_tokens - 2_000_000) <= packing.capacity // 2


def test_same_seed_same_plan_other_seed_other_plan():
    small = {k: v[:2000] for k, v in _lengths(3).items()}
    stages = [StageSpec("a", 512, 400_000, {"web": 0.7, "code": 0.3}), StageSpec("b", 64, 50_000, {"hq": 1})]
    one, two, other = (make_plan(small, stages, seed=s) for s in (7, 7, 8))
    for a, b in zip(one.stages, two.stages):
        for name in a.packings:
            for field in ("doc", "start", "length", "row", "offset"):
                assert np.array_equal(
                    getattr(a.packings[name].pieces, field), getattr(b.packings[name].pieces, field)
                )
    docs = [p.stages[0].packings["web"].pieces.doc for p in (one, other)]
    assert not np.array_equal(*docs)


def test_a_stage_naming_a_source_without_tokens_is_an_error():
    with pytest.raises(ValueError, match="'code' has no tokens"):
        make_plan(
            {"web": np.array([10, 20]), "code": np.zeros(0, np.int64)},
            [StageSpec("a", 16, 100, {"web": 0.5, "code": 0.5})],
            seed=0,
        )
    with pytest.raises(ValueError, match="no documents: \\['pile'\\]"):
        make_plan({"web": np.array([10, 20])}, [StageSpec("a", 16, 100, {"pile": 1.0})], seed=0)


def test_log2_histogram():
    assert log2_histogram(np.array([1, 2, 3, 4, 7, 8, 0])) == [1, 2, 2, 1]
    assert log2_histogram(np.zeros(0)) == []


def test_one_slice_asks_for_exactly_the_recipe_targets():
    lengths = _lengths()
    tokens = {name: int(n.sum()) for name, n in lengths.items()}
    assert [stage_targets(s) for s in slice_specs(STAGES, tokens, tokens)] == [
        stage_targets(s) for s in STAGES
    ]


def test_slices_store_their_share_once_and_meet_the_budget():
    """Planned in 4 slices, each slice stores its share of every source once, repeats it about as often as
    the whole plan does, and each stage's budget holds within half a row per slice."""
    lengths, slices = _lengths(), 4
    tokens = {name: int(n.sum()) for name, n in lengths.items()}
    whole = make_plan(lengths, STAGES, seed=1, shard_bytes=4 << 20)
    stored, trained = dict.fromkeys(lengths, 0), dict.fromkeys(lengths, 0)
    placed = np.zeros((len(STAGES), len(lengths)), np.int64)
    for g in range(slices):
        ranges = {name: document_range(len(n), g, slices) for name, n in lengths.items()}
        mine = {name: n[slice(*ranges[name])] for name, n in lengths.items()}
        specs = slice_specs(STAGES, {name: int(n.sum()) for name, n in mine.items()}, tokens)
        part = make_plan(mine, specs, seed=g, shard_bytes=4 << 20)
        for name, sampling in part.sampling.items():
            stored[name] += sampling.stored_tokens
            trained[name] += sampling.trained_tokens
        for i, stage in enumerate(part.stages):
            for j, name in enumerate(lengths):
                placed[i, j] += stage.packings[name].trained_tokens if name in stage.packings else 0
    names = list(lengths)
    for i, spec in enumerate(STAGES):
        for name, target in stage_targets(spec).items():
            assert abs(placed[i, names.index(name)] - target) <= slices * spec.capacity // 2, (
                spec.name,
                name,
            )
    rows = sum(spec.capacity for spec in STAGES)  # a row of every stage: the sliced and whole plans' slack
    for name in lengths:
        assert abs(trained[name] - whole.sampling[name].trained_tokens) <= (slices + 1) * rows, name
        if whole.sampling[name].stored_tokens == tokens[name]:  # repeated: stored whole, in every slice too
            assert stored[name] == tokens[name], name


def test_slice_counts_and_ranges():
    documents = {"web": 40_000, "code": 10_000, "pile": 8_150, "hq": 1_500}
    shards = [3, 9, 2]
    assert plan_slices(documents, STAGES, 10**9, shards) == 1
    assert plan_slices(documents, STAGES, 1_000, shards) == 2  # the fewest shards of a stage
    assert plan_slices(documents, STAGES, 1_000, [1_000] * 3) == 60
    assert plan_slices({**documents, "hq": 2}, STAGES, 1_000, [1_000] * 3) == 2  # a slice holds some of each
    assert plan_slices({**documents, "hq": 0}, STAGES, 1_000, shards) == 1  # make_plan then says why
    for n, slices in ((10, 3), (7, 7), (1000, 13)):
        assert [i for g in range(slices) for i in range(*document_range(n, g, slices))] == list(range(n))
        assert [i for g in range(slices) for i in shard_range(n, g, slices)] == list(range(n))


def test_shards_are_sized_by_the_tokens_stored_not_trained():
    available = {"web": 40_000_000, "code": 2_000_000, "pile": 10_000_000, "hq": 1_000_000}
    stored = stored_tokens(STAGES, available)
    # web and pile are down-sampled (stored as asked); code (7.2M asked of 2M) and hq (3M of 1M) once
    assert stored[0] == 12_000_000 * 0.6 + 12_000_000 * 0.1 + 12_000_000 * 0.3 * 2 / 7.2
    assert stored[2] == 1_000_000
    assert shard_count(STAGES[2], stored[2], 2, 1 << 20) == 2  # 2 MB of uint16 ids: two 1 MiB shards
    assert shard_count(STAGES[2], stored[2], 4, 1 << 20) == 4


def _scored_stages(hq_tokens: int, floors: dict[str, int]) -> list[StageSpec]:
    return [
        StageSpec("2k", 2048, 6_000_000, {"web": 0.6, "code": 0.4}),
        StageSpec("8k", 8192, 6_000_000, {"web": 0.5, "code": 0.3, "pile": 0.2}),
        StageSpec("hq-8k", 8192, hq_tokens, {"web": 0.5, "code": 0.5}, floors),
    ]


def _score_bins(lengths: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {name: rng.integers(0, SCORE_BINS, len(n)).astype(np.int32) for name, n in lengths.items()}


def _stored_docs(stage, name: str) -> np.ndarray:
    p = stage.packings[name].pieces
    return p.doc[p.start == 0]


@pytest.mark.parametrize("hq_tokens", [1_000_000, 8_000_000])  # down-sampled top tenth; repeated
def test_a_stage_drawn_by_score_takes_only_documents_at_or_above_its_floor(hq_tokens):
    """The top-scored tenth of web and code feeds the hq stage only; the other stages draw from the rest,
    what the hq stage leaves of the top tenth included; no document is stored twice."""
    lengths = _lengths()
    del lengths["hq"]
    bins = _score_bins(lengths)
    floors = {name: floor_for_top(np.bincount(b, minlength=SCORE_BINS), 0.1) for name, b in bins.items()}
    stages = _scored_stages(hq_tokens, floors)
    plan = make_plan(lengths, stages, seed=2, shard_bytes=4 << 20, scores=bins)
    hq = plan.stages[2]
    for name in ("web", "code"):
        top = bins[name] >= floors[name]
        assert abs(top.mean() - 0.1) < 0.01
        drawn = _stored_docs(hq, name)
        assert top[drawn].all()
        others = np.concatenate([_stored_docs(s, name) for s in plan.stages[:2]])
        assert np.intersect1d(drawn, others).size == 0
        eligible = int(lengths[name][top].sum())
        target = stage_targets(hq.spec)[name]
        assert abs(hq.packings[name].trained_tokens - target) <= hq.spec.capacity // 2
        if target > eligible:  # repeated: every top document in the hq stage, none elsewhere
            assert set(drawn.tolist()) == set(np.flatnonzero(top).tolist()) and not top[others].any()
            assert hq.packings[name].passes >= 1
        else:  # down-sampled: the top documents it leaves can fill the other stages
            assert hq.packings[name].tokens <= target + hq.spec.capacity and top[others].any()
        for stage in plan.stages[:2]:
            spec_target = stage_targets(stage.spec)[name]
            assert abs(stage.packings[name].trained_tokens - spec_target) <= stage.spec.capacity // 2


def test_slices_of_a_plan_drawn_by_score_meet_each_pools_budget():
    lengths = _lengths()
    del lengths["hq"]
    bins = _score_bins(lengths)
    floors = {name: floor_for_top(np.bincount(b, minlength=SCORE_BINS), 0.1) for name, b in bins.items()}
    stages = _scored_stages(8_000_000, floors)
    every = {EVERY, *floors.values()}
    whole = {name: tokens_at_or_above(n, bins[name], every) for name, n in lengths.items()}
    assert [stage_targets(s) for s in slice_specs(stages, whole, whole)] == [stage_targets(s) for s in stages]
    slices, placed = 3, np.zeros((len(stages), len(lengths)), np.int64)
    for g in range(slices):
        ranges = {name: slice(*document_range(len(n), g, slices)) for name, n in lengths.items()}
        mine = {name: n[ranges[name]] for name, n in lengths.items()}
        my_bins = {name: b[ranges[name]] for name, b in bins.items()}
        specs = slice_specs(
            stages, {name: tokens_at_or_above(n, my_bins[name], every) for name, n in mine.items()}, whole
        )
        part = make_plan(mine, specs, seed=g, shard_bytes=4 << 20, scores=my_bins)
        for i, stage in enumerate(part.stages):
            for j, name in enumerate(lengths):
                if name in stage.packings:
                    placed[i, j] += stage.packings[name].trained_tokens
                    if name in stage.spec.score_floor:
                        assert (my_bins[name][_stored_docs(stage, name)] >= floors[name]).all()
    for i, spec in enumerate(stages):
        for name, target in stage_targets(spec).items():
            assert abs(placed[i, list(lengths).index(name)] - target) <= slices * spec.capacity, (
                spec.name,
                name,
            )


def test_a_stage_drawn_by_score_needs_scores_and_documents_above_its_floor():
    lengths = {"web": np.full(100, 500, np.int64)}
    stage = [StageSpec("hq", 512, 10_000, {"web": 1.0}, {"web": 7})]
    with pytest.raises(ValueError, match="draw 'web' by score"):
        make_plan(lengths, stage, seed=0)
    with pytest.raises(ValueError, match="no tokens at or above score bin 7"):
        make_plan(lengths, stage, seed=0, scores={"web": np.full(100, 6, np.int32)})


def test_score_bins_order_scores_and_a_top_fraction_draws_at_least_it():
    scores = np.array([0.0, 1e-9, 0.1, 0.5, 0.5, 0.9, 0.999, 1 - 1e-7, 1.0, np.nan], np.float32)
    bins = score_bins(scores)
    assert bins[-1] == UNSCORED and (np.diff(bins[:-1]) >= 0).all() and bins[0] == 0
    assert bins[8] == SCORE_BINS - 1 and bins[6] < bins[7] < bins[8]  # resolution near 1
    assert bin_score(int(bins[5])) <= 0.9 < bin_score(int(bins[5]) + 1)
    counts = np.bincount(bins[:-1], minlength=SCORE_BINS)
    assert floor_for_top(counts, 1.0) == 0
    assert floor_for_top(counts, 0.2) == bins[7]  # the top two of nine, and the tie at 0.5 below
    assert floor_for_top(counts, 0.5) == bins[3]  # five of nine: both documents at 0.5
    assert floor_for_top(np.zeros(SCORE_BINS, np.int64), 0.5) == SCORE_BINS  # nothing scored: nothing drawn
