"""Run an ablation: build each candidate, keep the evaluation set out of all of them, train the same proxy on
every candidate with every seed for the same tokens, collect the final evaluations, rank and decide.

    OUTPUT/builds/<candidate>/          each recipe's build (a finished build is used where it lies)
    OUTPUT/eval/<set>.jsonl             the evaluation text no candidate trained on; decontamination.json
    OUTPUT/runs/<candidate>/seed-<s>/   a training run: checkpoints/, metrics.jsonl, run.json, result.json
    OUTPUT/results.json, report.html    the ranked metrics and pairwise decisions

Everything resumes: a build resumes as `gristmill build` does (a complete one is skipped), a run resumes from
its newest checkpoint, and a run with a result is skipped. A run refuses to resume under another
configuration (its run.json says which), so a changed ablation needs another output.

Locally, builds run on an embedded Ray (as `gristmill build` does) and the runs one after another in this
process. With an address (a cluster, or "local" for an embedded Ray on this machine), the builds run there
and every (candidate, seed) run is one Ray task asking for `ray.gpus_per_run` GPUs, so runs go in parallel
as far as the cluster allows; OUTPUT must then be on storage every node sees.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.ablate.config import AblationConfig, Candidate
from gristmill.ablate.contamination import Decontamination, decontaminate
from gristmill.ablate.proxy import proxy, proxy_model, token_budget
from gristmill.errors import ConfigError
from gristmill.shards.manifest import Manifest, read_manifest
from gristmill.storage import exists, read_json, write_json
from gristmill.trainer.config import PRESETS
from gristmill.trainer.model import count_parameters, flops_per_token

Console = Callable[[str], None]


@dataclass(frozen=True)
class Layout:
    """Every path under an ablation's output directory."""

    root: str

    def build(self, candidate: str) -> str:
        """OUTPUT/builds/<candidate>."""
        return f"{self.root}/builds/{candidate}"

    def run(self, candidate: str, seed: int) -> str:
        """OUTPUT/runs/<candidate>/seed-<seed>."""
        return f"{self.root}/runs/{candidate}/seed-{seed}"

    def eval_file(self, name: str) -> str:
        """OUTPUT/eval/<set>.jsonl: a decontaminated text set."""
        return f"{self.root}/eval/{name}.jsonl"

    @property
    def decontamination(self) -> str:
        """OUTPUT/eval/decontamination.json."""
        return f"{self.root}/eval/decontamination.json"

    @property
    def results(self) -> str:
        """OUTPUT/results.json."""
        return f"{self.root}/results.json"

    @property
    def report(self) -> str:
        """OUTPUT/report.html."""
        return f"{self.root}/report.html"


@dataclass(frozen=True)
class Plan:
    """What every run trains: the proxy (sized with the largest candidate vocabulary), its parameters and
    FLOPs per token, and the tokens each run trains (whole steps)."""

    proxy: str
    vocab_size: int
    parameters: int
    parameters_with_embedding: int
    flops_per_token: float  # at the longest stage of any candidate
    tokens_per_step: int
    micro_batch_tokens: int
    steps: int

    @property
    def tokens(self) -> int:
        """Return the tokens every run trains."""
        return self.steps * self.tokens_per_step


# -- builds -----------------------------------------------------------------------------------------------


def candidate_build(config: AblationConfig, candidate: Candidate, layout: Layout) -> str:
    """Return the build directory of a candidate."""
    return candidate.build if candidate.build is not None else layout.build(candidate.name)


