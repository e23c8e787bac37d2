"""`gristmill build`: claims the output, runs the recipe's steps (`steps.build_steps`) on Ray, resumably,
and writes the manifest last."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from rich.console import Console

from gristmill.errors import BuildError
from gristmill.pipelines.build.accounting import collect_accounting, decontam_drops
from gristmill.pipelines.build.directory import remove_build, remove_leftovers
from gristmill.pipelines.build.engine import Step, init_ray, quiet_datatrove_logs, run_step
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.build.progress import completed_tasks, step_progress, summary_table
from gristmill.pipelines.build.ray_tasks import RetryPolicy
from gristmill.pipelines.build.report import write_report
from gristmill.pipelines.decontam import decontam_status
from gristmill.pipelines.recipe import Recipe
from gristmill.pipelines.steps import build_steps
from gristmill.pipelines.steps.ingest import WorkUnit, plan_work_units
from gristmill.shards.manifest import Manifest, SourceEntry, manifest_path, read_manifest, write_manifest
from gristmill.storage import exists, filesystem, list_names, read_json, register_storage, write_json


def recipe_hash(recipe: Recipe) -> str:
    """Return a hash of everything in the recipe that decides the build's content (`Recipe.content`)."""
    return hashlib.sha256(json.dumps(recipe.content(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class BuildOptions:
    """How to run a build (not what it builds: that is the recipe)."""

    address: str | None = None
    workers: int | None = None
    num_cpus: int | None = None
    strict: bool = False
    fresh: bool = False
    policy: RetryPolicy = field(default_factory=RetryPolicy)  # retries of lost tasks, the driver's timeouts
    console: Console = field(default_factory=lambda: Console(stderr=True))


def _claim_output(layout: BuildLayout, recipe: Recipe, options: BuildOptions) -> None:
    """Record the recipe in BUILD/recipe.json, or check that an existing build is of the same recipe."""
    if options.fresh:
        remove_build(layout.root)  # refuses, naming what is there, unless it is a gristmill build
    marker = layout.recipe_file
    digest = recipe_hash(recipe)
    if exists(marker):
        previous = read_json(marker)
        if previous.get("recipe_hash") != digest:
            raise BuildError(
                "the output directory holds a build of a different recipe "
                f"({previous.get('recipe_hash')} ≠ {digest})",
                path=layout.root,
                hint="use another output, or --fresh to start this one over",
            )
        remove_leftovers(layout.root)  # a resumed build: what a killed run left half-written goes
        return
    write_json(marker, {"recipe_hash": digest, "recipe": recipe.content()})


def _work_units(layout: BuildLayout, recipe: Recipe) -> list[WorkUnit]:
    """Plan the ingest tasks once; a resumed build reuses the saved plan, so task numbers keep meaning."""
    path = layout.work_units_file
    if exists(path):
        return [WorkUnit(u["source"], u["task"], tuple(u["files"])) for u in read_json(path)]
    units = plan_work_units(recipe)
    write_json(path, [{"source": u.source, "task": u.task, "files": list(u.files)} for u in units])
    return units


def _raise_task_error(layout: BuildLayout, error: BuildError) -> None:
    """Prefer the first task's own error message (e.g. a --strict stop naming file and line)."""
    names = list_names(layout.task_errors)
    if names:
        fs, inner = filesystem(f"{layout.task_errors}/{names[0]}")
        with fs.open(inner, "r") as f:
            raise BuildError(f.read().strip(), hint="stopped by --strict") from error
    raise error


def _run(step: Step, layout: BuildLayout, options: BuildOptions) -> None:
    if completed_tasks(layout, step.name) >= step.tasks:  # finished earlier, or skipped by its own logic
        if step.after is not None:
            step.after()
        return
    with step_progress(options.console, layout, step.name, step.tasks):
        try:
            run_step(step, layout, options.workers, options.policy)
        except BuildError as e:
            _raise_task_error(layout, e)


def _overlap(layout: BuildLayout) -> dict[str, dict[str, int]]:
    path = layout.overlap_file
    return read_json(path) if exists(path) else {}


def _taken_down(layout: BuildLayout) -> Manifest | None:
    """Return the manifest of a finished build that documents were taken down from (None otherwise).

    Such a build is left as it is: its steps' own records (the pack step's shard entries) predate the
    takedown, and running a step again would bring the documents back from the work files.
    """
    if not exists(manifest_path(layout.root)):
        return None
    manifest = read_manifest(layout.root)
    if not manifest.removals:
        return None
    return manifest


def run_build(recipe: Recipe, options: BuildOptions | None = None) -> Manifest:
    """Run (or resume) the recipe's build and return its manifest. Raises BuildError or InputError.

    The steps are `steps.build_steps`'s, in its order; then the manifest and the report.
    """
    from gristmill.pipelines.steps.decontam import collect_decontamination
    from gristmill.pipelines.steps.pack import collect_stages, tokenizer_entry
    from gristmill.pipelines.steps.quality import collect_quality

    options = options or BuildOptions()
    layout = BuildLayout(recipe.output)
    decontaminate, note = decontam_status(recipe.decontam)
    if note:
        options.console.print(f"[yellow]warning:[/yellow] {note}")
    register_storage(layout.root, recipe.output_storage_options)  # the tasks get them with each step
    _claim_output(layout, recipe, options)
    taken_down = _taken_down(layout)
    if taken_down is not None:
        options.console.print(
            f"{layout.root} is finished, and {sum(r.documents for r in taken_down.removals)} documents were "
            "taken down from it since: it is left as it is (--fresh rebuilds it from the inputs, which still "
            "hold them)"
        )
        return taken_down
    units = _work_units(layout, recipe)
    quiet_datatrove_logs()
    init_ray(options.address, options.num_cpus)
    for step in build_steps(recipe, layout, units, strict=options.strict):
        _run(step, layout, options)

    tasks_by_source: dict[str, list[int]] = {s.name: [] for s in recipe.sources}
    for unit in units:
        tasks_by_source[unit.source].append(unit.task)
    accounting = collect_accounting(layout, tasks_by_source)
    decontamination = (
        collect_decontamination(recipe, layout, tasks_by_source, decontam_drops(accounting))
        if decontaminate
        else None
    )
    manifest = Manifest(
        name=recipe.name,
        recipe=recipe.content(),  # no absolute path: builds relocate
        recipe_hash=recipe_hash(recipe),
        seed=recipe.seed,
        sources=[
            SourceEntry(name=s.name, format=s.format, kind=s.kind or "text", priority=s.priority)
            for s in recipe.sources
        ],
        accounting=accounting,
        overlap=_overlap(layout),
        tokenizer=tokenizer_entry(layout) if recipe.tokenizer is not None else None,
        decontamination=decontamination,
        quality=collect_quality(recipe, layout, tasks_by_source) if recipe.quality.enabled else None,
        stages=collect_stages(recipe, layout) if recipe.stages else [],
        artifacts={
            "documents": "documents/",
            "clean": "clean/",
            "quarantine": "quarantine/",
            "dropped": "dropped/",
            **({"decontamination": "decontamination/"} if decontaminate else {}),
            **({"quality": "quality/"} if recipe.quality.enabled else {}),
            "report": "reports/index.html",
        },
    )
    manifest = write_manifest(layout.root, manifest)
    write_report(layout.root)
    options.console.print(summary_table(manifest))
    return manifest
