"""Bad input never raises: a bad record or stretch is a BadRecord naming file and place; others are kept."""

from __future__ import annotations

import json
import random
import tracemalloc

import pyarrow as pa
import pytest

from gristmill.errors import InputError
from gristmill.pipelines.readers import source_files
from gristmill.streams import Line, split_lines

CODECS = {"zst": "zstd", "gz": "gzip"}
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 123456\n"
)


def pile_records(n: int, seed: int = 0) -> list[dict]:
    """n Pile records of ~300 bytes that compress about 4x, numbered in their text."""
    rng = random.Random(seed)
    words = [f"w{rng.randrange(5000)}" for _ in range(3000)]
    return [
        {"text": f"{i} " + " ".join(rng.choices(words, k=45)), "meta": {"pile_set_name": "Pile-CC"}}
        for i in range(n)
    ]


def compress(files, ext: str, data: bytes, parts: int = 1) -> bytes:
    return files.zstd(data, parts) if ext == "zst" else files.gzip(data, parts)


@pytest.mark.parametrize("ext", CODECS)
def test_truncated_file_keeps_every_record_before_the_cut(files, ext):
    records = pile_records(3000)
    blob = compress(files, ext, files.jsonl(records))
    path = files.write(f"pile/00.jsonl.{ext}", blob[: len(blob) * 2 // 3])
    docs, bad = files.read(files.source("pile", "pile/*"), path)
    assert 0 < len(docs) < len(records)
    assert [d.text for d in docs] == [r["text"] for r in records[: len(docs)]]
    assert len(bad) == 1
    assert bad[0].path == path and bad[0].where == f"line {len(docs) + 1}"
    assert bad[0].reason.startswith(f"truncated {CODECS[ext]} stream")
    assert f"ends at compressed byte {len(blob) * 2 // 3:,}" in bad[0].reason


@pytest.mark.parametrize("ext", CODECS)
def test_corrupt_frame_mid_file_resumes_at_the_next_frame(files, ext):
    records = pile_records(2000)
    blob = bytearray(compress(files, ext, files.jsonl(records), parts=4))
    middle = len(blob) * 3 // 8  # inside the second of four frames
    blob[middle : middle + 64] = bytes(64)
    path = files.write(f"pile/00.jsonl.{ext}", bytes(blob))
    docs, bad = files.read(files.source("pile", "pile/*"), path)
    texts = {d.text for d in docs}
    assert {r["text"] for r in records[:500] + records[1000:]} <= texts  # frames 1, 3 and 4 are whole
    assert len(docs) < len(records)
    corrupt = [b for b in bad if b.reason.startswith(f"corrupt {CODECS[ext]} data")]
    assert len(corrupt) == 1 and "skipped to the next" in corrupt[0].reason


@pytest.mark.parametrize("ext", CODECS)
def test_corrupt_single_frame_file_says_the_rest_is_lost(files, ext):
    records = pile_records(2000)
    blob = bytearray(compress(files, ext, files.jsonl(records)))
    middle = len(blob) // 2
    blob[middle : middle + 64] = bytes(64)
    path = files.write(f"pile/00.jsonl.{ext}", bytes(blob))
    docs, bad = files.read(files.source("pile", "pile/*"), path)
    assert docs and [d.text for d in docs[:100]] == [r["text"] for r in records[:100]]
    assert "rest of the file is lost" in bad[-1].reason


def test_bad_lines_are_quarantined_and_their_neighbours_kept(files):
    good = {"text": "fine", "meta": {"pile_set_name": "Pile-CC"}}
    lines = [
        good,
        b'{"text": "unterminated',
        b"[1, 2]",
        {"meta": {"pile_set_name": "Pile-CC"}},
        {"text": 5, "meta": {"pile_set_name": "Pile-CC"}},
        {"text": None, "meta": {"pile_set_name": "Pile-CC"}},
        b'{"text": "caf\xe9 latin-1", "meta": {"pile_set_name": "Pile-CC"}}',
        {"text": "a\u0000b", "meta": {"pile_set_name": "Pile-CC"}},
        b'{"text": "lone \\ud800 surrogate", "meta": {"pile_set_name": "Pile-CC"}}',
        {"text": "no subset", "meta": {}},
        {"text": "meta not json", "meta": "{oops"},
        b"",
        b'{"text": "pair \\ud83d\\ude00 is fine", "meta": {"pile_set_name": "Pile-CC"}}',
        good,
    ]
    path = files.write("pile/00.jsonl.zst", files.zstd(files.jsonl(lines)))
    docs, bad = files.read(files.source("pile", "pile/*"), path)
    assert [d.text for d in docs] == ["fine", "pair 😀 is fine", "fine"]
    assert [d.id.rsplit(":", 1)[1] for d in docs] == ["1", "13", "14"]
    reasons = {int(b.where.removeprefix("line ")): b.reason for b in bad}
    assert all(b.path == path for b in bad)
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "expected a JSON object, got list"
    assert reasons[4] == "missing `text`"
    assert reasons[5] == "`text` is int, expected a string"
    assert reasons[6] == "missing `text`"
    assert reasons[7].startswith("invalid UTF-8 at byte 13")
    assert "NUL" in reasons[8]
    assert "surrogate" in reasons[9]
    assert reasons[10] == "missing `meta.pile_set_name` (the subset)"
    assert reasons[11].startswith("`meta` is a string but not JSON")
    assert set(reasons) == set(range(2, 12))
    assert bad[0].excerpt == '{"text": "unterminated'


def test_a_50_mb_document_is_quarantined_above_the_limit_and_read_below_it(files):
    big = random.Random(0).randbytes(25_000_000).hex()  # 50 MB of text that compresses only ~2x
    lines = [{"text": text, "meta": {"pile_set_name": "A"}} for text in ("before", big, "after")]
    path = files.write("pile/00.jsonl.zst", files.zstd(files.jsonl(lines), 1))
    del lines, big
    source = files.source("pile", "pile/*")

    docs, bad = files.read(source, path)  # the default limit, 32 MiB
    assert [d.text for d in docs] == ["before", "after"]
    assert len(bad) == 1 and bad[0].where == "line 2"
    assert bad[0].reason.startswith("document larger than max_document_bytes=33,554,432")

    tracemalloc.start()
    docs, bad = files.read(source, path, max_document_bytes=4 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [d.text for d in docs] == ["before", "after"] and len(bad) == 1
    assert peak < 16 << 20, f"reading a 50 MB line under a 4 MiB limit peaked at {peak / 2**20:.1f} MiB"

    docs, bad = files.read(source, path, max_document_bytes=64 << 20)
    assert not bad and len(docs[1].text) == 50_000_000


def test_line_splitting_never_buffers_past_the_limit():
    chunk = b"x" * (1 << 20)
    tracemalloc.start()
    items = list(split_lines((chunk for _ in range(200)), max_line_bytes=2 << 20))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert items == [Line(1, None, 200 << 20)]
    assert peak < 8 << 20


def test_line_splitting_across_chunk_boundaries():
    pieces = [b"ab", b"c\nde", b"f\n\n", b"g" * 5, b"h\ni"]
    assert list(split_lines(pieces, max_line_bytes=5)) == [
        Line(1, b"abc", 3),
        Line(2, b"def", 3),
        Line(3, b"", 0),
        Line(4, None, 6),
        Line(5, b"i", 1),
    ]


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("pile", "00.jsonl.zst"),
        ("dolma", "c4-0000.json.gz"),
        ("starcoder", "python/train.parquet"),
        ("jsonl", "a.jsonl"),
        ("parquet", "a.parquet"),
    ],
)
def test_empty_files_yield_nothing(files, fmt, name):
    path = files.write(f"d/{name}", b"")
    assert files.read(files.source(fmt, "d/**"), path) == ([], [])


def test_compressed_empty_content_yields_nothing(files):
    path = files.write("d/00.jsonl.zst", files.zstd(b""))
    assert files.read(files.source("pile", "d/*"), path) == ([], [])


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("slimpajama", "chunk1/example_train_0.jsonl.zst"),
        ("dolma", "c4-0000.json.gz"),
        ("starcoder", "python/train.parquet"),
    ],
)
def test_git_lfs_pointer_in_place_of_data(files, fmt, name):
    path = files.write(f"d/{name}", LFS_POINTER)
    docs, bad = files.read(files.source(fmt, "d/**"), path)
    assert docs == [] and len(bad) == 1
    assert bad[0].where == "file" and bad[0].path == path
    assert "git lfs pull" in bad[0].reason and "size 123456" in bad[0].reason


