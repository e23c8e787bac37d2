"""An ablation's results: ranked metrics with seed spreads and pairwise decisions (results.json), and one
self-contained HTML page with the curves of every run (report.html)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from gristmill.ablate.decide import higher_is_better, pairwise, rank
from gristmill.html_page import CSS, png, table
from gristmill.storage import atomic_write

RANKED_PREFIXES = ("text_bpb/", "task_bpb/", "task_acc/", "task_acc_norm/")


def summarize(
    config, plan, manifests, builds, decontamination, results: list[dict[str, Any]]
) -> dict[str, Any]:
    """Return the ablation's results: plan, candidates, decontamination, runs, and per metric the ranking
    (mean, std, range over seeds) and every pair's decision."""
    names = [c.name for c in config.candidates]
    metrics = sorted({k for r in results for k in r["metrics"] if k.startswith(RANKED_PREFIXES)})
    by_metric: dict[str, Any] = {}
    for metric in metrics:
        values = {
            n: [r["metrics"][metric] for r in results if r["candidate"] == n and metric in r["metrics"]]
            for n in names
        }
        if any(len(v) < 2 for v in values.values()):
            continue
        better = higher_is_better(metric)
        by_metric[metric] = {
            "higher_is_better": better,
            "ranking": [
                {"rank": r.rank, "candidate": r.candidate, **vars(r.spread)} for r in rank(values, better)
            ],
            "pairs": [
                {"better": a, "worse": b, **vars(d)} for a, b, d in pairwise(values, better, config.alpha)
            ],
        }
    text_metrics = [m for m in by_metric if m.startswith("text_bpb/")]
    primary = (
        text_metrics or [m for m in by_metric if m.startswith("task_bpb/")] or list(by_metric) or [None]
    )[0]
    return {
        "name": config.name,
        "plan": {
            "proxy": plan.proxy,
            "vocab_size": plan.vocab_size,
            "parameters": plan.parameters,
            "parameters_with_embedding": plan.parameters_with_embedding,
            "flops_per_token": plan.flops_per_token,
            "tokens_per_param": config.tokens_per_param,
            "tokens_per_step": plan.tokens_per_step,
            "steps": plan.steps,
            "tokens": plan.tokens,
            "seeds": list(config.seeds),
            "alpha": config.alpha,
        },
        "candidates": {
            n: {
                "build": builds[n],
                "vocab_size": manifests[n].tokenizer.vocab_size,
                "build_tokens": sum(s.tokens for s in manifests[n].stages),
                "epochs": plan.tokens / max(1, sum(s.rows * s.seq_len for s in manifests[n].stages)),
            }
            for n in names
        },
        "decontamination": decontamination,
        "runs": [{**r, "tokens_per_s": r["tokens"] / r["wall_s"] if r["wall_s"] else None} for r in results],
        "metrics": by_metric,
        "primary": primary,
    }


def decision_word(pair: dict[str, Any]) -> str:
    """Return "decided" or "not decided" for a pair of the results."""
    return "decided" if pair["decided"] else "not decided"


def _metric_section(metric: str, entry: dict[str, Any]) -> str:
    direction = "higher is better" if entry["higher_is_better"] else "lower is better"
    ranking = table(
        ["rank", "candidate", "mean", "std (seeds)", "min", "max", "seeds"],
        [
            [r["rank"], r["candidate"], r["mean"], r["std"], r["low"], r["high"], r["n"]]
            for r in entry["ranking"]
        ],
    )
    pairs = table(
        ["pair", "difference", "Welch t", "df", "p", ""],
        [
            [f"{p['better']} vs {p['worse']}", p["difference"], p["t"], p["df"], p["p"], decision_word(p)]
            for p in entry["pairs"]
        ],
    )
    return f"<h3>{html.escape(metric)} ({direction})</h3>{ranking}{pairs}"


def _curves(summary: dict[str, Any], layout) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["candidates"])
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    records: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in summary["runs"]:
        path = Path(layout.run(run["candidate"], run["seed"])) / "metrics.jsonl"
        if path.exists():
            records[(run["candidate"], run["seed"])] = [
                json.loads(line) for line in path.read_text().splitlines()
            ]
    keys = ["loss", *[m for m in summary["metrics"] if m.startswith(("text_bpb/", "task_bpb/"))]]
    out = []
    for key in keys:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for (candidate, seed), rows in records.items():
            points = [(r["tokens"], r[key]) for r in rows if key in r and "tokens" in r]
            if points:
                xs, ys = zip(*points)
                style = ["-", "--", ":", "-."][summary["plan"]["seeds"].index(seed) % 4]
                ax.plot(xs, ys, style, color=colors[candidate], label=f"{candidate} seed {seed}")
        ax.set_xlabel("training tokens")
        ax.set_ylabel("training loss (nats/token)" if key == "loss" else key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        out.append(png(fig))
        plt.close(fig)
    return "".join(out)


def render(summary: dict[str, Any], layout) -> str:
    """Return the report page."""
    plan = summary["plan"]
    parts = [
        f"<h1>Ablation {html.escape(summary['name'])}</h1>",
        "<p>Every candidate trains the same proxy with the same settings for the same tokens, once per seed; "
        "a pair is <b>decided</b> when Welch's t-test over the seeds rejects equal means at "
        f"α = {plan['alpha']} (ablate/decide.py), else <b>not decided</b>.</p>",
        table(
            [
                "proxy",
                "parameters",
                "with embedding",
                "FLOPs/token",
                "tokens/param",
                "tokens per run",
                "steps",
                "seeds",
            ],
            [
                [
                    plan["proxy"],
                    plan["parameters"],
                    plan["parameters_with_embedding"],
                    plan["flops_per_token"],
                    plan["tokens_per_param"],
                    plan["tokens"],
                    plan["steps"],
                    ", ".join(map(str, plan["seeds"])),
                ]
            ],
        ),
        "<h2>Candidates</h2>",
        table(
            ["candidate", "build", "vocabulary", "build tokens", "epochs of it per run"],
            [
                [n, c["build"], c["vocab_size"], c["build_tokens"], c["epochs"]]
                for n, c in summary["candidates"].items()
            ],
        ),
        "<h2>Evaluation set kept out of every build</h2>",
        table(
            ["text set", "documents", "kept", *[f"seen by {n}" for n in summary["candidates"]]],
            [
                [name, s["documents"], s["kept"], *[s["seen_by"].get(n, 0) for n in summary["candidates"]]]
                for name, s in summary["decontamination"].get("sets", {}).items()
            ],
        ),
        f"<p>A document sharing a {summary['decontamination'].get('ngram')}-word n-gram with a candidate's "
        "training documents is dropped from the set.</p>",
        "<h2>Results</h2>",
        *[_metric_section(m, e) for m, e in summary["metrics"].items()],
        "<h2>Runs</h2>",
        table(
            ["candidate", "seed", "steps", "tokens", "wall s", "tokens/s", "final train loss"],
            [
                [
                    r["candidate"],
                    r["seed"],
                    r["steps"],
                    r["tokens"],
                    r["wall_s"],
                    r["tokens_per_s"] or "—",
                    r["metrics"].get("train_loss", "—"),
                ]
                for r in summary["runs"]
            ],
        ),
        "<h2>Curves</h2>",
        _curves(summary, layout),
    ]
    head = f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head>"
    return f"{head}<body>{''.join(parts)}</body></html>"


def write_report(path: str, summary: dict[str, Any], layout) -> None:
    """Write the report page to `path` (atomically)."""
    with atomic_write(path, "w") as f:
        f.write(render(summary, layout))
