"""The sample corpus: same seed, same bytes; readable in every layout; holds what PLANTED.json lists."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.pipelines.config.filters import FiltersConfig
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.readers import BadRecord, reader_for, source_files
from gristmill.pipelines.recipe import SourceConfig
from gristmill.sample.corpus import SOURCES, demo_profile, jaccard, write_sample

FORMATS = {"slimpajama": "slimpajama", "starcoderdata": "starcoder", "dolma": "dolma", "pile": "pile"}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def documents(sample_corpus):
    """Every document of the sample corpus read back through the readers, by id (a list: Dolma ids repeat)."""
    found: dict[str, list] = {}
    for name, fmt in FORMATS.items():
        source = SourceConfig(name=name, format=fmt, paths=[str(sample_corpus / name)])
        reader = reader_for(source)
        for path in source_files(source):
            for item in reader.iter_file(path):
                assert not isinstance(item, BadRecord), item
                found.setdefault(item.id, []).append(item)
    return found


@pytest.fixture(scope="module")
def planted(sample_corpus):
    return json.loads((sample_corpus / "PLANTED.json").read_text())


def the(documents, ref):
    [doc] = documents[ref["id"]]
    assert (doc.metadata["source"], doc.metadata["subset"]) == (ref["source"], ref["subset"])
    return doc


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = write_sample(str(tmp_path / "a"), seed=3)
    second = write_sample(str(tmp_path / "b"), seed=3)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    first.pop("out_dir"), second.pop("out_dir")
    assert first == second
    write_sample(str(tmp_path / "c"), seed=4)
    other = tree(tmp_path / "c")
    assert other.keys() == tree(tmp_path / "a").keys() and other != tree(tmp_path / "a")


def test_layout_and_size(sample_corpus):
    files = tree(sample_corpus)
    total = sum(map(len, files.values()))
    assert 1 << 20 <= total <= 6 << 20
    names = set(files)
    assert {
        "slimpajama/train/chunk1/example_train_0.jsonl.zst",
        "pile/train/00.jsonl.zst",
        "PLANTED.json",
        "dolma/wiki-0000.json.gz",
        "starcoderdata/python/train-00000-of-00002.parquet",
    } <= names
    assert {n.split("/")[1] for n in names if n.startswith("starcoderdata/")} >= {"python", "shell", "json"}


def test_every_record_reads_with_its_source_and_subsets(documents):
    everything = [d for docs in documents.values() for d in docs]
    subsets = Counter((d.metadata["source"], d.metadata["subset"]) for d in everything)
    assert {s for s, _ in subsets} == set(SOURCES)
    for needed in [
        ("slimpajama", "RedPajamaGithub"),
        ("slimpajama", "RedPajamaWikipedia"),
        ("slimpajama", "RedPajamaCommonCrawl"),
        ("slimpajama", "RedPajamaBook"),
        ("dolma", "wiki"),
        ("dolma", "gutenberg"),
        ("pile", "Pile-CC"),
        ("pile", "Github"),
        ("starcoderdata", "python"),
    ]:
        assert subsets[needed] > 0, needed
    code = [d for d in everything if d.metadata["source"] == "starcoderdata"]
    assert not any(d.text.startswith("<reponame>") for d in code)  # headers are written on some and stripped


def test_starcoder_rows_have_headers_and_slimpajama_has_string_meta(sample_corpus):
    import pyarrow.parquet as pq
    import zstandard

    table = pq.read_table(sample_corpus / "starcoderdata/python/train-00000-of-00002.parquet")
    content = table.column("content")
    with_header = sum(text.as_py().startswith("<reponame>") for text in content)
    assert 0 < with_header < len(content)
    raw = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress((sample_corpus / "slimpajama/train/chunk1/example_train_0.jsonl.zst").read_bytes())
    )
    metas = [type(json.loads(line)["meta"]) for line in raw.splitlines()]
    assert str in metas and dict in metas


def test_planted_exact_duplicates_are_identical(documents, planted):
    groups = planted["exact_duplicates"]
    assert {g["kind"] for g in groups} == {"within-source", "cross-source"}
    sources = [{c["source"] for c in g["copies"]} for g in groups]
    assert any(len(s) > 1 and "starcoderdata" in s for s in sources)  # code copied into a web corpus
    for group in groups:
        texts = {the(documents, ref).text for ref in group["copies"]}
        assert len(texts) == 1 and len(group["copies"]) == 2


def test_planted_near_duplicates_are_close_but_not_equal(documents, planted):
    pairs = planted["near_duplicates"]
    assert len(pairs) >= 4
    assert any(p["copies"][0]["source"] == "starcoderdata" for p in pairs)
    for pair in pairs:
        a, b = (the(documents, ref).text for ref in pair["copies"])
        assert a != b
        assert 0.85 <= jaccard(a, b, 5) <= 0.95
        assert jaccard(a, b, 5) == pytest.approx(pair["jaccard_word_5grams"], abs=1e-3)


def test_planted_junk_and_long_documents(documents, planted):
    kinds = {j["kind"] for j in planted["low_quality"]}
    assert {
        "very-short",
        "repeated-lines",
        "lorem-ipsum",
        "word-salad",
        "javascript-notice",
        "auto-generated",
        "minified",
        "data-file",
    } <= kinds
    for junk in planted["low_quality"]:
        the(documents, junk)
    minified = next(j for j in planted["low_quality"] if j["kind"] == "minified")
    assert max(len(line) for line in the(documents, minified).text.splitlines()) > 1000
    long = planted["long_documents"]
    assert {d["source"] for d in long} == set(SOURCES)
    for ref in long:
        assert 20_000 <= len(the(documents, ref).text) == ref["chars"] <= 60_000


def first_reason(ref: dict, text: str) -> str | None:
    """The first reason the default filters of the subset's profile (as recipes/demo.yaml resolves it) give
    `text`."""
    profile = demo_profile(ref["source"], ref["subset"])
    reasons = (rules.check_batch([text])[0] for rules in make_filters(FiltersConfig(), profile))
    return next((r for r in reasons if r is not None), None)


def test_everything_planted_but_junk_passes_the_default_filters(documents, planted):
    groups = planted["exact_duplicates"] + planted["near_duplicates"]
    refs = [ref for group in groups for ref in group["copies"]]
    refs += [
        ref
        for ref in planted["long_documents"]
        if all(ref["id"] != junk["id"] for junk in planted["low_quality"])
    ]
    assert {ref["source"] for ref in refs} == set(SOURCES)
    for ref in refs:
        assert first_reason(ref, the(documents, ref).text) is None, ref
    for group in planted["shared_dolma_ids"]:  # both records under the one id
        for ref in group["copies"]:
            assert [first_reason(ref, doc.text) for doc in documents[ref["id"]]] == [None, None], ref
    for junk in planted["low_quality"]:
        assert first_reason(junk, the(documents, junk).text) is not None, junk["kind"]


def test_most_documents_pass_the_default_filters_of_their_profile(documents):
    passed: Counter = Counter()
    total: Counter = Counter()
    for doc in (d for docs in documents.values() for d in docs):
        key = doc.metadata["source"], demo_profile(doc.metadata["source"], doc.metadata["subset"])
        total[key] += 1
        passed[key] += first_reason(doc.metadata, doc.text) is None
    # the code inside the text corpora is judged as code (Pile `Github`, Dolma `stack`, RedPajamaGithub)
    assert {
        ("pile", "code"),
        ("dolma", "code"),
        ("slimpajama", "code"),
        ("slimpajama", "curated"),
        ("pile", "web"),
        ("dolma", "curated"),
        ("starcoderdata", "code"),
    } <= set(total)
    for key, count in total.items():
        assert passed[key] >= 0.8 * count, (key, passed[key], count)


def test_dolma_shares_an_id_between_two_records(documents, planted):
    [shared] = planted["shared_dolma_ids"]
    assert shared["copies"][0]["id"] == shared["copies"][1]["id"]
    docs = documents[shared["copies"][0]["id"]]
    assert len(docs) == 2 and docs[0].text != docs[1].text


def test_cli_writes_refuses_a_non_empty_directory_and_replaces_with_force(tmp_path):
    runner = CliRunner()
    out = tmp_path / "corpus"
    result = runner.invoke(cli, ["sample", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "starcoderdata" in result.output and "planted" in result.output
    before = tree(out)

    refused = runner.invoke(cli, ["sample", str(out)])
    assert refused.exit_code == 1 and "not empty" in refused.output and "--force" in refused.output

    forced = runner.invoke(cli, ["sample", str(out), "--seed", "1", "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.output)["seed"] == 1
    assert tree(out) == before


def test_the_ablation_sample_keeps_its_evaluation_text_out_of_its_junk_heavy_corpus(tmp_path):
    import zstandard

    from gristmill.ablate.contamination import NgramIndex

    result = CliRunner().invoke(cli, ["sample", str(tmp_path), "--kind", "ablation", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    corpus = [
        json.loads(line)["text"]
        for part in sorted((tmp_path / "corpus").glob("part-*.jsonl.zst"))
        for line in zstandard.ZstdDecompressor()
        .decompress(part.read_bytes(), max_output_size=1 << 30)
        .splitlines()
    ]
    evaluation = [
        json.loads(line)["text"] for line in (tmp_path / "eval" / "clean.jsonl").read_text().splitlines()
    ]
    assert len(corpus) == sum(k["documents"] for k in summary["corpus"].values())
    assert len(evaluation) == summary["eval"]["documents"] >= 50
    index = NgramIndex(evaluation, 13)
    assert not set().union(*(index.matches(d) for d in corpus))  # by construction, and checked
    sizes = {kind: k["bytes"] for kind, k in summary["corpus"].items()}
    assert (
        sizes["junk"] + sizes["exact copies"] + sizes["near copies"] >= 0.8 * sizes["clean"]
    )  # a large share
    rules = make_filters(FiltersConfig(), "curated")
    assert all(r is None for rule_set in rules for r in rule_set.check_batch(evaluation[:20]))
