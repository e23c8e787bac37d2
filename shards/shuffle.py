"""A seeded, stateless permutation of a stage's rows: position in the shuffled stream → row index.

Nothing is materialised: `shuffled_rows(positions, n, key)` maps any batch of positions in [0, n) to row
indices in [0, n) with a few vectorised passes, so startup does not grow with n and any position can be
computed on its own (which is what makes resume and elastic partitioning cheap).

The permutation is windowed for locality, in two levels:

  1. rows are cut into blocks of `block_rows` consecutive rows (the last block may be shorter), and the
     blocks are permuted globally; laying the permuted blocks end to end gives the *block stream*;
  2. the block stream is cut into windows of `block_rows * window_blocks` positions, and the positions
     inside each window are permuted.

So the rows of one window come from `window_blocks` (+1) contiguous runs of rows, and reads stay
sequential-ish, while the global block permutation mixes the whole stage. Each level is a bijection made
from a balanced Feistel network on the next even power of two, restricted to [0, m) by cycle-walking
(apply the network again until the value lands inside the domain: it always does, since the walk
follows the cycle of a permutation that contains the start).
"""

from __future__ import annotations

import numpy as np

_U64 = np.uint64
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_ROUNDS = 4  # four balanced Feistel rounds give a strong pseudo-random permutation (Luby–Rackoff)
_ROUND_CONSTANTS = [_U64((r + 1) * _GOLDEN & _M64) for r in range(_ROUNDS)]


def mix64(x: np.ndarray | int) -> np.ndarray:
    """Return splitmix64's finaliser of `x` as uint64 (wrapping arithmetic; an int becomes a 0-d array)."""
    x = np.asarray(x, dtype=_U64).copy()
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def derive_key(*parts: int) -> int:
    """Return a 64-bit key hashed from integers (e.g. seed, stage index, epoch); order matters."""
    h = 0x243F6A8885A308D3
    for part in parts:
        h = int(mix64(h ^ int(mix64((part + _GOLDEN) & _M64))))
    return h


def _half_bits(m: int) -> int:
    bits = max(2, int(m - 1).bit_length())
    return (bits + 1) // 2


def _rounds(x: np.ndarray, key: np.ndarray, half: int, inverse: bool) -> np.ndarray:
    mask = _U64((1 << half) - 1)
    h = _U64(half)
    left, right = x >> h, x & mask
    order = range(_ROUNDS - 1, -1, -1) if inverse else range(_ROUNDS)
    for r in order:
        if inverse:  # undo `left, right = right, left ^ F(right)`
            left, right = right ^ (mix64(left ^ (key + _ROUND_CONSTANTS[r])) & mask), left
        else:
            left, right = right, left ^ (mix64(right ^ (key + _ROUND_CONSTANTS[r])) & mask)
    return (left << h) | right


def feistel_permute(x: np.ndarray, m: int, key: np.ndarray | int, *, inverse: bool = False) -> np.ndarray:
    """Return the image of each x in [0, m) under the keyed bijection of [0, m) (or its inverse).

    `key` is one key or one per element (uint64). Values must already lie in [0, m).
    """
    x = np.asarray(x, dtype=_U64)
    if m <= 1 or x.size == 0:
        return x.copy()
    key = np.broadcast_to(np.asarray(key, dtype=_U64), x.shape)
    half = _half_bits(m)
    y = _rounds(x, key, half, inverse)
    outside = np.flatnonzero(y >= _U64(m))
    while outside.size:  # cycle-walking: at most a few steps, since the domain is < 4m
        y[outside] = _rounds(y[outside], key[outside], half, inverse)
        outside = outside[y[outside] >= _U64(m)]
    return y


def shuffled_rows(
    positions: np.ndarray, n: int, key: int, *, block_rows: int = 256, window_blocks: int = 8
) -> np.ndarray:
    """Return the row index (int64) at each shuffled position in [0, n); raise ValueError out of range."""
    p = np.asarray(positions, dtype=np.int64)
    if p.size and (p.min() < 0 or p.max() >= n):
        raise ValueError(f"positions must lie in [0, {n}), got [{p.min()}, {p.max()}]")
    if block_rows < 1 or window_blocks < 1:
        raise ValueError("block_rows and window_blocks must be ≥ 1")
    window_rows = block_rows * window_blocks

    # level 2: permute positions within their window of the block stream
    window = p // window_rows
    start = window * window_rows
    s = np.empty_like(p)
    last = (n - 1) // window_rows
    window_keys = mix64(mix64(window.astype(_U64) + _U64(1)) ^ _U64(key))
    full = window < last
    s[full] = start[full] + feistel_permute(p[full] - start[full], window_rows, window_keys[full]).astype(
        np.int64
    )
    tail = ~full
    s[tail] = start[tail] + feistel_permute(
        p[tail] - start[tail], n - last * window_rows, window_keys[tail]
    ).astype(np.int64)

    # level 1: block stream position → row, with the short last block at its permuted slot q
    n_blocks = -(-n // block_rows)
    short = n - (n_blocks - 1) * block_rows  # rows in the last block, 1..block_rows
    block_key = int(mix64(key ^ _GOLDEN))
    q = int(feistel_permute(np.array([n_blocks - 1]), n_blocks, block_key, inverse=True)[0])
    before = s < q * block_rows
    inside = ~before & (s < q * block_rows + short)
    slot = np.where(before, s // block_rows, np.where(inside, q, (s - short) // block_rows + 1))
    offset = np.where(before, s % block_rows, np.where(inside, s - q * block_rows, (s - short) % block_rows))
    block = feistel_permute(slot, n_blocks, block_key).astype(np.int64)
    return block * block_rows + offset


def shuffled_positions(
    rows: np.ndarray, n: int, key: int, *, block_rows: int = 256, window_blocks: int = 8
) -> np.ndarray:
    """Return the shuffled position (int64) of each row index in [0, n): the inverse of `shuffled_rows`
    (same key and shape), so `shuffled_rows(shuffled_positions(r)) == r`; raise ValueError out of range."""
    r = np.asarray(rows, dtype=np.int64)
    if r.size and (r.min() < 0 or r.max() >= n):
        raise ValueError(f"rows must lie in [0, {n}), got [{r.min()}, {r.max()}]")
    if block_rows < 1 or window_blocks < 1:
        raise ValueError("block_rows and window_blocks must be ≥ 1")
    window_rows = block_rows * window_blocks

    # level 1 undone: row → (block, offset) → the block's slot in the block stream → block stream position s
    n_blocks = -(-n // block_rows)
    short = n - (n_blocks - 1) * block_rows
    block_key = int(mix64(key ^ _GOLDEN))
    q = int(feistel_permute(np.array([n_blocks - 1]), n_blocks, block_key, inverse=True)[0])
    block, offset = r // block_rows, r % block_rows
    slot = feistel_permute(block, n_blocks, block_key, inverse=True).astype(np.int64)
    s = np.where(slot <= q, slot * block_rows + offset, (slot - 1) * block_rows + short + offset)

    # level 2 undone: the position within s's window whose permuted offset is s's
    window = s // window_rows
    start = window * window_rows
    last = (n - 1) // window_rows
    window_keys = mix64(mix64(window.astype(_U64) + _U64(1)) ^ _U64(key))
    p = np.empty_like(s)
    full = window < last
    p[full] = start[full] + feistel_permute(
        s[full] - start[full], window_rows, window_keys[full], inverse=True
    ).astype(np.int64)
    tail = ~full
    p[tail] = start[tail] + feistel_permute(
        s[tail] - start[tail], n - last * window_rows, window_keys[tail], inverse=True
    ).astype(np.int64)
    return p
