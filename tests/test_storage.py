"""Storage helpers: atomic writes appear whole with the usual permissions, or not at all."""

from __future__ import annotations

import os

import pytest

from gristmill.errors import InputError
from gristmill.storage import atomic_write, current_umask, expand, read_json, write_json


def test_atomic_write_appears_whole_with_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "out.json"
    write_json(str(path), {"b": 1, "a": [1, 2]})
    assert read_json(str(path)) == {"a": [1, 2], "b": 1}
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert os.listdir(path.parent) == ["out.json"]  # no temporary file left beside it


def test_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(str(path), "w") as f:
        f.write("new, half written")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_expand_and_read_json_name_the_file(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    assert expand(str(tmp_path / "*.jsonl")) == [str(tmp_path / "a.jsonl")]
    with pytest.raises(InputError, match=r"missing/\*\.jsonl: the pattern matches no files"):
        expand(str(tmp_path / "missing" / "*.jsonl"))
    with pytest.raises(InputError, match="no such file or directory"):
        expand(str(tmp_path / "missing.jsonl"))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputError, match=r"bad\.json:line 1: invalid JSON"):
        read_json(str(tmp_path / "bad.json"))


def test_an_existing_path_with_glob_characters_is_that_path(tmp_path):
    folder = tmp_path / "[old] copy (1)"
    folder.mkdir()
    (folder / "val.jsonl.zst").write_bytes(b"x")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "val.jsonl.zst").write_bytes(b"y")  # what `[old]` matches as a glob character class
    assert expand(str(folder / "val.jsonl.zst")) == [str(folder / "val.jsonl.zst")]
    assert expand(str(folder)) == [str(folder / "val.jsonl.zst")]
    assert expand(str(tmp_path / "[[]old] copy (1)" / "*.zst")) == [str(folder / "val.jsonl.zst")]