def test_compressed_name_with_plain_content(files):
    path = files.write("d/00.jsonl.zst", b'{"text": "x"}\n')
    docs, bad = files.read(files.source("pile", "d/*"), path)
    assert docs == [] and bad[0].where == "file" and "not zstd data" in bad[0].reason


def test_parquet_with_the_wrong_columns(files):
    path = files.write("sc/python/train.parquet", files.parquet(pa.table({"text": ["x"], "id": ["1"]})))
    docs, bad = files.read(files.source("starcoder", "sc/*/*.parquet"), path)
    assert docs == [] and len(bad) == 1 and bad[0].where == "file"
    assert bad[0].reason == "missing column `content`; the file has columns: text, id"


def test_parquet_text_column_of_the_wrong_type(files):
    path = files.write("sc/python/train.parquet", files.parquet(pa.table({"content": [1, 2]})))
    docs, bad = files.read(files.source("starcoder", "sc/*/*.parquet"), path)
    assert docs == [] and [(b.where, b.reason) for b in bad] == [
        ("file", "column `content` has type int64, expected string")
    ]


@pytest.mark.parametrize("damage", ["not parquet", "truncated"])
def test_corrupt_parquet_file(files, damage):
    whole = files.parquet(pa.table({"content": ["x = 1\n"] * 10}))
    data = b"this is not a parquet file at all" if damage == "not parquet" else whole[: len(whole) - 20]
    path = files.write("sc/python/train.parquet", data)
    docs, bad = files.read(files.source("starcoder", "sc/*/*.parquet"), path)
    assert docs == [] and len(bad) == 1 and bad[0].where == "file"
    assert bad[0].reason.startswith("not a readable parquet file")


