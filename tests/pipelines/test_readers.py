"""Each reader on files in its corpus's real layout: documents, subsets, ids, metadata, header stripping."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pytest

from gristmill.errors import InputError
from gristmill.pipelines.readers import reader_for, source_files
from gristmill.pipelines.readers.starcoder import strip_header
from gristmill.pipelines.recipe import FieldMapping


def slimpajama_tree(files, root: str = "sp") -> None:
    files.write(
        f"{root}/train/chunk1/example_train_0.jsonl.zst",
        files.zstd(
            files.jsonl(
                [
                    {"text": "Wiki text.", "meta": {"redpajama_set_name": "RedPajamaWikipedia"}},
                    {"text": "Web text.", "meta": json.dumps({"redpajama_set_name": "RedPajamaCommonCrawl"})},
                ]
            )
        ),
    )
    files.write(
        f"{root}/train/chunk2/example_train_0.jsonl.zst",
        files.zstd(
            files.jsonl(
                [
                    {"text": "def f(): pass", "meta": {"redpajama_set_name": "RedPajamaGithub"}},
                ]
            )
        ),
    )


def read_source(files, source) -> list:
    docs = []
    for path in source_files(source):
        found, bad = files.read(source, path)
        assert not bad, bad
        docs.extend(found)
    return docs


def test_slimpajama_subsets_ids_and_meta_given_as_a_json_string(files):
    slimpajama_tree(files)
    source = files.source("slimpajama", "sp/**/*.jsonl.zst")
    docs = read_source(files, source)
    assert [(d.text, d.metadata["subset"]) for d in docs] == [
        ("Wiki text.", "RedPajamaWikipedia"),
        ("Web text.", "RedPajamaCommonCrawl"),
        ("def f(): pass", "RedPajamaGithub"),
    ]
    assert [d.id for d in docs] == [
        "slimpajama/train/chunk1/example_train_0.jsonl.zst:1",
        "slimpajama/train/chunk1/example_train_0.jsonl.zst:2",
        "slimpajama/train/chunk2/example_train_0.jsonl.zst:1",
    ]
    assert all(d.metadata["source"] == "slimpajama" for d in docs)
    assert docs[1].metadata["meta"] == {"redpajama_set_name": "RedPajamaCommonCrawl"}


def test_ids_are_stable_across_reads_moves_and_working_directories(files, tmp_path, monkeypatch):
    slimpajama_tree(files)
    first = [d.id for d in read_source(files, files.source("slimpajama", "sp/**/*.jsonl.zst"))]
    assert first == [d.id for d in read_source(files, files.source("slimpajama", "sp/**/*.jsonl.zst"))]

    shutil.copytree(tmp_path / "sp", tmp_path / "elsewhere" / "deeper" / "copy")
    moved = files.source("slimpajama", "elsewhere/deeper/copy/*/chunk*/*.zst")
    assert [d.id for d in read_source(files, moved)] == first

    monkeypatch.chdir(tmp_path / "elsewhere")
    relative = moved.model_copy(update={"paths": ["deeper/copy"]})  # a folder, relative to the cwd
    assert [d.id for d in read_source(files, relative)] == first


def test_pile_subset_from_pile_set_name(files):
    path = files.write(
        "pile/train/00.jsonl.zst",
        files.zstd(
            files.jsonl(
                [
                    {"text": "A paper.", "meta": {"pile_set_name": "ArXiv"}},
                    {"text": "A page.", "meta": {"pile_set_name": "Pile-CC"}},
                ]
            )
        ),
    )
    docs, bad = files.read(files.source("pile", "pile/**/*.jsonl.zst"), path)
    assert not bad
    assert [(d.id, d.metadata["subset"]) for d in docs] == [
        ("pile/train/00.jsonl.zst:1", "ArXiv"),
        ("pile/train/00.jsonl.zst:2", "Pile-CC"),
    ]


def test_dolma_ids_subsets_and_dates(files):
    path = files.write(
        "dolma/c4-0000.json.gz",
        files.gzip(
            files.jsonl(
                [
                    {
                        "id": "abc",
                        "text": "Hello.",
                        "source": "c4",
                        "added": "2023-08-01",
                        "created": "2019-04-01",
                        "metadata": {"url": "http://x"},
                    },
                    {"text": "No id.", "source": "wiki"},
                ]
            )
        ),
    )
    docs, bad = files.read(files.source("dolma", "dolma/*.json.gz"), path)
    assert not bad
    assert docs[0].id == "dolma/c4/abc"
    assert docs[0].metadata == {
        "source": "dolma",
        "subset": "c4",
        "added": "2023-08-01",
        "created": "2019-04-01",
        "meta": {"url": "http://x"},
        "file": "c4-0000.json.gz",
        "record": 1,
    }
    assert (docs[1].id, docs[1].metadata["subset"]) == ("dolma/c4-0000.json.gz:2", "wiki")


def test_starcoder_languages_headers_and_repository_metadata(files):
    for language, rows in {"python": 3, "c": 1}.items():
        table = pa.table(
            {
                "max_stars_repo_path": [f"src/f{i}.x" for i in range(rows)],
                "max_stars_repo_name": ["owner/repo"] * rows,
                "max_stars_count": list(range(rows)),
                "id": [f"{language}-{i}" for i in range(rows)],
                "content": [
                    f"<reponame>owner/repo<filename>src/f{i}.x<gh_stars>10-100\ncode {i}\n"
                    for i in range(rows)
                ],
            }
        )
        files.write(f"sc/{language}/train-00000-of-00001.parquet", files.parquet(table, row_group_size=2))
    source = files.source("starcoder", "sc/**/*.parquet")
    docs = read_source(files, source)
    assert [d.metadata["subset"] for d in docs] == ["c", "python", "python", "python"]
    assert [d.id for d in docs] == [
        "starcoderdata/c/c-0",
        "starcoderdata/python/python-0",
        "starcoderdata/python/python-1",
        "starcoderdata/python/python-2",
    ]
    assert docs[2].text == "code 1\n"
    assert docs[2].metadata == {
        "source": "starcoderdata",
        "subset": "python",
        "repo_name": "owner/repo",
        "repo_path": "src/f1.x",
        "stars": 1,
        "file": "python/train-00000-of-00001.parquet",
        "record": 1,
    }


def test_starcoder_without_id_column_derives_ids_from_rows(files):
    table = pa.table({"content": ["package a\n", "package b\n"]})
    path = files.write("sc/go/train.parquet", files.parquet(table))
    docs, bad = files.read(files.source("starcoder", "sc/*/*.parquet"), path)
    assert not bad
    assert [d.id for d in docs] == ["starcoderdata/go/train.parquet:0", "starcoderdata/go/train.parquet:1"]
    # the origin names the same file and row as the derived id
    assert [(d.metadata["file"], d.metadata["record"]) for d in docs] == [
        ("go/train.parquet", i) for i in (0, 1)
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<reponame>a/b<filename>x/y.py<gh_stars>1-10\nimport os\n", "import os\n"),
        ("<reponame>a/b\nimport os\n", "import os\n"),
        ("<reponame>a/b<gh_stars>0\nx = 1", "x = 1"),
        ("<filename>setup.py\nx = 1", "x = 1"),
        ("<gh_stars>100-1000\nx = 1", "x = 1"),
        ("<reponame>a/b<filename>empty.py<gh_stars>0", ""),
        ("<html>\n<body>", "<html>\n<body>"),  # not a header
        ("x = 1\n<reponame>a/b\n", "x = 1\n<reponame>a/b\n"),  # only a leading header counts
        (
            "<filename>a.py<reponame>a/b\nx",
            "<filename>a.py<reponame>a/b\nx",
        ),  # tags out of order: not a header
        ("\nx = 1", "\nx = 1"),
    ],
)
def test_strip_header(content, expected):
    assert strip_header(content) == expected


def test_generic_jsonl_with_a_nested_field_mapping(files):
    path = files.write(
        "g/data.jsonl",
        files.jsonl(
            [
                {"uid": 7, "body": {"text": "Nested."}, "meta": {"lang": "fr"}, "url": "u"},
                {"body": {"text": "No id, no subset."}},
            ]
        ),
    )
    mapping = FieldMapping(text="body.text", id="uid", subset="meta.lang")
    source = files.source("jsonl", "g/*.jsonl", fields=mapping)
    docs, bad = files.read(source, path)
    assert not bad
    assert [(d.id, d.text, d.metadata["subset"]) for d in docs] == [
        ("jsonl/7", "Nested.", "fr"),
        ("jsonl/data.jsonl:2", "No id, no subset.", "default"),
    ]
    assert docs[0].metadata["meta"] == {"uid": 7, "meta": {"lang": "fr"}, "url": "u"}


def test_generic_parquet_with_the_default_mapping(files):
    table = pa.table({"text": ["one", "two"], "score": [1.0, 2.0]})
    path = files.write("g/part-0.parquet", files.parquet(table))
    docs, bad = files.read(files.source("parquet", "g/*.parquet"), path)
    assert not bad
    assert [(d.id, d.text, d.metadata["subset"], d.metadata["meta"]) for d in docs] == [
        ("parquet/part-0.parquet:0", "one", "default", {"score": 1.0}),
        ("parquet/part-0.parquet:1", "two", "default", {"score": 2.0}),
    ]


def test_generic_jsonl_reads_compressed_files_by_their_name(files):
    records = files.jsonl([{"text": "z"}, {"text": "g"}])
    zst = files.write("g/a.jsonl.zst", files.zstd(records))
    gz = files.write("g/b.jsonl.gz", files.gzip(records))
    source = files.source("jsonl", "g/*")
    assert [d.text for p in (zst, gz) for d in files.read(source, p)[0]] == ["z", "g", "z", "g"]


def test_source_files_are_sorted_and_without_repeats(files):
    slimpajama_tree(files)
    source = files.source("slimpajama", "sp/**/*.zst")
    again = source.model_copy(update={"paths": [*source.paths, str(files.root / "sp/train/chunk1")]})
    found = source_files(again)
    assert found == sorted(found) and len(found) == len(set(found)) == 2


def test_reader_for_picks_the_format_and_the_limit(files):
    source = files.source("dolma", "x/*.json.gz")
    reader = reader_for(source, max_document_bytes=123)
    assert type(reader).__name__ == "DolmaReader" and reader.max_document_bytes == 123


def test_a_folder_gives_only_the_layouts_data_files_and_lists_the_rest(files):
    slimpajama_tree(files)
    files.write("sp/README.md", b"# SlimPajama\n")
    files.write("sp/.gitattributes", b"*.zst filter=lfs\n")
    files.write("sp/.git/objects/ab/cdef.jsonl", b"{}\n")
    files.write("sp/train/chunk1/notes.txt", b"notes\n")
    skipped: list[str] = []
    found = source_files(files.source("slimpajama", "sp"), skipped)
    assert [f.rsplit("/sp/", 1)[1] for f in found] == [
        "train/chunk1/example_train_0.jsonl.zst",
        "train/chunk2/example_train_0.jsonl.zst",
    ]
    assert sorted(f.rsplit("/sp/", 1)[1] for f in skipped) == [
        ".git/objects/ab/cdef.jsonl",
        ".gitattributes",
        "README.md",
        "train/chunk1/notes.txt",
    ]
    files.write("docs/README.md", b"# nothing to read\n")
    with pytest.raises(InputError, match="holds no slimpajama data files"):
        source_files(files.source("slimpajama", "docs"))


def test_a_byte_order_mark_on_any_line_is_stripped(files):
    bom = b"\xef\xbb\xbf"
    one = files.jsonl([{"text": "First.", "meta": {"pile_set_name": "Pile-CC"}}])
    two = files.jsonl([{"text": "Second.", "meta": {"pile_set_name": "Pile-CC"}}])
    path = files.write("pile/00.jsonl", bom + one + bom + two)  # two files, each with its BOM, concatenated
    docs, bad = files.read(files.source("pile", "pile/*.jsonl"), path)
    assert not bad and [d.text for d in docs] == ["First.", "Second."]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "dolma/wiki/abc"),
        (17, "dolma/wiki/17"),
        (None, "dolma/d.json.gz:1"),
        ("", "dolma/d.json.gz:1"),
        (True, "`id` is a boolean (true), expected a string or an integer"),
        (1.5, "`id` is a float (1.5), expected a string or an integer"),
        ([1], "`id` is a list ([1]), expected a string or an integer"),
    ],
)
def test_dolma_ids_are_strings_integers_or_none_and_anything_else_is_quarantined(files, value, expected):
    path = files.write("d.json.gz", files.gzip(files.jsonl([{"id": value, "text": "T.", "source": "wiki"}])))
    docs, bad = files.read(files.source("dolma", "*.json.gz"), path)
    assert [d.id for d in docs] + [b.reason for b in bad] == [expected]
