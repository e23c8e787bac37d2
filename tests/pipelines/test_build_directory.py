"""`--fresh` removes a gristmill build (marker present) or an empty directory, and nothing else."""

from __future__ import annotations

import json

import pytest

from gristmill.errors import BuildError
from gristmill.pipelines.build.directory import is_build, remove_build, remove_leftovers


def test_a_build_with_its_marker_is_removed(tmp_path):
    build = tmp_path / "b"
    (build / "documents").mkdir(parents=True)
    (build / "recipe.json").write_text(json.dumps({"recipe_hash": "abc", "recipe": {}}))
    assert is_build(str(build))
    remove_build(str(build))
    assert not build.exists()
    (tmp_path / "empty").mkdir()
    remove_build(str(tmp_path / "empty"))
    remove_build(str(tmp_path / "absent"))


@pytest.mark.parametrize("marker", [None, "not json", json.dumps({"recipe": {}}), json.dumps([1])])
def test_anything_else_is_refused_and_kept(tmp_path, marker):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "precious.txt").write_text("x")
    if marker is not None:
        (folder / "recipe.json").write_text(marker)
    with pytest.raises(BuildError, match=r"has no recipe\.json marker; it holds: precious\.txt"):
        remove_build(str(folder))
    assert (folder / "precious.txt").exists()


def test_a_symlink_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(BuildError, match="symlink"):
        remove_build(str(tmp_path / "link"))
    assert (tmp_path / "real").is_dir()


def test_leftovers_outside_logs_are_removed(tmp_path):
    (tmp_path / ".tokenizer.x").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".f.parquet.1.tmp").write_text("")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "datatrove.tmp").write_text("")
    (tmp_path / "a" / "kept.parquet").write_text("")
    assert remove_leftovers(str(tmp_path)) == [".tokenizer.x", "a/.f.parquet.1.tmp"]
    assert (tmp_path / "logs" / "datatrove.tmp").exists() and (tmp_path / "a" / "kept.parquet").exists()