def test_corrupt_parquet_row_group_loses_only_its_rows(files):
    table = pa.table({"content": [f"row {i} " + "y" * 200 for i in range(30)]})
    data = bytearray(files.parquet(table, row_group_size=10, compression="none", use_dictionary=False))
    middle = data.find(b"row 15 ")  # uncompressed plain pages: overwrite the second row group's values
    assert middle > 0
    data[middle - 300 : middle + 300] = b"\xff" * 600
    path = files.write("sc/python/train.parquet", bytes(data))
    docs, bad = files.read(files.source("starcoder", "sc/*/*.parquet"), path)
    texts = [d.text for d in docs]
    assert texts[:10] == [f"row {i} " + "y" * 200 for i in range(10)]
    assert texts[-10:] == [f"row {i} " + "y" * 200 for i in range(20, 30)]
    assert [(b.path, b.where) for b in bad] == [(path, "rows 10-19")]
    assert bad[0].reason.startswith("unreadable parquet data in row group 1")


def test_parquet_bad_rows_are_quarantined_and_neighbours_kept(files):
    offsets = pa.array([0, 4, 6, 10, 15], type=pa.int32())
    values = pa.py_buffer(b"good\xff\xfea\x00bcgood2")  # "good", invalid UTF-8, a NUL, "good2"
    content = pa.Array.from_buffers(pa.string(), 4, [None, offsets.buffers()[1], values])
    table = pa.table({"content": pa.concat_arrays([content, pa.array([None, "z" * 100], pa.string())])})
    path = files.write("sc/python/train.parquet", files.parquet(table))
    source = files.source("starcoder", "sc/*/*.parquet")
    docs, bad = files.read(source, path, max_document_bytes=50)
    assert [(d.text, d.id) for d in docs] == [
        ("good", "starcoderdata/python/train.parquet:0"),
        ("good2", "starcoderdata/python/train.parquet:3"),
    ]
    assert [(b.where, b.reason.split(" (")[0]) for b in bad] == [
        ("row 1", "invalid UTF-8 in column `content` at byte 0"),
        ("row 2", "`content` contains NUL bytes"),
        ("row 4", "missing `content`"),
        ("row 5", "document larger than max_document_bytes=50"),
    ]


def test_missing_path_names_it(files):
    source = files.source("pile", "nowhere/*.jsonl.zst")
    with pytest.raises(InputError, match="nowhere"):
        source_files(source)
    with pytest.raises(InputError, match="no such file"):
        source_files(files.source("pile", "nowhere.jsonl.zst"))


def test_a_byte_order_mark_and_crlf_line_ends_are_not_errors(files):
    path = files.write("g/a.jsonl", b'\xef\xbb\xbf{"text": "one"}\r\n{"text": "two"}\r\n')
    docs, bad = files.read(files.source("jsonl", "g/*"), path)
    assert [d.text for d in docs] == ["one", "two"] and not bad


def test_bad_records_serialise_for_the_quarantine_file(files):
    path = files.write("pile/00.jsonl", b"{oops\n")
    _, bad = files.read(files.source("jsonl", "pile/*"), path)
    assert json.loads(json.dumps(bad[0].to_dict())) == {
        "path": path,
        "where": "line 1",
        "reason": bad[0].reason,
        "excerpt": "{oops",
    }
