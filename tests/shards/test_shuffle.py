"""The stateless shuffle is a seeded bijection, local within windows, and never needs a materialised index."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.shards.shuffle import derive_key, feistel_permute, shuffled_rows


@pytest.mark.parametrize("case", range(60))
def test_shuffled_rows_is_a_permutation(case):
    rng = np.random.default_rng(case)
    n = int(rng.choice([1, 2, 3, int(rng.integers(4, 300)), int(rng.integers(300, 5000))]))
    block, window = int(rng.integers(1, 40)), int(rng.integers(1, 9))
    rows = shuffled_rows(np.arange(n), n, derive_key(case), block_rows=block, window_blocks=window)
    assert rows.dtype == np.int64
    assert np.array_equal(np.sort(rows), np.arange(n))


@pytest.mark.parametrize("m", [1, 2, 5, 16, 17, 1000, 65537])
def test_feistel_inverse_undoes_it(m):
    x = np.arange(m, dtype=np.uint64)
    keys = np.arange(m, dtype=np.uint64) * np.uint64(7)  # one key per element is allowed
    y = feistel_permute(x, m, 12345)
    assert np.array_equal(np.sort(y), x)
    assert np.array_equal(feistel_permute(y, m, 12345, inverse=True), x)
    assert np.array_equal(feistel_permute(feistel_permute(x, m, keys), m, keys, inverse=True), x)


def test_any_slice_of_positions_agrees_with_the_whole():
    n, key = 10_007, derive_key(3, 1, 0)
    whole = shuffled_rows(np.arange(n), n, key, block_rows=16, window_blocks=4)
    picks = np.random.default_rng(0).integers(0, n, size=500)
    assert np.array_equal(shuffled_rows(picks, n, key, block_rows=16, window_blocks=4), whole[picks])


def test_seed_changes_the_order_and_is_deterministic():
    n = 4096
    a = shuffled_rows(np.arange(n), n, derive_key(1))
    assert np.array_equal(a, shuffled_rows(np.arange(n), n, derive_key(1)))
    b = shuffled_rows(np.arange(n), n, derive_key(2))
    assert (a != b).mean() > 0.9
    assert (a != np.arange(n)).mean() > 0.9
    assert derive_key(1, 2) != derive_key(2, 1)


def test_a_window_reads_from_few_blocks():
    n, block, window = 100_000, 64, 8
    rows = shuffled_rows(np.arange(n), n, derive_key(9), block_rows=block, window_blocks=window)
    for w in range(0, n // (block * window), 37):
        blocks = np.unique(rows[w * block * window : (w + 1) * block * window] // block)
        assert len(blocks) <= window + 1  # the short last block can shift the window's edges by one block
    first_window = rows[: block * window] // block
    assert np.ptp(first_window) > window  # blocks come from all over the stage, not one neighbourhood


def test_positions_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        shuffled_rows(np.array([10]), 10, 1)
