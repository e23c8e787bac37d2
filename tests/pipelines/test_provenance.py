"""Provenance on a tiny build (tests/pipelines/tiny.py): every segment round-trips to its input record, the
document index finds every document, verify catches sidecars and indexes that disagree with the shards, and
a takedown rewrites only the shards holding the documents, leaves every other row byte-identical, keeps a
training run resumable across it, and works the same on an object store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import BuildError
from gristmill.pipelines.origins import check_origins
from gristmill.shards.manifest import read_manifest, write_manifest
from gristmill.shards.provenance import read_parquet, removal_hash, write_parquet
from gristmill.shards.reader import open_shard
from gristmill.shards.takedown import retaken, takedown
from gristmill.shards.trace import find_document, trace_row
from gristmill.shards.verify import verify_build
from gristmill.storage import upload_tree
from gristmill.tokenizer.interface import Tokenizer
from gristmill.trainer.config import parse_train_config
from gristmill.trainer.data_steps import RunSchedule


@pytest.fixture(scope="module")
def built(tiny_sliced):
    """The tiny build, planned in slices (so stages have several index partitions): (recipe, root, corpus)."""
    recipe, layout, manifest, corpus = tiny_sliced
    assert max(len(s.document_index) for s in manifest.stages) > 1
    return recipe, Path(layout.root), corpus


def copy_of(built, tmp_path: Path, name: str = "copy") -> Path:
    """A copy of the tiny build (tests that change a build change their own)."""
    return Path(shutil.copytree(built[1], tmp_path / name))


def sidecar_lines(root: Path) -> list[dict]:
    """Every sidecar line of the build, with its stage and stage row."""
    manifest = read_manifest(str(root))
    lines = []
    for stage in manifest.stages:
        first = 0
        for entry in stage.shards:
            for line in pq.read_table(root / entry.provenance.path).to_pylist():
                lines.append(
                    line | {"stage": stage.name, "stage_row": first + line["row"], "shard": entry.path}
                )
            first += entry.rows
    return lines


def all_rows(root: Path) -> dict[tuple[str, int], tuple[bytes, list[int]]]:
    """(shard path without its takedown mark, row) → (the row's token bytes, its doc_offsets)."""
    out = {}
    for stage in read_manifest(str(root)).stages:
        for k, entry in enumerate(stage.shards):
            shard = open_shard(str(root / entry.path))
            for r in range(shard.rows):
                row = shard.row(r)
                out[(stage.name, k, r)] = (row.tokens.tobytes(), row.doc_offsets.tolist())
    return out


def test_every_segment_round_trips_to_its_input_record(built):
    recipe, root, _ = built
    report = check_origins(str(root), recipe)
    segments = sum(
        pq.read_metadata(root / e.provenance.path).num_rows
        for s in read_manifest(str(root)).stages
        for e in s.shards
    )
    assert report.ok, report.problems
    assert report.segments == report.matched == segments > 1000


def test_the_index_finds_every_segment_of_a_document(built):
    _, root, _ = built
    manifest = read_manifest(str(root))
    lines = sidecar_lines(root)
    by_id: dict[str, set] = {}
    for line in lines:
        by_id.setdefault(line["id"], set()).add(
            (line["stage"], line["stage_row"], line["start"], line["length"])
        )
    split = [i for i, places in by_id.items() if len(places) > 2]
    chosen = sorted(by_id)[::25] + split[:3]  # a spread of ids, and documents split over several rows
    for doc_id in chosen:
        found = {
            (p.stage, p.stage_row, p.start, p.length) for p in find_document(str(root), manifest, doc_id)
        }
        assert found == by_id[doc_id], doc_id
    assert find_document(str(root), manifest, "no/such:document") == []


def test_trace_shows_a_rows_documents_as_its_sidecar_names_them(built):
    _, root, _ = built
    manifest = read_manifest(str(root))
    tokenizer = Tokenizer.load(root / "tokenizer")
    row = trace_row(str(root), manifest, "long", 5)
    lines = [line for line in sidecar_lines(root) if line["stage"] == "long" and line["stage_row"] == 5]
    assert [s.id for s in row.segments] == [line["id"] for line in lines] and row.segments
    assert sum(s.length for s in row.segments) == row.segments[-1].offset + row.segments[-1].length
    result = CliRunner().invoke(cli, ["shards", "trace", str(root), "--stage", "2", "--row", "5", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["segments"][0]["text"] == tokenizer.decode(row.segments[0].tokens)
    assert shown["segments"][0]["file"] == lines[0]["file"] and shown["source"] == lines[0]["source"]
    result = CliRunner().invoke(cli, ["shards", "trace", str(root), "--stage", "long", "--row", "5"])
    assert result.exit_code == 0 and f"id {row.segments[0].id}" in result.output
    result = CliRunner().invoke(cli, ["shards", "trace", str(root), "--stage", "long"])
    assert result.exit_code == 2 and "either --stage and --row" in result.output


def rewrite(root: Path, path: str, table) -> None:
    """Replace a provenance file and fix its manifest entry, so only the check of its content can fail."""
    written = write_parquet(str(root / path), table, 1000)
    manifest = read_manifest(str(root))
    for stage in manifest.stages:
        for entry in [*(s.provenance for s in stage.shards), *stage.document_index]:
            if entry.path == path:
                entry.bytes, entry.xxh3 = written.bytes, written.xxh3
    write_manifest(str(root), manifest)


def test_verify_finds_provenance_that_disagrees_with_the_rows(built, tmp_path):
    root = copy_of(built, tmp_path)
    assert verify_build(str(root)).ok
    manifest = read_manifest(str(root))
    sidecar = manifest.stages[1].shards[0].provenance.path
    lines = read_parquet(str(root / sidecar))
    lengths = lines.column("length").to_numpy().copy()
    lengths[3] += 1
    rewrite(root, sidecar, lines.set_column(7, lines.schema.field("length"), pa.array(lengths, pa.int32())))
    report = verify_build(str(root))
    assert any("line 3" in p and "tokens" in p for s in report.shards for p in s.problems), report.to_dict()

    root = copy_of(built, tmp_path, "index")
    index = read_manifest(str(root)).stages[0].document_index[1].path
    rewrite(root, index, read_parquet(str(root / index)).slice(1))
    report = verify_build(str(root))
    assert any("document index holds" in p for p in report.problems), report.problems

    root = copy_of(built, tmp_path, "checksum")
    (root / sidecar).write_bytes((root / sidecar).read_bytes()[:-10])
    assert any("provenance: size" in p for s in verify_build(str(root)).shards for p in s.problems)


def removable(built) -> list[str]:
    """Ids of three documents, one per stage: a short `web` paragraph, a `books` page split over rows whose
    start and end no other document holds (web and hq paragraphs are parts of the pages), and a repeated `hq`
    paragraph."""
    _, root, corpus = built
    everything = "\x00".join(t for files in corpus.values() for f in files for t in f)
    chosen = []
    for stage, split in (("short", False), ("long", True), ("hq", False)):
        for line in sidecar_lines(root):
            text = _text_of(corpus, line)
            unique = not split or all(everything.count(t) == 1 for t in (text[:60], text[-60:]))
            is_split = line["doc_length"] > line["length"]
            if line["stage"] == stage and is_split == split and unique and line["id"] not in chosen:
                chosen.append(line["id"])
                break
    assert len(chosen) == 3
    return chosen


def _text_of(corpus: dict, line: dict) -> str:
    task = int(line["file"].removeprefix("part-").removesuffix(".jsonl"))
    return corpus[line["source"]][task][line["record"] - 1]


def test_takedown_rewrites_only_the_shards_holding_the_documents(built, tmp_path):
    root = copy_of(built, tmp_path)
    before, rows_before = read_manifest(str(root)), all_rows(root)
    lines = sidecar_lines(root)
    ids = removable(built)
    gone_rows = {(line["stage"], line["shard"], line["row"]) for line in lines if line["id"] in ids}
    dry = takedown(str(root), [*ids, "not/in:build"], dry_run=True)
    assert read_manifest(str(root)) == before and dry.documents == 3 and dry.missing == 1

    report = takedown(str(root), [*ids, "not/in:build"])
    after = read_manifest(str(root))
    assert verify_build(str(root)).ok
    assert after.walk_hash() == before.walk_hash() and after.content_hash != before.content_hash
    assert report.documents == 3 and report.rows == len(gone_rows)
    [removal] = after.removals
    assert removal.ids == 3 and sorted(removal.id_sha256) == sorted(removal_hash(i) for i in ids)
    assert not any(i in json.dumps(after.model_dump(mode="json")) for i in ids)  # never in the clear
    assert sum(c.removed for s in after.accounting.values() for c in s.values()) == 3
    assert all(c.balanced() for s in after.accounting.values() for c in s.values())

    touched = {shard for _, shard, _ in gone_rows}
    for old, new in zip(before.stages, after.stages):
        assert old.rows == new.rows and old.trained_rows == new.trained_rows
        for a, b in zip(old.shards, new.shards):
            if a.path in touched:
                assert b.path.endswith(".t1.arrow") and not (root / a.path).exists()
            else:
                assert b == a  # untouched: the same file, the same entry
    rows_after = all_rows(root)
    assert rows_after.keys() == rows_before.keys()
    shard_paths = {(s.name, k): e.path for s in before.stages for k, e in enumerate(s.shards)}
    for key, (tokens, offsets) in rows_before.items():
        stage, k, r = key
        if (stage, shard_paths[(stage, k)], r) not in gone_rows:
            assert rows_after[key] == (tokens, offsets), key  # byte-identical
        else:
            assert rows_after[key][1][-1] < offsets[-1]  # shorter: the document's segments left it

    # every token left in a row is a token of the document its sidecar names, and none names a removed one
    assert check_origins(str(root), built[0]).ok
    assert not {line["id"] for line in sidecar_lines(root)} & set(ids)
    assert all(find_document(str(root), after, i) == [] for i in ids)
    tokenizer = Tokenizer.load(root / "tokenizer")
    page = _text_of(built[2], next(line for line in lines if line["id"] == ids[1]))  # its text is its own
    for stage in after.stages:
        for entry in stage.shards:
            shard = open_shard(str(root / entry.path))
            for r in range(shard.rows):
                decoded = tokenizer.decode(shard.row(r).tokens[: shard.row(r).used])
                assert page[:60] not in decoded and page[-60:] not in decoded

    # a second takedown gets its own names, and leftovers of a killed one are deleted first
    stray = root / retaken(after.stages[0].shards[0].path, 9)
    stray.write_bytes(b"left by a killed takedown")
    one_more = next(line["id"] for line in sidecar_lines(root) if line["stage"] == "short")
    takedown(str(root), [one_more])
    assert not stray.exists() and verify_build(str(root)).ok
    assert len(read_manifest(str(root)).removals) == 2
    assert any(".t2." in e.path for s in read_manifest(str(root)).stages for e in s.shards)


def test_takedown_refuses_a_damaged_shard_and_changes_nothing(built, tmp_path):
    root = copy_of(built, tmp_path)
    ids = removable(built)
    entry = find_document(str(root), read_manifest(str(root)), ids[0])[0]
    data = bytearray((root / entry.shard).read_bytes())
    data[-100] ^= 1
    (root / entry.shard).write_bytes(bytes(data))
    before = (root / "manifest.json").read_bytes()
    with pytest.raises(BuildError, match="restore the file"):
        takedown(str(root), ids)
    assert (root / "manifest.json").read_bytes() == before


def test_cli_trace_a_step_find_and_takedown(built, tmp_path):
    root = copy_of(built, tmp_path)
    ids = removable(built)
    runner = CliRunner()
    config = tmp_path / "run.yaml"
    whole_stage = run_config(root, tmp_path / "out", stages=[{"name": "long", "tokens_per_step": 1024}])
    config.write_text(json.dumps(whole_stage.model_dump(mode="json")))
    result = runner.invoke(
        cli, ["shards", "find", str(root), "--doc", ids[1], "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    places = json.loads(result.output)
    assert len(places) > 1  # a split document: several rows
    read = next(p for p in places if p["steps"])  # … some read by the run: check that step's rows hold it
    step = read["steps"][0]
    result = runner.invoke(
        cli, ["shards", "trace", str(root), "--step", str(step["step"]), "--config", str(config), "--json"]
    )
    assert result.exit_code == 0, result.output
    batches = json.loads(result.output)["micro_batches"]
    assert read["stage_row"] in batches[step["micro_batch"]]["rows"]
    result = runner.invoke(cli, ["shards", "trace", str(root), "--step", "1", "--config", str(config)])
    assert result.exit_code == 0 and "micro-batch 1, rank 0: rows" in result.output
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n\n")
    result = runner.invoke(cli, ["shards", "takedown", str(root), "--ids", str(tmp_path / "ids.txt")])
    assert result.exit_code == 0 and "3 of 3 ids found; took out 3 documents" in result.output, result.output
    result = runner.invoke(cli, ["shards", "find", str(root), "--doc", ids[1]])
    assert result.exit_code == 1 and "no row" in result.output
    result = runner.invoke(cli, ["shards", "verify", str(root)])
    assert result.exit_code == 0, result.output


def run_config(root: Path, out: Path, **overrides):
    """A CPU run on the tiny build: 6 steps of `short`, then 8 of `long` (a resume crosses the stages)."""
    return parse_train_config(
        {
            "build": str(root),
            "model": "llama-tiny",
            "output_dir": str(out),
            "micro_batch_tokens": 512,
            "stages": [
                {"name": "short", "tokens_per_step": 1024, "tokens": 6 * 1024},
                {"name": "long", "tokens_per_step": 1024, "tokens": 8 * 1024},
            ],
            "optimizer": {"lr": 3e-3},
            "deterministic": True,
            "checkpoint": {"every_steps": 4, "keep_last": 2},
            **overrides,
        }
    )


@pytest.fixture
def one_thread():
    """Tiny matmuls run fastest on one thread, and 2 threads on a shared 2-core box thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_a_run_stopped_before_a_takedown_resumes_after_it(built, tmp_path, one_thread):
    from gristmill.trainer.train import train

    quiet = {"console": lambda line: None}
    whole_root, cut_root = copy_of(built, tmp_path, "whole"), copy_of(built, tmp_path, "cut")
    whole = train(run_config(whole_root, tmp_path / "whole-run"), **quiet)
    first = train(run_config(cut_root, tmp_path / "cut-run"), stop_at_step=6, **quiet)  # checkpoint at 4
    assert [first.losses[s] for s in range(1, 7)] == [whole.losses[s] for s in range(1, 7)]

    # take down a document the run reads first at step 9 or later, and ones it reads at no step after 4
    manifest = read_manifest(str(cut_root))
    schedule = RunSchedule.of(run_config(cut_root, tmp_path / "cut-run"), manifest)
    lines = sidecar_lines(cut_root)
    later, elsewhere = None, []
    for line in lines:
        steps = [r.step for r in schedule.row_steps(line["stage"], [line["stage_row"]])]
        if later is None and line["stage"] == "long" and steps and min(steps) >= 9:
            later = line
        if len(elsewhere) < 2 and line["stage"] in ("short", "hq") and not [s for s in steps if s > 4]:
            elsewhere.append(line["id"])
    ids = [later["id"], *elsewhere]
    takedown(str(cut_root), ids)
    assert verify_build(str(cut_root)).ok

    second = train(run_config(cut_root, tmp_path / "cut-run"), **quiet)
    assert second.resumed_from == 4 and sorted(second.losses) == list(range(5, 15))
    affected = min(
        r.step
        for line in lines
        if line["id"] in ids
        for r in schedule.row_steps(line["stage"], [line["stage_row"]])
        if r.step > 4
    )
    assert affected >= 9
    for step in range(5, affected):  # the same rows, the same bytes: bitwise the same losses
        assert second.losses[step] == whole.losses[step], step
    assert second.losses[affected] != whole.losses[affected]  # that step's row lost a document


@pytest.fixture(scope="module")
def on_s3(built, s3_prefix):
    """The tiny build uploaded to the moto S3 server."""
    build = f"{s3_prefix}/tiny"
    upload_tree(str(built[1]), build)
    return build


def test_trace_find_takedown_and_verify_on_an_object_store(built, on_s3):
    manifest = read_manifest(on_s3)
    ids = removable(built)
    local = read_manifest(str(built[1]))
    assert find_document(on_s3, manifest, ids[1]) == find_document(str(built[1]), local, ids[1])
    remote_row, local_row = trace_row(on_s3, manifest, "long", 7), trace_row(str(built[1]), local, "long", 7)
    assert [s.id for s in remote_row.segments] == [s.id for s in local_row.segments]
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(remote_row.segments, local_row.segments))

    report = takedown(on_s3, ids)
    assert report.documents == 3 and report.content_hash == read_manifest(on_s3).content_hash
    assert verify_build(on_s3).ok
    assert all(find_document(on_s3, read_manifest(on_s3), i) == [] for i in ids)
