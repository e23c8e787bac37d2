"""Turn packed rows into what a trainer step needs: inputs, targets, loss mask, position ids, cu_seqlens.

A row holds L + 1 tokens; inputs are tokens[:L] and targets tokens[1:]. Its doc_offsets o_0 = 0 < o_1 < … <
o_m = u give the documents [o_k, o_k+1); tokens from u on are padding. A row whose documents were all taken
down (`gristmill shards takedown`) has doc_offsets [0]: u = 0, all padding, no loss.

Loss: input position j predicts token j + 1, and is trained (loss_mask True, target kept) unless
  - j + 1 ≥ u: the target is padding; or
  - j + 1 = o_k for an inner boundary k (0 < k < m): the target is the first token of the *next* document.
    With document-masked attention (cu_seqlens) the eos position cannot see that document, so the target
    is noise; standard unmasked packing keeps it. `cross_document_targets=True` keeps it too.
Masked targets are set to IGNORE_INDEX (-100), the default ignore index of torch's cross-entropy.

Segments for varlen attention are the documents clipped to the L inputs, plus the padding [u, L) as a
segment of its own when u < L; cu_seqlens are their offsets in the flattened (B·L) stream (first 0, last
B·L) and position ids restart at 0 at every segment start.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100


def micro_batch(
    tokens: np.ndarray,
    offsets: np.ndarray,
    counts: np.ndarray,
    *,
    cross_document_targets: bool = False,
    dtype: type = np.int64,
) -> dict[str, np.ndarray | int]:
    """Return input_ids, targets, loss_mask, position_ids (B, L), cu_seqlens (int32) and max_seqlen.

    tokens: (B, L+1) int; offsets: every row's doc_offsets concatenated; counts: (B,) offsets per row.
    Raises ValueError when a row's doc_offsets are not 0 < … strictly increasing ≤ L+1 (or just [0]).
    """
    n_rows, width = tokens.shape
    seq_len = width - 1
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    ends = np.cumsum(counts)
    firsts = ends - counts
    row_of = np.repeat(np.arange(n_rows), counts)
    _check_offsets(offsets, counts, firsts, row_of, width)
    used = offsets[ends - 1]  # (B,) u per row

    inner = np.ones(offsets.size, dtype=bool)
    inner[firsts] = False
    inner[ends - 1] = False
    j = np.arange(seq_len)
    loss_mask = j[None, :] + 1 < used[:, None]  # (B, L)
    if not cross_document_targets:
        loss_mask.reshape(-1)[row_of[inner] * seq_len + offsets[inner] - 1] = False

    input_ids = tokens[:, :-1].astype(dtype)
    targets = tokens[:, 1:].astype(dtype)
    targets[~loss_mask] = IGNORE_INDEX

    # segment starts in the flattened stream: documents starting inside the inputs, then padding
    is_start = np.ones(offsets.size, dtype=bool)
    is_start[ends - 1] = False
    is_start &= offsets < seq_len
    pad_rows = np.flatnonzero(used < seq_len)
    starts = np.concatenate(
        [row_of[is_start] * seq_len + offsets[is_start], pad_rows * seq_len + used[pad_rows]]
    )
    starts.sort()
    cu_seqlens = np.append(starts, n_rows * seq_len).astype(np.int32)
    lengths = np.diff(cu_seqlens)
    position_ids = (np.arange(n_rows * seq_len) - np.repeat(starts, lengths)).reshape(n_rows, seq_len)
    return {
        "input_ids": input_ids,
        "targets": targets,
        "loss_mask": loss_mask,
        "position_ids": position_ids.astype(dtype),
        "cu_seqlens": cu_seqlens,
        "max_seqlen": int(lengths.max()) if lengths.size else 0,
    }


def _check_offsets(
    offsets: np.ndarray, counts: np.ndarray, firsts: np.ndarray, row_of: np.ndarray, width: int
) -> None:
    bad = counts < 1
    ok_rows = ~bad
    bad[ok_rows] |= offsets[firsts[ok_rows]] != 0
    step_bad = np.diff(offsets) <= 0
    same_row = row_of[1:] == row_of[:-1]
    bad[row_of[1:][step_bad & same_row]] = True
    bad[row_of[offsets > width]] = True
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        row = offsets[firsts[r] : firsts[r] + counts[r]].tolist()
        shown = f"{row[:8]}{'…' if len(row) > 8 else ''}"
        raise ValueError(
            f"row {r} of the micro-batch has doc_offsets {shown}; "
            f"expected 0 first, strictly increasing, last ≤ {width}"
        )