def prepare_builds(
    config: AblationConfig, layout: Layout, address: str | None, console: Console
) -> dict[str, Manifest]:
    """Build every recipe candidate that has no complete build yet (resuming a killed one); return each
    candidate's manifest. Raises what `gristmill build` raises."""
    from gristmill.pipelines.build.driver import BuildOptions, recipe_hash, run_build
    from gristmill.pipelines.recipe import load_recipe

    manifests = {}
    for candidate in config.candidates:
        build = candidate_build(config, candidate, layout)
        if candidate.recipe is not None:
            recipe = load_recipe(candidate.recipe, {**candidate.set, "output": build})
            marker = f"{build}/recipe.json"
            done = exists(f"{build}/manifest.json") and read_json(marker).get("recipe_hash") == recipe_hash(
                recipe
            )
            if done:
                console(f"build {candidate.name}: complete ({build})")
            else:
                console(f"build {candidate.name}: {candidate.recipe} → {build}")
                began = time.perf_counter()
                run_build(recipe, BuildOptions(address=None if address == "local" else address))
                console(f"build {candidate.name}: done in {time.perf_counter() - began:.0f} s")
        manifests[candidate.name] = read_manifest(build)
    return manifests


# -- the plan and each run's training config --------------------------------------------------------------


def make_plan(config: AblationConfig, manifests: dict[str, Manifest]) -> Plan:
    """Return the plan: the proxy sized by the largest candidate vocabulary, the tokens of every run.

    Raises ConfigError when a candidate has no tokenizer or the budget holds no step."""
    preset = proxy(config.proxy)
    vocabs = {}
    for name, manifest in manifests.items():
        if manifest.tokenizer is None:
            raise ConfigError(f"candidate {name!r}'s build has no tokenizer", where=f"candidates.{name}")
        vocabs[name] = manifest.tokenizer.vocab_size
    vocab = max(vocabs.values())
    model = proxy_model(config.proxy, vocab, **config.model)
    tokens_per_step = config.tokens_per_step or preset.tokens_per_step
    micro = int(config.train.get("micro_batch_tokens", preset.micro_batch_tokens))
    steps = token_budget(model, config.tokens_per_param) // tokens_per_step
    if steps < 1:
        raise ConfigError(
            f"{config.tokens_per_param} tokens per parameter of {count_parameters(model):,} is less than one "
            f"step of {tokens_per_step:,} tokens",
            where="tokens_per_param",
        )
    longest = max(s.seq_len for m in manifests.values() for s in m.stages)
    return Plan(
        proxy=config.proxy,
        vocab_size=vocab,
        parameters=count_parameters(model),
        parameters_with_embedding=count_parameters(model, include_embedding=True),
        flops_per_token=flops_per_token(model, longest),
        tokens_per_step=tokens_per_step,
        micro_batch_tokens=micro,
        steps=steps,
    )


