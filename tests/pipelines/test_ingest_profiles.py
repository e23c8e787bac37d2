"""The ingest step, in process: each subset is judged by its profile's rule sets, and the manifest's
accounting says which profile, the keep rate, the empty files, and which excluded subsets never came."""

from __future__ import annotations

import pytest

from gristmill.errors import BuildError
from gristmill.pipelines.build.accounting import collect_accounting
from gristmill.pipelines.build.engine import run_locally
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.recipe import parse_recipe
from gristmill.pipelines.steps.ingest import EMPTY_FILES, ingest_step, plan_work_units

CODE = "\n".join(
    f"def handler_{i}(request):\n    return respond(request, status={200 + i})\n" for i in range(20)
)
PROSE = (
    "The library was founded in the old town hall, and for a century it lent books to anyone who asked "
    "for them; its reading room, with the long oak tables, is still open every day of the week. "
) * 6


def pile_records(files) -> None:
    files.write(
        "pile/00.jsonl",
        files.jsonl(
            [
                {"text": CODE, "meta": {"pile_set_name": "Github"}},
                {
                    "text": CODE,
                    "meta": {"pile_set_name": "Pile-CC"},
                },  # code among web pages: web rules drop it
                {"text": PROSE, "meta": {"pile_set_name": "Books3"}},
                {"text": "Too short.", "meta": {"pile_set_name": "Books3"}},
            ]
        ),
    )
    files.write("pile/01.jsonl", b"")


def run_ingest(files, tmp_path, **source: object):
    recipe = parse_recipe(
        {
            "name": "t",
            "output": str(tmp_path / "build"),
            "sources": [{"name": "pile", "format": "pile", "paths": [str(files.root / "pile")], **source}],
        }
    )
    layout = BuildLayout(recipe.output)
    units = plan_work_units(recipe)
    run_locally([ingest_step(recipe, layout, units)], layout)
    return collect_accounting(layout, {"pile": [u.task for u in units]})["pile"]


def test_each_subset_goes_through_its_profile_and_the_manifest_says_so(files, tmp_path):
    pile_records(files)
    accounting = run_ingest(files, tmp_path)
    github, web, books = accounting["Github"], accounting["Pile-CC"], accounting["Books3"]
    assert (github.profile, github.kept, github.keep_rate, github.filtered) == ("code", 1, 1.0, {})
    assert web.profile == "web" and web.kept == 0 and sum(web.filtered.values()) == 1
    assert (books.profile, books.kept, books.keep_rate, books.filtered) == (
        "curated",
        1,
        0.5,
        {"curated:too_short": 1},
    )
    assert accounting[EMPTY_FILES].empty_files == 1 and accounting[EMPTY_FILES].records_in == 0
    assert all(c.balanced() for c in accounting.values())


def test_excluded_subsets_no_record_had_fail_after_ingest_naming_those_seen(files, tmp_path):
    pile_records(files)
    with pytest.raises(
        BuildError,
        match=r"exclude_subsets names \['Github \(code\)'\].*"
        r"subsets are \['Books3', 'Github', 'Pile-CC'\]",
    ) as err:
        run_ingest(files, tmp_path, exclude_subsets=["Github (code)"])
    assert err.value.where == "sources.0.exclude_subsets"
    accounting = run_ingest(
        files, tmp_path / "again", exclude_subsets=["Github"], profiles={"Books*": "none"}
    )
    assert accounting["Github"].profile is None and accounting["Github"].filtered == {"excluded_subset": 1}
    assert accounting["Books3"].profile == "none" and accounting["Books3"].kept == 2
