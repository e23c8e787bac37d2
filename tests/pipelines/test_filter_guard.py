"""The per-document time guard: a document a rule set stalls on is quarantined with the reason
"<rule set>:time_limit", the others are judged as usual, in this process and in a Ray task (whose function
runs in the worker's main thread, where the alarm can interrupt a regular expression mid-match), and the
build's accounting stays balanced with the document counted as quarantined."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading

import pytest
from pydantic import ValidationError

from gristmill.pipelines.build.accounting import collect_accounting
from gristmill.pipelines.build.engine import Step, run_locally, run_step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.config.filters import FiltersConfig
from gristmill.pipelines.filters.base import DocumentFilter
from gristmill.pipelines.filters.datatrove import RuleSetFilter
from gristmill.pipelines.filters.guard import Quarantined, TimeGuard
from gristmill.pipelines.filters.text_stats import pattern_words
from gristmill.pipelines.recipe import parse_recipe
from gristmill.pipelines.steps.ingest import ingest_chain, plan_work_units

STALL = "STALL"


def stall() -> None:
    """Run the word pattern's definition where it backtracks for hours (issue 22's run of commas)."""
    pattern_words("a" + "," * 300_000 + "x")


class StallOn(DocumentFilter):
    """`inner`'s verdicts, after stalling on any text that holds "STALL" (or judging short texts itself)."""

    def __init__(self, inner: DocumentFilter | None = None) -> None:
        self.inner = inner
        self.name = inner.name if inner is not None else "stall"

    def check_batch(self, texts, paths=None):
        for text in texts:
            if STALL in text:
                stall()
        if self.inner is not None:
            return self.inner.check_batch(texts, paths)
        return [self.reason("short") if len(t) < 10 else None for t in texts]


class SpinSwallowingErrors(DocumentFilter):
    """Loops forever in pure Python on "SPIN", catching every Exception on the way."""

    name = "spin"

    def check_batch(self, texts, paths=None):
        for text in texts:
            while "SPIN" in text:
                with contextlib.suppress(Exception):
                    sum(range(1000))
        return [None] * len(texts)


def test_a_document_over_the_limit_is_quarantined_and_the_others_judged():
    guard = TimeGuard(StallOn(), max_seconds=0.3)
    verdicts = guard.check_batch(["a fine document", "tiny", f"{STALL} here", "another fine one"])
    assert verdicts == [None, "stall:short", "stall:time_limit", None]
    assert isinstance(verdicts[2], Quarantined) and not isinstance(verdicts[1], Quarantined)
    assert guard.check_batch([STALL]) == ["stall:time_limit"]  # a batch of one is not judged twice


def test_the_guard_stops_a_pure_python_loop_that_swallows_exceptions():
    assert TimeGuard(SpinSwallowingErrors(), 0.2).check_batch(["ok", "SPIN"]) == [None, "spin:time_limit"]


def test_the_guard_leaves_the_signal_and_timer_as_it_found_them():
    def mine(signum, frame):
        raise AssertionError("the guard's alarm reached a handler it had replaced")

    before = signal.signal(signal.SIGPROF, mine)
    try:
        TimeGuard(StallOn(), 0.2).check_batch(["fine text here", STALL])
        TimeGuard(StallOn(), 5).check_batch(["fine text here"])
        assert signal.getsignal(signal.SIGPROF) is mine
        assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGPROF, before)


def test_outside_the_main_thread_the_rules_run_unguarded():
    out = []
    thread = threading.Thread(
        target=lambda: out.append(TimeGuard(StallOn(), 0.1).check_batch(["tiny", "a fine document"]))
    )
    thread.start()
    thread.join()
    assert out == [["stall:short", None]]


def test_the_limit_is_a_filters_setting_and_zero_turns_it_off():
    assert FiltersConfig().max_seconds_per_document == 60
    assert FiltersConfig.model_validate({"max_seconds_per_document": 0}).max_seconds_per_document == 0
    with pytest.raises(ValidationError, match="max_seconds_per_document"):
        FiltersConfig.model_validate({"max_seconds_per_document": -1})
    assert not isinstance(RuleSetFilter(StallOn(), max_seconds_per_document=0).rules, TimeGuard)
    assert isinstance(RuleSetFilter(StallOn(), max_seconds_per_document=1).rules, TimeGuard)


@pytest.mark.ray
def test_in_a_ray_task_the_guard_interrupts_a_stalled_pattern(ray_local):
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    @ray_local.remote(num_cpus=1, max_retries=0)
    def judge(texts):
        return threading.current_thread() is threading.main_thread(), TimeGuard(StallOn(), 0.3).check_batch(
            texts
        )

    main, verdicts = ray_local.get(judge.remote(["a fine document", STALL, "tiny"]), timeout=300)
    assert main  # Ray runs a task's function in its worker's main thread: the alarm can reach it
    assert verdicts == [None, "stall:time_limit", "stall:short"]


PROSE = (
    "The library was founded in the old town hall, and for a century it lent books to anyone who asked "
    "for them; its reading room, with the long oak tables, is still open every day of the week.\n"
) * 8


@pytest.mark.parametrize("runner", ["in process", pytest.param("ray", marks=pytest.mark.ray)])
def test_ingest_counts_a_stalled_document_as_quarantined_and_balances(files, tmp_path, runner, request):
    records = [
        {"text": PROSE, "meta": {"pile_set_name": "Pile-CC"}},
        {"text": PROSE + STALL, "meta": {"pile_set_name": "Pile-CC"}},
        {"text": "Too short.", "meta": {"pile_set_name": "Pile-CC"}},
        {"text": PROSE, "meta": {"pile_set_name": "Books3"}},
    ]
    files.write("pile/00.jsonl", files.jsonl(records))
    recipe = parse_recipe(
        {
            "name": "t",
            "output": str(tmp_path / "build"),
            "sources": [{"name": "pile", "format": "pile", "paths": [str(files.root / "pile")]}],
            "filters": {"max_seconds_per_document": 0.5},
        }
    )
    layout = BuildLayout(recipe.output)
    units = plan_work_units(recipe)
    chain = ingest_chain(recipe, layout, units)
    for step in chain:  # the web rules' first rule set stalls on the marked document
        if isinstance(step, RuleSetFilter) and step.rules.name == "gopher_quality":
            step.rules.rules = StallOn(step.rules.rules)
    step = Step("ingest", chain, tasks=len(units))
    if runner == "ray":
        request.getfixturevalue("ray_local").cloudpickle.register_pickle_by_value(sys.modules[__name__])
        run_step(step, layout)
    else:
        run_locally([step], layout)
    web = collect_accounting(layout, {"pile": [u.task for u in units]})["pile"]["Pile-CC"]
    assert (web.records_in, web.quarantined) == (3, 1)
    assert web.kept + sum(web.filtered.values()) == 2 and web.balanced()
    with open(layout.quarantine_file("pile", 0)) as f:
        (quarantined,) = [json.loads(line) for line in f]
    assert quarantined["reason"] == "gopher_quality:time_limit" and quarantined["subset"] == "Pile-CC"
    assert quarantined["excerpt"] == PROSE[:200]
    with open(layout.stats_file("ingest", "pile", 0)) as f:
        assert json.load(f)["Pile-CC"]["quarantine_reasons"] == {"gopher_quality:time_limit": 1}
