"""Rebuilds every document of a packed build from the pieces in its shards (shared by the packing tests).

The plan's layout files (BUILD/plan/stage-<i>/shard-<n>.arrow) say which document each piece of a row is;
`collect_pieces` reads every row of every shard, checks that the rows' own doc_offsets, sources and padding
agree with the layout, and returns each piece's tokens as the shard holds them. `assert_rebuilt` then puts
every document back together and checks it against what plan.json says was stored.

Test modules import it as `from . import packed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gristmill.shards.manifest import Manifest
from gristmill.shards.reader import open_shard

DocKey = tuple[str, int, int]  # (source, clean file's task, row in that file)


@dataclass
class Pieces:
    """Every piece found in a build's shards: document → [(start token in the document, tokens)]."""

    by_doc: dict[DocKey, list[tuple[int, np.ndarray]]] = field(default_factory=dict)
    stored_tokens: int = 0  # tokens before the padding, summed over every row of every shard
    rows: int = 0


def _shard_rows(path: str) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, int]:
    """Return a shard's (tokens[rows, L + 1], doc_offsets per row, source per row, pad id), all batches."""
    reader = open_shard(path)
    tokens, offsets, sources = [], [], []
    for batch in reader.batches():
        tokens.append(batch.tokens)
        sources.append(batch.source)
        bounds = zip(batch.list_offsets[:-1], batch.list_offsets[1:])
        offsets.extend(batch.offsets[lo:hi] for lo, hi in bounds)
    return np.concatenate(tokens), offsets, np.concatenate(sources), reader.meta.pad_id


def collect_pieces(root: str, manifest: Manifest) -> Pieces:
    """Return every piece of every row of the build at `root`, checked against the plan's layout files.

    Asserts, row by row, that the layout's pieces tile the row's doc_offsets exactly, that the row's source
    is the pieces' source, and that everything after the last document is padding.
    """
    plan = json.loads(Path(root, "plan.json").read_text())
    inputs = [(source, task) for source, task, _ in plan["inputs"]]  # a layout's `file` indexes these
    names = [s.name for s in manifest.sources]
    found = Pieces()
    for stage_number, stage in enumerate(manifest.stages, 1):
        for shard_number, shard in enumerate(stage.shards):
            tokens, offsets, row_source, pad_id = _shard_rows(str(Path(root, shard.path)))
            layout_file = Path(root, "plan", f"stage-{stage_number}", f"shard-{shard_number:05d}.arrow")
            table = pa.ipc.open_file(str(layout_file)).read_all().to_pydict()
            laid: dict[int, list[tuple[int, int]]] = {}
            for row, offset, length, start, source, file, doc in zip(*table.values()):
                laid.setdefault(row, []).append((offset, length))
                assert row_source[row] == source, (shard.path, row)
                src, task = inputs[file]
                assert src == names[source], (shard.path, row, src, names[source])
                found.by_doc.setdefault((src, task, doc), []).append(
                    (start, tokens[row, offset : offset + length])
                )
            for row, row_offsets in enumerate(offsets):
                spans = sorted(laid.get(row, []))
                assert [o for o, _ in spans] == row_offsets[:-1].tolist(), (shard.path, row)
                assert [o + n for o, n in spans] == row_offsets[1:].tolist(), (shard.path, row)
                assert (tokens[row, row_offsets[-1] :] == pad_id).all(), (shard.path, row)
                found.stored_tokens += int(row_offsets[-1])
            found.rows += len(offsets)
    return found


def copies_of(pieces: list[tuple[int, np.ndarray]], tokens: np.ndarray, key: DocKey) -> int:
    """Return how many whole copies of a document (`tokens`, framing included) `pieces` make.

    Asserts that each piece is the document's tokens at its place and that k copies cover every token of
    the document exactly k times.
    """
    copies = sum(1 for start, _ in pieces if start == 0)
    coverage = np.zeros(len(tokens) + 1, int)
    for start, piece in pieces:
        np.testing.assert_array_equal(piece, tokens[start : start + len(piece)], err_msg=str(key))
        coverage[start] += 1
        coverage[start + len(piece)] -= 1
    assert (np.cumsum(coverage)[:-1] == copies).all(), key
    return copies


def assert_rebuilt(
    found: Pieces,
    expected: dict[tuple[str, int], Sequence[np.ndarray]],
    texts: dict[tuple[str, int], Sequence[str]],
    plan: dict,
    decode: Callable[[np.ndarray], str],
) -> dict[str, np.ndarray]:
    """Assert that every document is stored in the shards at most once, as plan.json's sampling says (all of
    them where a source is repeated); return the copies of each document per source.

    `expected[(source, task)]` holds each document's tokens (framing included) in its clean file's order, and
    `texts` the same documents' text: a document never split must decode back to it. Nothing may be left
    over: every piece found must belong to an expected document.
    """
    assert found.stored_tokens == sum(len(t) for ps in found.by_doc.values() for _, t in ps)
    unknown = [k for k in found.by_doc if k[2] >= len(expected.get(k[:2], ()))]
    assert not unknown, f"pieces of documents that are not in the clean files: {unknown[:5]}"
    counts: dict[str, list[int]] = {}
    for (source, task), docs in sorted(expected.items()):
        for d, tokens in enumerate(docs):
            key = (source, task, d)
            found_pieces = sorted(found.by_doc.get(key, []), key=lambda p: p[0])
            copies = copies_of(found_pieces, tokens, key)
            counts.setdefault(source, []).append(copies)
            if copies and len(found_pieces) == copies:  # never split: decodes to the original text
                assert decode(found_pieces[0][1]) == texts[(source, task)][d], key

    result = {source: np.asarray(c) for source, c in counts.items()}
    for source, copies in result.items():
        sampling = plan["sources"][source]
        lengths = np.concatenate(
            [[len(t) for t in docs] for (s, _), docs in sorted(expected.items()) if s == source]
        )
        assert set(np.unique(copies)) <= {0, 1}, source  # stored once: epochs are by reference
        assert copies.sum() == sampling["stored_documents"], source
        assert int((copies * lengths).sum()) == sampling["stored_tokens"], source
        if sampling["trained_tokens"] >= lengths.sum():
            assert copies.all(), source  # a repeated source is stored whole
        assert sampling["sampling"] == pytest.approx(sampling["trained_tokens"] / lengths.sum()), source
    return result


def assert_rows_encode_like_hf(
    found: Pieces,
    texts: dict[tuple[str, int], Sequence[str]],
    hf_encode: Callable[[str], list[int]],
    eos_id: int,
) -> int:
    """Assert that every document stored whole in one row holds exactly the ids the exported HF tokenizer
    gives its text (bos included where the framing has it), then eos; return how many were checked."""
    checked = 0
    for (source, task, d), pieces in sorted(found.by_doc.items()):
        start, piece = pieces[0]
        if len(pieces) != 1 or start != 0 or piece[-1] != eos_id:
            continue  # split, or sampled more than once
        assert hf_encode(texts[(source, task)][d]) == piece[:-1].tolist(), (source, task, d)
        checked += 1
    assert checked, "no document is stored whole in one row"
    return checked
