"""`verify` passes a good build and names the shard and the problem for a flipped byte, a wrong offset,
a token outside the vocabulary and a missing file; the CLI exits non-zero."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.shards.format import ShardMeta
from gristmill.shards.manifest import (
    Manifest,
    ShardEntry,
    SourceEntry,
    StageEntry,
    TokenizerEntry,
    write_manifest,
)
from gristmill.shards.verify import verify_build
from gristmill.shards.writer import shard_table, write_shard

VOCAB = 1000
META = ShardMeta(seq_len=15, pad_id=1, eos_id=0, tokenizer_hash="0123abcd")


def _shard(rows: int, seed: int, bad_offset: bool = False, bad_token: bool = False):
    rng = np.random.default_rng(seed)
    tokens = np.full((rows, 16), META.pad_id, np.int32)
    offsets, list_offsets, used = [], [0], []
    for r in range(rows):
        cut, end = int(rng.integers(1, 10)), int(rng.integers(10, 17))
        tokens[r, :end] = rng.integers(2, VOCAB, end)
        tokens[r, cut - 1] = tokens[r, end - 1] = META.eos_id
        offsets += [0, cut, end]
        list_offsets.append(len(offsets))
        used.append(end)
    if bad_offset:
        offsets[4] = offsets[5] + 1  # row 1: [0, 17 > used, …] not increasing
    if bad_token:
        tokens[2, 0] = VOCAB + 5
    source = (np.arange(rows) % 2).astype(np.uint8)
    offsets_parts = np.asarray(list_offsets, np.int32), np.asarray(offsets, np.int32)
    table = shard_table(META, tokens, *offsets_parts, source)
    return (table,
            {name: int(np.asarray(used)[source == i].sum()) for i, name in enumerate(["web", "code"])})


@pytest.fixture
def build(tmp_path):
    """A build of one stage with three shards (the last two broken in ways the manifest does not show)."""
    entries = []
    for n, kwargs in enumerate([{}, {"bad_offset": True}, {"bad_token": True}]):
        table, per_source = _shard(8, seed=n, **kwargs)
        rel = f"stage-1-15/shard-{n:05d}.arrow"
        written = write_shard(str(tmp_path / rel), table)
        entries.append(ShardEntry(path=rel, rows=8, tokens=sum(per_source.values()), source_tokens=per_source,
                                  xxh3=written.xxh3, bytes=written.bytes, padding_tokens=0))

    def write(shards: list[ShardEntry]) -> str:
        stage = StageEntry(name="s", seq_len=15, tokens_per_batch=30, rows=sum(s.rows for s in shards),
                           tokens=sum(s.tokens for s in shards), padding_tokens=0, split_documents=0,
                           source_tokens={}, sampling={}, shards=shards)
        write_manifest(str(tmp_path), Manifest(
            name="t", recipe={}, recipe_hash="h", seed=0, accounting={},
            sources=[SourceEntry(name=n, format="jsonl", kind="text", priority=0) for n in ("web", "code")],
            tokenizer=TokenizerEntry(path="tokenizer/", hash=META.tokenizer_hash, vocab_size=VOCAB,
                                     bos_id=None, eos_id=META.eos_id, pad_id=META.pad_id,
                                     framing=META.framing), stages=[stage]))
        return str(tmp_path)

    return write, entries, tmp_path


def test_a_good_build_passes(build):
    write, entries, _ = build
    report = verify_build(write(entries[:1]))
    assert report.ok, report.to_dict()
    result = CliRunner().invoke(cli, ["shards", "verify", write(entries[:1])])
    assert result.exit_code == 0 and "1 shards, 8 rows: ok" in result.output


def test_wrong_offsets_and_token_ids_are_named(build):
    write, entries, _ = build
    report = verify_build(write(entries))
    bad = {s.path: s.problems for s in report.shards if not s.ok}
    assert list(bad) == ["stage-1-15/shard-00001.arrow", "stage-1-15/shard-00002.arrow"]
    assert "row 1: doc_offsets are not increasing" in bad["stage-1-15/shard-00001.arrow"]
    assert bad["stage-1-15/shard-00002.arrow"] == [
        "row 2: token id 1005 is outside the vocabulary (size 1000)"]
    result = CliRunner().invoke(cli, ["shards", "verify", write(entries), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["shards"][1]["problems"] == bad["stage-1-15/shard-00001.arrow"]


def test_a_flipped_byte_and_a_missing_file(build):
    write, entries, root = build
    shard = root / entries[0].path
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40  # inside the token data: the file still parses, the checksum does not match
    shard.write_bytes(bytes(data))
    (root / entries[2].path).unlink()
    report = verify_build(write([entries[0], entries[2]]))
    problems = {s.path: s.problems for s in report.shards}
    assert any(p.startswith("xxh3 is ") for p in problems[entries[0].path])
    assert problems[entries[2].path] == ["file is missing"]
    result = CliRunner().invoke(cli, ["shards", "verify", str(root)])
    assert result.exit_code == 1 and "FAILED" in result.output
    assert f"{entries[0].path}: xxh3 is" in result.output
