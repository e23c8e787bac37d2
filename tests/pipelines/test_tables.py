"""The dedupe's partitioned files: one record batch per partition, each read alone, locally and remotely."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from gristmill.pipelines.tables import (
    read_partition,
    read_partitions,
    write_partitioned,
    write_table,
)
from gristmill.storage import filesystem


def _table(n: int) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(n)
    src = rng.integers(0, 1 << 40, n, dtype=np.uint64)
    return pa.table({"src": src, "dst": src + np.uint64(1)}), (src % np.uint64(5)).astype(np.int64)


def _expected(table: pa.Table, partition: np.ndarray, p: int) -> list[int]:
    return np.asarray(table.column("src"))[partition == p].tolist()  # stable: in written order


def test_each_partition_is_its_own_batch_and_reads_back(tmp_path, s3_prefix):
    table, partition = _table(1000)
    partition[partition == 3] = 0  # partition 3 is empty
    for path in (str(tmp_path / "edges.arrow"), f"{s3_prefix}/edges.arrow"):
        write_partitioned(path, table, partition, 5)
        fs, inner = filesystem(path)
        with fs.open(inner, "rb") as f:
            assert pa.ipc.open_file(f).num_record_batches == 5  # a reader of p fetches only its batch
        for p in range(5):
            got = read_partition(path, p)
            assert got.column("src").to_pylist() == _expected(table, partition, p)
            assert got.schema.metadata is None
        both = read_partitions([path, path], 1, table.schema)
        assert both.num_rows == 2 * int((partition == 1).sum())


def test_a_single_batch_file_of_an_earlier_gristmill_is_sliced(tmp_path):
    table, partition = _table(300)
    order = np.argsort(partition, kind="stable")
    offsets = np.r_[0, np.cumsum(np.bincount(partition, minlength=5))].tolist()
    path = str(tmp_path / "old.arrow")
    write_table(
        path,
        table.take(pa.array(order)).replace_schema_metadata(
            {b"gristmill.partition_offsets": json.dumps(offsets)}
        ),
    )
    for p in range(5):
        assert read_partition(path, p).column("src").to_pylist() == _expected(table, partition, p)
