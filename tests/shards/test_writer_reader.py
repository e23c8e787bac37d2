"""Shard files: written atomically in ~4 MiB record batches with the xxh3 of their bytes; read back by
memory map with the schema checked; plain Arrow for pyarrow, polars and duckdb."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from gristmill.errors import BuildError
from gristmill.shards.format import ShardMeta
from gristmill.shards.reader import open_shard
from gristmill.shards.writer import file_xxh3, rows_per_batch, shard_table, write_shard

META = ShardMeta(seq_len=2047, pad_id=0, eos_id=2, tokenizer_hash="feedbeef")


def _rows(n: int, seed: int = 0):
    """n rows of 2048 tokens: two documents each, then padding."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 50_000, (n, 2048), dtype=np.int32)
    used = rng.integers(100, 2049, n)
    first = used // 3
    tokens[np.arange(2048)[None, :] >= used[:, None]] = META.pad_id
    offsets = np.stack([np.zeros(n, np.int64), first, used], axis=1).reshape(-1).astype(np.int32)
    list_offsets = np.arange(0, 3 * n + 1, 3, dtype=np.int32)
    return tokens, list_offsets, offsets, (np.arange(n) % 3).astype(np.uint8)


def test_round_trip_in_batches_of_about_4_mib(tmp_path):
    tokens, list_offsets, offsets, source = _rows(1200)
    path = str(tmp_path / "stage-1-2047" / "shard-00000.arrow")
    written = write_shard(path, shard_table(META, tokens, list_offsets, offsets, source))
    data = (tmp_path / "stage-1-2047" / "shard-00000.arrow").read_bytes()
    assert written.bytes == len(data) and written.xxh3 == xxhash.xxh3_64(data).hexdigest()
    assert file_xxh3(path) == (written.bytes, written.xxh3)
    assert [p.name for p in (tmp_path / "stage-1-2047").iterdir()] == ["shard-00000.arrow"]  # no temp left

    reader = open_shard(path)
    assert reader.meta == META and reader.rows == 1200
    assert rows_per_batch(2047) == 512 and len(reader.chunks) == 3
    for i in (0, 511, 512, 1199):
        row = reader.row(i)
        np.testing.assert_array_equal(row.tokens, tokens[i])
        assert row.doc_offsets.tolist() == offsets[3 * i : 3 * i + 3].tolist() and row.source == source[i]
        first, used = offsets[3 * i + 1], offsets[3 * i + 2]
        assert [len(d) for d in row.documents()] == [first, used - first]
    with pytest.raises(IndexError):
        reader.row(1200)
    batches = list(reader.batches())
    np.testing.assert_array_equal(np.concatenate([b.tokens for b in batches]), tokens)


def test_same_rows_same_bytes(tmp_path):
    parts = _rows(50, seed=3)
    a = write_shard(str(tmp_path / "a.arrow"), shard_table(META, *parts))
    b = write_shard(str(tmp_path / "b.arrow"), shard_table(META, *parts))
    assert (a.xxh3, a.bytes) == (b.xxh3, b.bytes)


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    from gristmill.shards import writer

    def disk_full(self, data):
        raise OSError("no space left on device")

    monkeypatch.setattr(writer._HashingSink, "write", disk_full)
    with pytest.raises(OSError, match="no space"):
        write_shard(str(tmp_path / "x.arrow"), shard_table(META, *_rows(10)))
    assert list(tmp_path.iterdir()) == []


def test_bad_shapes_and_files_are_named(tmp_path):
    tokens, list_offsets, offsets, source = _rows(4)
    with pytest.raises(ValueError, match="L \\+ 1 is 2048"):
        shard_table(META, tokens[:, :100], list_offsets, offsets, source)
    with pytest.raises(BuildError, match="shard file not found"):
        open_shard(str(tmp_path / "missing.arrow"))
    other = tmp_path / "other.arrow"
    with pa.ipc.new_file(str(other), pa.schema([("x", pa.int32())])) as w:
        w.write_table(pa.table({"x": [1]}, schema=pa.schema([("x", pa.int32())])))
    with pytest.raises(BuildError, match=r"lacks gristmill\.seq_len") as e:
        open_shard(str(other))
    assert str(other) in str(e.value)
    (tmp_path / "junk.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(BuildError, match="not an Arrow IPC file"):
        open_shard(str(tmp_path / "junk.arrow"))


def test_a_shard_that_is_not_what_its_manifest_says_is_refused(tmp_path):
    path = str(tmp_path / "s.arrow")
    write_shard(path, shard_table(META, *_rows(10)))
    assert open_shard(path, seq_len=META.seq_len, rows=10).rows == 10
    with pytest.raises(BuildError, match="sequence length 2047, its stage expects 4095"):
        open_shard(path, seq_len=4095)
    with pytest.raises(BuildError, match="has 10 rows, the manifest says 11") as e:
        open_shard(path, rows=11)
    assert path in str(e.value)


def test_polars_and_duckdb_read_a_shard(tmp_path):
    import duckdb
    import polars as pl

    tokens, list_offsets, offsets, source = _rows(20)
    path = str(tmp_path / "s.arrow")
    write_shard(path, shard_table(META, tokens, list_offsets, offsets, source))
    frame = pl.read_ipc(path)
    assert frame.height == 20 and frame["source"].to_list() == source.tolist()
    assert frame["tokens"][5].to_list() == tokens[5].tolist()
    con = duckdb.connect()
    con.register("shard", pa.ipc.open_file(path).read_all())
    used = con.execute("select sum(list_last(doc_offsets)) from shard").fetchall()
    assert used == [(int(offsets[2::3].sum()),)]


def test_framing_round_trips_in_the_schema_metadata():
    for meta in (META, ShardMeta(seq_len=15, pad_id=0, eos_id=2, tokenizer_hash="ab", bos_id=1)):
        schema = pa.schema([("tokens", pa.int32())], metadata=meta.to_metadata())
        assert ShardMeta.from_schema(schema) == meta
    assert META.framing == "eos"
    assert META.to_metadata()[b"gristmill.bos_id"] == b"none"
    bos = ShardMeta(seq_len=15, pad_id=0, eos_id=2, tokenizer_hash="ab", bos_id=1)
    assert (bos.framing, bos.to_metadata()[b"gristmill.bos_id"]) == ("bos+eos", b"1")


def test_framing_that_disagrees_with_bos_and_version_1_are_refused(tmp_path):
    metadata = ShardMeta(seq_len=15, pad_id=0, eos_id=2, tokenizer_hash="ab", bos_id=1).to_metadata()
    metadata[b"gristmill.framing"] = b"eos"
    with pytest.raises(ValueError, match="malformed: framing 'eos' with bos_id '1'"):
        ShardMeta.from_schema(pa.schema([("tokens", pa.int32())], metadata=metadata))

    tokens, list_offsets, offsets, source = _rows(3)
    table = shard_table(META, tokens, list_offsets, offsets, source)
    added = (b"gristmill.framing", b"gristmill.bos_id")
    old = {k: v for k, v in table.schema.metadata.items() if k not in added}
    old[b"gristmill.format_version"] = b"1"
    path = str(tmp_path / "old.arrow")
    write_shard(path, table.replace_schema_metadata(old))
    with pytest.raises(BuildError, match="format version 1 is not the supported 3"):
        open_shard(path)
