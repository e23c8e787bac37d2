"""Log-likelihoods of token sequences under a model: windows, batches, and the two scorers.

Every evaluation asks the same question: the negative log-likelihood (nats) of each token `ids[j]`, for j
from a sequence's `first` scored position on, given the tokens before it. A sequence longer than the model's
context is scored in windows (`windows`): the first window scores as many tokens as fit, each later one
scores the next `max_len // 2` tokens with at least as many tokens of context before them, so no token is
scored twice or without context (a task's context is cut on the left, as lm-eval-harness does).

`ModelScorer` runs gristmill's own model: windows packed into one flattened stream per forward, each window
a document of its own (`cu_seqlens`, position ids from 0), as training packs rows, so nothing is padded.
`HFScorer` runs any transformers causal LM: windows padded on the right into batches. Both return the
same numbers for the same weights (tested against transformers within 1e-4).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from gristmill.shards.batch import IGNORE_INDEX

Progress = Callable[[int], None]  # called with the tokens of each batch as it is scored


@dataclass(frozen=True)
class Window:
    """One forward's share of a sequence: inputs ids[start:end], targets ids[start + 1 : end + 1], of which
    those at sequence positions ≥ `first` count."""

    sequence: int
    start: int
    end: int
    first: int

    @property
    def tokens(self) -> int:
        """Return the window's input tokens."""
        return self.end - self.start


def windows(length: int, first: int, max_len: int) -> list[tuple[int, int, int]]:
    """Return (start, end, first) of the windows scoring tokens first..length-1 of a sequence of `length`.

    Raises ValueError when `first` < 1 (the first token has nothing to be predicted from) or max_len < 2.
    """
    if first < 1:
        raise ValueError(f"the first scored position must be ≥ 1, got {first}")
    if max_len < 2:
        raise ValueError(f"max_len must be ≥ 2, got {max_len}")
    out = []
    j, stride = first, max_len // 2
    while j < length:
        stop = min(length, j + (max_len if j == first else stride))  # targets [j, stop)
        end = stop - 1
        out.append((max(0, end - max_len), end, j))
        j = stop
    return out


class Scorer(Protocol):
    """Scores token sequences: `nll(sequences, firsts)` → per sequence, the NLL of ids[first:], float64."""

    max_len: int

    def nll(
        self, sequences: Sequence[np.ndarray], firsts: Sequence[int], progress: Progress | None = None
    ) -> list[np.ndarray]: ...


def plan_windows(sequences: Sequence[np.ndarray], firsts: Sequence[int], max_len: int) -> list[Window]:
    """Return every window of every sequence, in order."""
    return [
        Window(i, s, e, f)
        for i, (ids, first) in enumerate(zip(sequences, firsts))
        for s, e, f in windows(len(ids), first, max_len)
    ]


def pack(items: Sequence[Window], batch_tokens: int) -> list[list[Window]]:
    """Return the windows in batches of at most `batch_tokens` input tokens (a longer window alone)."""
    batches: list[list[Window]] = []
    current: list[Window] = []
    used = 0
    for w in items:
        if current and used + w.tokens > batch_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(w)
        used += w.tokens
    if current:
        batches.append(current)
    return batches


def _scatter(
    out: list[np.ndarray], firsts: Sequence[int], batch: list[Window], nll_rows: list[np.ndarray]
) -> None:
    """Put each window's counted NLLs (nll_rows[k]: the NLL of each of its targets) into `out`."""
    for w, nll in zip(batch, nll_rows):
        skip = w.first - (w.start + 1)  # targets before `first` are context
        base = firsts[w.sequence]
        out[w.sequence][w.first - base : w.end + 1 - base] = nll[skip:]


