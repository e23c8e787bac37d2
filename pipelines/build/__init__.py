"""A build's orchestration, apart from its steps: the driver, the engine that runs steps on Ray, the build
directory's layout, progress, per-task ledgers, the accounting summed from them, and the report.

    driver      run_build: claim the output, run `steps.build_steps` in order, write the manifest last
    engine      Step, init_ray, run_step (on Ray), run_locally (datatrove's local executor)
    ray_tasks   one Ray task per rank: retries of lost work, timed waits, failures with their cause
    layout      BuildLayout: every path inside BUILD/
    directory   a build directory as a whole: its marker, --fresh removal, a killed run's leftovers
    progress    live progress per step and the closing summary table
    ledger      per-task counts per subset; accounting sums them and checks they balance
    report      BUILD/reports/index.html

Steps import `engine` and `layout`; `driver` imports the steps. So this package's root imports nothing:
`from gristmill.pipelines.build.driver import BuildOptions, run_build`.
"""
