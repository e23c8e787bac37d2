"""A build's orchestration, apart from its steps: the driver, the engine that runs steps on Ray, the build
directory's layout, progress, per-task ledgers, the accounting summed from them, and the report.

    driver      run_build: claim the output, run `steps.build_steps` in order, write the manifest last
    engine      Step, init_ray, run_step (on Ray), run_locally (datatrove's local executor)
    ray_tasks   one Ray task per rank: retries of lost work, timed waits, failures with their cause
    layout      BuildLayout: every path inside BUILD/
    progress    live progress per step and the closing summary table
    ledger      per-task counts per subset; accounting sums them and checks they balance
    report      BUILD/reports/index.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gristmill.pipelines.build.driver import BuildOptions, recipe_hash, run_build

__all__ = ["BuildOptions", "recipe_hash", "run_build"]


def __getattr__(name: str) -> Any:
    # Lazy, so that steps can import build.layout and build.engine without importing the driver (which
    # imports the steps).
    if name in __all__:
        from gristmill.pipelines.build import driver

        return getattr(driver, name)
    raise AttributeError(name)