def stage_steps(manifest: Manifest, steps: int) -> list[tuple[str, int]]:
    """Return (stage, steps) sharing `steps` among the build's stages in proportion to their tokens (the
    remainder to the last stage), leaving out stages that get none."""
    sizes = [s.rows * s.seq_len for s in manifest.stages]
    shares = [steps * size // sum(sizes) for size in sizes]
    shares[-1] += steps - sum(shares)
    return [(s.name, n) for s, n in zip(manifest.stages, shares) if n > 0]


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def run_config(
    config: AblationConfig, plan: Plan, build: str, manifest: Manifest, seed: int, layout: Layout, name: str
) -> dict[str, Any]:
    """Return the training config (as data) of one candidate and seed: the same for every candidate but
    its build and seed."""
    preset = proxy(config.proxy)
    every = config.eval.every_steps or max(1, plan.steps // 10)
    base: dict[str, Any] = {
        "build": build,
        "model": {**PRESETS[preset.model], **config.model},
        "output_dir": layout.run(name, seed),
        "seed": seed,
        "micro_batch_tokens": plan.micro_batch_tokens,
        "stages": [
            {"name": stage, "tokens_per_step": plan.tokens_per_step, "tokens": n * plan.tokens_per_step}
            for stage, n in stage_steps(manifest, plan.steps)
        ],
        "optimizer": {"lr": preset.lr},
        "schedule": {"warmup_steps": max(1, round(preset.warmup_fraction * plan.steps))},
        "eval": {
            "text": {set_name: [layout.eval_file(set_name)] for set_name in config.eval.text},
            "tasks": list(config.eval.tasks),
            "task_items": config.eval.task_items,
            "every_steps": every,
        },
        "checkpoint": {"every_steps": max(1, plan.steps // 4), "keep_last": 1},
        "log_every": max(1, plan.steps // 50),
    }
    return _merge(base, {k: v for k, v in config.train.items() if k not in ("build", "seed", "output_dir")})


def config_hash(data: dict[str, Any]) -> str:
    """Return a short hash of a run's training config."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# -- running one job --------------------------------------------------------------------------------------


def run_job(job: dict[str, Any], console: Console | None = None) -> dict[str, Any]:
    """Train (or resume) one run and return its result: final metrics, tokens, wall time. Writes
    run.json (its config hash and accumulated wall time) and, when finished, result.json."""
    from gristmill.trainer.config import parse_train_config
    from gristmill.trainer.train import train

    settings = parse_train_config(job["train_config"])
    out = Path(settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "run.json"
    state = (
        json.loads(state_file.read_text())
        if state_file.exists()
        else {"config_hash": job["hash"], "wall_s": 0.0}
    )
    if state["config_hash"] != job["hash"]:
        raise ConfigError(
            "this run was started with another configuration",
            path=str(out),
            hint="give the changed ablation another output directory (or delete this run)",
        )
    log = open(out / "train.log", "a", encoding="utf-8")  # noqa: SIM115  (closed below)

    def say(line: str) -> None:
        log.write(line + "\n")
        log.flush()
        if console is not None:
            console(f"[{job['candidate']} seed {job['seed']}] {line}")

    began = time.perf_counter()
    try:
        result = train(settings, console=say)
    finally:
        log.close()
        state["wall_s"] += time.perf_counter() - began
        write_json(str(state_file), state)
    total = result.stages[-1].first_step + result.stages[-1].steps
    final = final_metrics(settings.metrics_path, total)
    summary = {
        "candidate": job["candidate"],
        "seed": job["seed"],
        "config_hash": job["hash"],
        "steps": total,
        "tokens": sum(s.tokens for s in result.stages),
        "wall_s": state["wall_s"],
        "metrics": final,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
    }
    write_json(str(out / "result.json"), summary)
    return summary


def final_metrics(metrics_path: str, step: int) -> dict[str, float]:
    """Return the evaluation metrics logged at `step` (the run's last) in its metrics JSONL file.

    Raises ConfigError when the file holds no evaluation at that step."""
    keep = ("eval_", "text_bpb/", "task_")
    found = None
    with open(metrics_path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("step") == step and any(k.startswith(keep) for k in record):
                found = record
    if found is None:
        raise ConfigError(f"no evaluation at step {step} in the run's metrics", path=metrics_path)
    metrics = {k: v for k, v in found.items() if k.startswith(keep)}
    metrics["train_loss"] = found["loss"]
    return metrics


def _run_jobs_on_ray(
    jobs: list[dict[str, Any]], config: AblationConfig, address: str, console: Console
) -> None:
    import ray

    from gristmill.pipelines.build.engine import init_ray

    init_ray(None if address == "local" else address)
    remote = ray.remote(num_cpus=config.ray.cpus_per_run, num_gpus=config.ray.gpus_per_run)(run_job)
    pending = {remote.remote(job): job for job in jobs}
    console(f"{len(pending)} training job(s) submitted to Ray")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            job = pending.pop(ref)
            result = ray.get(ref)
            console(f"run {job['candidate']} seed {job['seed']}: done ({result['wall_s']:.0f} s)")


# -- the whole ablation -----------------------------------------------------------------------------------


def prepare_eval(
    config: AblationConfig, builds: dict[str, str], layout: Layout, console: Console
) -> Decontamination | dict:
    """Write the evaluation text sets without any document a candidate trained on (once: a rerun with the
    same candidates' builds and text files reuses them); return the decontamination's counts."""
    from gristmill.trainer.eval_sets import read_texts

    fingerprint = config_hash(
        {
            "builds": builds,
            "text": config.eval.text,
            "ngram": config.eval.ngram,
            "manifests": {c: read_manifest(b).computed_hash() for c, b in builds.items()},
        }
    )
    if exists(layout.decontamination):
        saved = read_json(layout.decontamination)
        if saved.get("fingerprint") == fingerprint and all(
            exists(layout.eval_file(n)) for n in config.eval.text
        ):
            return saved
    sets = {name: [t for path in paths for t in read_texts(path)] for name, paths in config.eval.text.items()}
    console(
        f"decontaminating {sum(map(len, sets.values()))} evaluation documents against {len(builds)} builds"
    )
    result = decontaminate(sets, builds, config.eval.ngram)
    for name, docs in result.kept.items():
        if not docs:
            raise ConfigError(
                f"every document of evaluation set {name!r} shares a {config.eval.ngram}-gram with a "
                "candidate's training documents",
                where=f"eval.text.{name}",
            )
        Path(layout.eval_file(name)).parent.mkdir(parents=True, exist_ok=True)
        write_json_lines(layout.eval_file(name), docs)
    saved = {"fingerprint": fingerprint, **result.to_dict()}
    write_json(layout.decontamination, saved)
    return saved


def write_json_lines(path: str, texts: list[str]) -> None:
    """Write `texts` as a JSON-lines file of {"text": …} (atomically)."""
    from gristmill.storage import atomic_write

    with atomic_write(path, "w") as f:
        for text in texts:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


def run_ablation(
    config: AblationConfig, *, address: str | None = None, console: Console = print
) -> dict[str, Any]:
    """Run (or resume) the whole ablation; return its results (also written to OUTPUT/results.json, with
    OUTPUT/report.html). Raises ConfigError / BuildError for what cannot run."""
    from gristmill.ablate.report import summarize, write_report
    from gristmill.shards.curriculum import Curriculum
    from gristmill.trainer.config import parse_train_config
    from gristmill.trainer.curriculum import schedule_stages
    from gristmill.trainer.train import build_model_config

    layout = Layout(config.output.rstrip("/"))
    manifests = prepare_builds(config, layout, address, console)
    builds = {c.name: candidate_build(config, c, layout) for c in config.candidates}
    plan = make_plan(config, manifests)
    decontamination = prepare_eval(config, builds, layout, console)
    jobs = []
    for candidate in config.candidates:
        manifest = manifests[candidate.name]
        for seed in config.seeds:
            data = run_config(config, plan, builds[candidate.name], manifest, seed, layout, candidate.name)
            settings = parse_train_config(data, where_for(candidate.name, seed))
            schedule_stages(
                settings, Curriculum(manifest), build_model_config(settings, manifest), 1
            )  # fits?
            jobs.append(
                {"candidate": candidate.name, "seed": seed, "train_config": data, "hash": config_hash(data)}
            )
    todo = []
    for job in jobs:
        result_file = Path(layout.run(job["candidate"], job["seed"])) / "result.json"
        if result_file.exists() and json.loads(result_file.read_text()).get("config_hash") == job["hash"]:
            console(f"run {job['candidate']} seed {job['seed']}: done earlier, skipped")
        else:
            todo.append(job)
    console(
        f"ablation {config.name}: {len(config.candidates)} candidates × {len(config.seeds)} seeds, proxy "
        f"{plan.proxy} ({plan.parameters:,} parameters), {plan.tokens:,} tokens per run "
        f"({plan.steps} steps); {len(todo)} run(s) to train"
    )
    if address is not None and todo:
        _run_jobs_on_ray(todo, config, address, console)
    else:
        for job in todo:
            run_job(job, console)
    results = [
        json.loads((Path(layout.run(j["candidate"], j["seed"])) / "result.json").read_text()) for j in jobs
    ]
    summary = summarize(config, plan, manifests, builds, decontamination, results)
    write_json(layout.results, summary)
    write_report(layout.report, summary, layout)
    return summary


def where_for(candidate: str, seed: int) -> str:
    """Return how a run's generated config is named in errors."""
    return f"<ablation run {candidate} seed {seed}>"