class ModelScorer:
    """Scores with gristmill's `Transformer` (or its FSDP-wrapped form): windows packed into one stream.

    Under several ranks each rank scores its own sequences; `batches_everywhere` (given the batches this
    rank has, return the most any rank has) keeps every rank's count of forwards equal, as FSDP needs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        max_len: int,
        batch_tokens: int,
        batches_everywhere: Callable[[int], int] | None = None,
    ) -> None:
        self.model, self.device, self.max_len = model, device, max_len
        self.batch_tokens = max(batch_tokens, max_len)
        self.batches_everywhere = batches_everywhere

    @torch.no_grad()
    def nll(
        self, sequences: Sequence[np.ndarray], firsts: Sequence[int], progress: Progress | None = None
    ) -> list[np.ndarray]:
        """Return per sequence the NLL (float64) of each token from its `first` on."""
        out = [np.zeros(max(0, len(ids) - f), dtype=np.float64) for ids, f in zip(sequences, firsts)]
        batches = pack(plan_windows(sequences, firsts, self.max_len), self.batch_tokens)
        count = self.batches_everywhere(len(batches)) if self.batches_everywhere else len(batches)
        was_training = self.model.training
        self.model.eval()
        try:
            for k in range(count):
                batch = batches[k] if k < len(batches) else []
                nll = self._forward(sequences, batch)
                _scatter(out, firsts, batch, nll)
                if progress is not None and batch:
                    progress(sum(w.tokens for w in batch))
        finally:
            self.model.train(was_training)
        return out

    def _forward(self, sequences: Sequence[np.ndarray], batch: list[Window]) -> list[np.ndarray]:
        if not batch:  # a rank with nothing left still runs a forward: FSDP's collectives need every rank
            batch_inputs = _packed([np.zeros(2, dtype=np.int64)], [(0, 0, 1)])
            self.model(**_to(batch_inputs, self.device), loss_reduction="none")
            return []
        inputs = _packed(sequences, [(w.sequence, w.start, w.end) for w in batch])
        nll = self.model(**_to(inputs, self.device), loss_reduction="none").double().cpu().numpy()
        bounds = np.cumsum([0] + [w.tokens for w in batch])
        return [nll[a:b] for a, b in itertools.pairwise(bounds)]


def _packed(sequences: Sequence[np.ndarray], spans: list[tuple[int, int, int]]) -> dict[str, Any]:
    """Return the model inputs of windows (sequence, start, end) packed into one (1, T) row."""
    ids = np.concatenate([np.asarray(sequences[i][s:e], dtype=np.int64) for i, s, e in spans])
    targets = np.concatenate([np.asarray(sequences[i][s + 1 : e + 1], dtype=np.int64) for i, s, e in spans])
    lengths = np.array([e - s for _, s, e in spans], dtype=np.int64)
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    positions = np.arange(len(ids)) - np.repeat(cu[:-1], lengths)
    return {
        "input_ids": ids[None],
        "position_ids": positions[None],
        "cu_seqlens": cu,
        "max_seqlen": int(lengths.max()),
        "targets": targets[None],
    }


def _to(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = dict(inputs)
    for key, dtype in (
        ("input_ids", torch.int64),
        ("position_ids", torch.int32),
        ("cu_seqlens", torch.int32),
        ("targets", torch.int64),
    ):
        out[key] = torch.as_tensor(inputs[key]).to(device=device, dtype=dtype)
    return out


class HFScorer:
    """Scores with a transformers causal LM: windows padded on the right, `batch_tokens` per batch."""

    def __init__(self, model: Any, device: torch.device, max_len: int, batch_tokens: int) -> None:
        self.model, self.device, self.max_len = model, device, max_len
        self.batch_tokens = max(batch_tokens, max_len)

    @torch.no_grad()
    def nll(
        self, sequences: Sequence[np.ndarray], firsts: Sequence[int], progress: Progress | None = None
    ) -> list[np.ndarray]:
        """Return per sequence the NLL (float64) of each token from its `first` on."""
        out = [np.zeros(max(0, len(ids) - f), dtype=np.float64) for ids, f in zip(sequences, firsts)]
        items = sorted(plan_windows(sequences, firsts, self.max_len), key=lambda w: -w.tokens)
        self.model.eval()
        k = 0
        while k < len(items):
            rows = max(1, self.batch_tokens // items[k].tokens)  # the longest first: padding stays small
            batch = items[k : k + rows]
            k += rows
            width = batch[0].tokens
            ids = torch.zeros(len(batch), width, dtype=torch.int64)
            targets = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.int64)
            mask = torch.zeros(len(batch), width, dtype=torch.int64)
            for r, w in enumerate(batch):
                seq = torch.as_tensor(np.asarray(sequences[w.sequence], dtype=np.int64))
                ids[r, : w.tokens] = seq[w.start : w.end]
                targets[r, : w.tokens] = seq[w.start + 1 : w.end + 1]
                mask[r, : w.tokens] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp.gather(-1, targets.clamp(min=0).to(self.device)[..., None])[..., 0]
            nll = (-picked).double().cpu().numpy()
            _scatter(out, firsts, batch, [nll[r, : w.tokens] for r, w in enumerate(batch)])
            if progress is not None:
                progress(sum(w.tokens for w in batch))
        return out
