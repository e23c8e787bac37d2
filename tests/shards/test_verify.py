"""`verify` passes a good build and names the shard and the problem for a flipped byte, a wrong offset,
a token outside the vocabulary and a missing file; the CLI exits non-zero. The fixture's build carries a
real (word-level) tokenizer, since verify checks the manifest's tokenizer entry against its files."""

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
    SourceRows,
    StageEntry,
    TokenizerEntry,
    write_manifest,
)
from gristmill.shards.verify import verify_build
from gristmill.shards.writer import shard_table, write_shard

VOCAB = 1000


def write_tokenizer(directory) -> ShardMeta:
    """Write a word-level tokenizer of VOCAB ids (eos 0, pad 1) into `directory`; return the shard meta."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models

    from gristmill.tokenizer.interface import Tokenizer

    vocab = {"</s>": 0, "<pad>": 1, **{f"w{i}": i for i in range(2, VOCAB)}}
    directory.mkdir(parents=True)
    HFTokenizer(models.WordLevel(vocab, unk_token="w2")).save(str(directory / "tokenizer.json"))
    content_hash = Tokenizer.load(directory).content_hash
    return ShardMeta(seq_len=15, pad_id=1, eos_id=0, tokenizer_hash=content_hash, token_type="uint16")


def _shard(meta: ShardMeta, rows: int, seed: int, bad_offset: bool = False, bad_token: bool = False):
    rng = np.random.default_rng(seed)
    tokens = np.full((rows, 16), meta.pad_id, np.int32)
    offsets, list_offsets, used = [], [0], []
    for r in range(rows):
        cut, end = int(rng.integers(1, 10)), int(rng.integers(10, 17))
        tokens[r, :end] = rng.integers(2, VOCAB, end)
        tokens[r, cut - 1] = tokens[r, end - 1] = meta.eos_id
        offsets += [0, cut, end]
        list_offsets.append(len(offsets))
        used.append(end)
    if bad_offset:
        offsets[4] = offsets[5] + 1  # row 1: [0, 17 > used, …] not increasing
    if bad_token:
        tokens[2, 0] = VOCAB + 5
    source = (np.arange(rows) >= rows // 2).astype(np.uint8)  # a block of web rows, then one of code
    offsets_parts = np.asarray(list_offsets, np.int32), np.asarray(offsets, np.int32)
    table = shard_table(meta, tokens, *offsets_parts, source)
    return (table, {name: int(np.asarray(used)[source == i].sum()) for i, name in enumerate(["web", "code"])})


@pytest.fixture
def build(tmp_path):
    """A build of one stage with three shards (the last two broken in ways the manifest does not show)."""
    meta = write_tokenizer(tmp_path / "tokenizer")
    entries = []
    for n, kwargs in enumerate([{}, {"bad_offset": True}, {"bad_token": True}]):
        table, per_source = _shard(meta, 8, seed=n, **kwargs)
        rel = f"stage-1-15/shard-{n:05d}.arrow"
        written = write_shard(str(tmp_path / rel), table)
        tokens = sum(per_source.values())
        entries.append(
            ShardEntry(
                path=rel,
                rows=8,
                tokens=tokens,
                source_tokens=per_source,
                source_rows=[
                    SourceRows(source=name, rows=4, passes=1, trained_tokens=n)
                    for name, n in per_source.items()
                ],
                xxh3=written.xxh3,
                bytes=written.bytes,
                padding_tokens=8 * 16 - tokens,
            )
        )

    def write(shards: list[ShardEntry]) -> str:
        per_source: dict[str, int] = {}
        for shard in shards:
            for name, n in shard.source_tokens.items():
                per_source[name] = per_source.get(name, 0) + n
        stage = StageEntry.of_shards("s", 1, 15, 30, shards, sampling=dict.fromkeys(per_source, 1.0))
        write_manifest(
            str(tmp_path),
            Manifest(
                name="t",
                recipe={},
                recipe_hash="h",
                seed=0,
                accounting={},
                sources=[
                    SourceEntry(name=n, format="jsonl", kind="text", priority=0) for n in ("web", "code")
                ],
                tokenizer=TokenizerEntry(
                    path="tokenizer/",
                    hash=meta.tokenizer_hash,
                    vocab_size=VOCAB,
                    bos_id=None,
                    eos_id=meta.eos_id,
                    pad_id=meta.pad_id,
                    framing=meta.framing,
                ),
                stages=[stage],
            ),
        )
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
        "row 2: token id 1005 is outside the vocabulary (size 1000)"
    ]
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


def _edit_manifest(root, change, rehash: bool) -> None:
    """Apply `change` to manifest.json's data; keep its old content hash unless `rehash`."""
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    if rehash:  # as a careful forger would: the hash of the manifest as gristmill reads it
        data["content_hash"] = Manifest.model_validate(data).computed_hash()
    path.write_text(json.dumps(data))


def _unbalance(data):
    data["accounting"] = {
        "web": {"all": {"in": 10, "kept": 9, "quarantined": 0, "filtered": {}, "duplicate": {}}}
    }


def _more_web_tokens(data):
    data["stages"][0]["source_tokens"]["web"] += 5


def _bigger_vocab(data):
    data["tokenizer"]["vocab_size"] = 2000


def _blocks_swapped(data):
    blocks = data["stages"][0]["shards"][0]["source_rows"]
    blocks[0]["source"], blocks[1]["source"] = blocks[1]["source"], blocks[0]["source"]


def _more_passes(data):
    data["stages"][0]["shards"][0]["source_rows"][1]["passes"] = 2


def _fewer_trained_rows(data):
    data["stages"][0]["trained_rows"] -= 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            _unbalance,
            "accounting of web/all does not balance: 10 in, 9 kept + filtered + duplicate + quarantined",
        ),
        (_more_web_tokens, "stage 's' lists tokens per source"),
        (_bigger_vocab, "the manifest's tokenizer vocab_size is 2000, the tokenizer files say 1000"),
        (_fewer_trained_rows, "stage 's' lists 7 trained rows, its shards hold 8"),
    ],
)
@pytest.mark.parametrize("rehash", [False, True])
def test_an_edited_manifest_fails_verify(build, change, problem, rehash):
    write, entries, root = build
    write(entries[:1])
    _edit_manifest(root, change, rehash)
    report = verify_build(str(root))
    assert not report.ok
    assert any(p.startswith(problem) for p in report.problems), report.problems
    hash_problems = [p for p in report.problems if p.startswith("the manifest's content hashes to")]
    assert bool(hash_problems) != rehash, report.problems
    result = CliRunner().invoke(cli, ["shards", "verify", str(root)])
    assert result.exit_code == 1 and problem in result.output


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_blocks_swapped, "source_rows are in the order ['code', 'web'], not the manifest's ['web', 'code']"),
        (_more_passes, "the 'code' block trains 108 tokens, the manifest says 54"),
    ],
)
def test_source_blocks_that_disagree_with_the_rows_are_named(build, change, problem):
    write, entries, root = build
    write(entries[:1])
    _edit_manifest(root, change, rehash=True)
    report = verify_build(str(root))
    assert not report.ok
    assert any(problem in p for s in report.shards for p in s.problems), [s.problems for s in report.shards]


def test_the_tokenizer_files_are_checked_against_the_manifest(build):
    write, entries, root = build
    write(entries[:1])
    (root / "tokenizer" / "tokenizer.json").write_text(
        (root / "tokenizer" / "tokenizer.json").read_text().replace('"w999"', '"x999"')
    )
    report = verify_build(str(root))
    assert [p for p in report.problems if p.startswith("the manifest's tokenizer hash is")], report.problems
