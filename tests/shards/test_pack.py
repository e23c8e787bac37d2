"""Best-fit row packing: placements, limits, splits only past the capacity, offsets and token gathering."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.shards.pack import (
    Pieces,
    RowPacker,
    gather_tokens,
    longest_first,
    pack_documents,
    row_offsets,
)


def _check_tiling(pieces: Pieces, lengths: np.ndarray, capacity: int, rows: int) -> None:
    """Rows are filled contiguously from 0 within capacity; every placed copy is covered exactly once."""
    for r in range(rows):
        mine = pieces.take(pieces.row == r)
        ends = mine.offset + mine.length
        assert mine.offset[0] == 0 and (mine.offset[1:] == ends[:-1]).all() and ends[-1] <= capacity
    for d in np.unique(pieces.doc):
        mine = pieces.take(pieces.doc == d)
        copies = int((mine.start == 0).sum())
        coverage = np.zeros(lengths[d] + 1, int)
        np.add.at(coverage, mine.start, 1)
        np.add.at(coverage, mine.start + mine.length, -1)
        assert (np.cumsum(coverage)[:-1] == copies).all()


def test_best_fit_takes_the_row_with_least_room():
    packer = RowPacker(10)
    for doc, n in enumerate([6, 7, 8]):  # three rows, rooms 4, 3, 2
        assert packer.add(doc, n)
    assert packer.add(3, 3)  # rooms ≥ 3: 4 and 3 → the row with 3
    assert list(packer.used) == [6, 10, 8]
    assert packer.add(4, 2) and list(packer.used) == [6, 10, 10]
    assert packer.add(5, 5) and packer.rows == 4  # no room of 5: a new row


def test_limits_on_rows_and_tokens():
    packer = RowPacker(10, max_rows=2)
    assert packer.add(0, 9) and packer.add(1, 9)
    assert not packer.add(2, 5) and packer.rows == 2 and packer.add(3, 1)
    capped = RowPacker(10, max_tokens=12)
    assert capped.add(0, 10) and not capped.add(1, 3) and capped.add(2, 2)
    with pytest.raises(ValueError):
        RowPacker(0)


def test_fill_returns_what_does_not_fit_in_order():
    lengths = np.array([9, 8, 3, 2, 2, 1])
    packer = RowPacker(10, max_rows=2)
    left = packer.fill(lengths, np.arange(6))
    assert list(packer.used) == [10, 10] and left.tolist() == [2, 4]  # 9+1 and 8+2; 3 and the second 2 left


def test_long_documents_split_into_full_rows_and_a_rest():
    lengths = np.array([25, 4])
    packer = RowPacker(10)
    assert packer.add(0, 25) and packer.add(1, 4)
    p = packer.pieces()
    assert packer.split_documents == 1 and packer.rows == 3
    assert sorted(zip(p.start.tolist(), p.length.tolist())) == [(0, 4), (0, 10), (10, 10), (20, 5)]
    _check_tiling(p, lengths, 10, packer.rows)
    short = RowPacker(10, max_rows=2)
    assert not short.add(0, 25) and short.rows == 0  # needs 3 rows: nothing placed


def test_pack_documents_splits_only_longer_than_a_row_and_closes_gaps():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(1, 300, 3000), rng.integers(300, 5000, 100)])
    docs = np.repeat(np.arange(len(lengths)), 2)  # two copies of everything
    capacity = 257
    packer = pack_documents(lengths, docs, capacity, rng.permutation(len(lengths)))
    p = packer.pieces()
    _check_tiling(p, lengths, capacity, packer.rows)
    first = p.take(p.start == 0)
    assert np.bincount(first.doc, minlength=len(lengths)).tolist() == [2] * len(lengths)
    whole = lengths[p.doc] <= capacity
    assert (p.length[whole] == lengths[p.doc[whole]]).all()  # no document that fits a row is split
    assert packer.split_documents == 2 * int((lengths > capacity).sum())
    padding = packer.rows * capacity - packer.tokens
    assert padding < capacity  # the gaps are closed: only the last row may be short


def test_row_offsets_are_cu_seqlens():
    pieces = Pieces(
        np.array([0, 1, 2]),
        np.zeros(3, np.int32),
        np.array([3, 4, 5], np.int32),
        np.array([0, 0, 1], np.int32),
        np.array([0, 3, 0], np.int32),
    )
    list_offsets, values = row_offsets(pieces, 2)
    assert list_offsets.tolist() == [0, 3, 5] and values.tolist() == [0, 3, 7, 0, 5]
    with pytest.raises(ValueError, match="row 2 holds no piece"):
        row_offsets(pieces, 3)


def test_gather_tokens_copies_pieces_and_pads():
    blocks = [np.arange(100, 120, dtype=np.int32), np.arange(200, 210, dtype=np.int32)]
    # doc 0 = block 0 [5:12), doc 1 = block 1 [2:6); doc 0 split over two rows
    pieces = Pieces(
        np.array([0, 1, 0]),
        np.array([0, 0, 4], np.int32),
        np.array([4, 4, 3], np.int32),
        np.array([0, 0, 1], np.int32),
        np.array([0, 4, 0], np.int32),
    )
    for chunk_tokens in (1, 3, 1 << 22):  # runs of one piece each, of two pieces, and one run per block
        rows = gather_tokens(
            pieces, 2, 9, -1, np.array([0, 1, 0]), np.array([5, 2, 5]), blocks, chunk_tokens=chunk_tokens
        )
        assert rows.tolist() == [
            [105, 106, 107, 108, 202, 203, 204, 205, -1],
            [109, 110, 111, -1, -1, -1, -1, -1, -1],
        ]


@pytest.mark.parametrize("seed", range(20))
def test_fill_skips_only_documents_that_cannot_fit(seed):
    """`fill` jumps over runs of documents too long to place; it must place exactly what offering each
    document in turn places."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 60, 400)
    docs = longest_first(lengths, np.arange(400), rng.permutation(400))
    limits = dict(max_rows=int(rng.integers(5, 80)), max_tokens=int(rng.integers(200, 6000)))
    filled, offered = RowPacker(16, **limits), RowPacker(16, **limits)
    left = filled.fill(lengths, docs)
    expected = [doc for doc in docs.tolist() if not offered.add(doc, int(lengths[doc]))]
    assert left.tolist() == expected
    assert list(filled.used) == list(offered.used)
    for field in ("doc", "start", "length", "row", "offset"):
        assert np.array_equal(getattr(filled.pieces(), field), getattr(offered.pieces(), field))
