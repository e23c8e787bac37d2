"""The build report: one self-contained HTML page (tables and inline PNG plots) in BUILD/reports/."""

from __future__ import annotations

import html
import json

from gristmill.html_page import CSS, png, table
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.shards.inspect import padding_rate
from gristmill.shards.manifest import Manifest, read_manifest
from gristmill.storage import atomic_write, exists, filesystem

REPORT_NAME = "index.html"


def _accounting_section(m: Manifest) -> str:
    rows = []
    for source, subsets in m.accounting.items():
        for subset, c in subsets.items():
            flag = "" if c.balanced() else " ✗"
            rows.append(
                [
                    f"{source} / {subset}{flag}",
                    c.profile or "—",
                    c.records_in,
                    c.kept,
                    "—" if c.keep_rate is None else f"{c.keep_rate:.1%}",
                    sum(c.filtered.values()),
                    c.duplicate.get("exact", 0),
                    c.duplicate.get("near", 0),
                    c.quarantined,
                    c.removed,
                ]
            )
    header = [
        "source / subset",
        "profile",
        "in",
        "kept",
        "keep rate",
        "filtered",
        "exact dup",
        "near dup",
        "quarantined",
        "removed",
    ]
    return (
        "<h2>Accounting: in = kept + filtered + duplicate + quarantined + removed</h2>"
        "<p>removed: documents a takedown took out of the finished build (<code>gristmill shards takedown"
        "</code>).</p>" + table(header, rows)
    )


def _filter_section(m: Manifest) -> str:
    reasons: dict[str, dict[str, int]] = {}
    for source, subsets in m.accounting.items():
        for c in subsets.values():
            for reason, n in c.filtered.items():
                reasons.setdefault(reason, {}).setdefault(source, 0)
                reasons[reason][source] += n
    sources = list(m.accounting)
    rows = [[reason, *(by.get(s, 0) for s in sources)] for reason, by in sorted(reasons.items())]
    return "<h2>Filter reasons</h2>" + (table(["reason", *sources], rows) if rows else "<p>none</p>")


def _overlap_section(m: Manifest) -> str:
    if not m.overlap:
        return "<h2>Duplicate overlap</h2><p>no duplicates removed</p>"
    sources = [s.name for s in m.sources]
    rows = [[removed, *(m.overlap.get(removed, {}).get(kept, 0) for kept in sources)] for removed in sources]
    return (
        "<h2>Duplicate overlap (rows: source of the removed copy; columns: source of the kept copy)</h2>"
        + table(["removed \\ kept", *sources], rows)
    )


def _stages_section(m: Manifest) -> str:
    if not m.stages:
        return "<h2>Stages</h2><p>this build has no curriculum stages</p>"
    rows = []
    for s in m.stages:
        total = max(s.trained_tokens, 1)
        mix = ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(s.source_trained_tokens.items()))
        passes = ", ".join(f"{k} ×{v:.3g}" for k, v in sorted(s.passes.items()))
        sampling = ", ".join(f"{k} ×{v:.3g}" for k, v in sorted(s.sampling.items()))
        rows.append(
            [
                f"{s.number} {s.name}",
                s.seq_len,
                len(s.shards),
                s.rows,
                s.tokens,
                s.trained_rows,
                s.trained_tokens,
                f"{padding_rate(s):.3%}",
                s.split_documents,
                mix,
                passes,
                sampling,
            ]
        )
    header = [
        "stage",
        "seq len",
        "shards",
        "rows stored",
        "tokens stored",
        "rows trained",
        "tokens trained",
        "padding",
        "split docs",
        "mixture (trained)",
        "passes",
        "sampling",
    ]
    return (
        "<h2>Curriculum stages</h2><p>Each stage's rows are stored once; one walk of the stage visits them "
        "as often as its passes say (trained = stored × passes).</p>" + table(header, rows)
    )


def _length_histograms(layout: BuildLayout) -> str:
    """Plot the per-source document length histograms the tokenize step left in BUILD/tokens/."""
    if not exists(layout.tokens_dir):
        return ""
    fs, inner = filesystem(layout.tokens_dir)
    files = sorted(p for p in fs.find(inner) if p.endswith("histogram.json"))
    if not files:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for path in files:
        with fs.open(path, "r") as f:
            hist = json.load(f)
        counts = hist["log2_histogram"]  # counts[b]: documents of [2^b, 2^(b+1)) tokens
        ax.stairs(counts, [2.0**b for b in range(len(counts) + 1)], label=path.rsplit("/", 2)[-2])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("document length (tokens)")
    ax.set_ylabel("documents")
    ax.legend()
    img = png(fig)
    plt.close(fig)
    return "<h2>Document lengths per source</h2>" + img


def _top_bins(bins: int) -> list[int]:
    """Return how many top bins make the top half and the top tenth of the score range (at least one)."""
    return [max(1, bins // 2), max(1, bins // 10)]


def _score_figures(counts: list[int], bins: int) -> list:
    """Return documents, mean score (bin centres) and the shares in the top half and top tenth of the range
    of a score histogram over `bins` equal bins of [0, 1]."""
    n = sum(counts)
    mean = sum((i + 0.5) / bins * c for i, c in enumerate(counts)) / n if n else 0.0
    tops = [sum(counts[bins - k :]) / n if n else 0.0 for k in _top_bins(bins)]
    return [n, mean, *(f"{x:.1%}" for x in tops)]


def _score_header(bins: int) -> list[str]:
    return ["mean score", *(f"score ≥ {1 - k / bins:g}" for k in _top_bins(bins))]


def _score_plot(curves: list[tuple[str, list[int]]], bins: int, ylabel: str) -> str:
    """Plot score histograms, each as shares of its documents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    edges = [i / bins for i in range(bins + 1)]
    for label, counts in curves:
        total = sum(counts) or 1
        ax.stairs([c / total for c in counts], edges, label=label)
    ax.set_xlabel("quality score")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    img = png(fig)
    plt.close(fig)
    return img


def _quality_section(m: Manifest) -> str:
    """The classifier's hash, how it was trained and its held-out figures, the thresholds top fractions
    resolved to, and, per source × subset, the documents scored and selected, their mean score (bin centres)
    and the shares in the top bins, and the score histograms plotted."""
    q = m.quality
    if q is None:
        return ""
    rows, curves = [], []
    for source, subsets in q.scores.items():
        for subset, s in subsets.items():
            scored, mean, *tops = _score_figures(s.scored, q.bins)
            threshold = "—" if s.min_score is None else f"{s.min_score:.4g}"
            if s.top_fraction is not None:
                threshold += f" (top {s.top_fraction:.0%})"
            rows.append([f"{source} / {subset}", scored, sum(s.selected), threshold, mean, *tops])
            curves.append((f"{source}/{subset}", s.scored))
    header = ["source / subset", "scored", "selected", "min_score", *_score_header(q.bins)]
    origin = "trained in the build (quality.train)" if q.trained_in_build else "given (quality.model)"
    real, junk = q.trained_on.get("real", 0), q.trained_on.get("junk", 0)
    intro = (
        f"<p>classifier {html.escape(q.model)} (sha256 {q.sha256[:16]}…, {q.bytes:,} bytes), {origin}, "
        f"trained on {real:,} real and {junk:,} junk documents; a score is the probability it gives a "
        "document of being real.</p>"
    )
    if q.heldout is not None:
        h = q.heldout
        intro += (
            f"<p>on {int(h['documents']):,} held-out documents ({int(h['real']):,} real, {int(h['junk']):,} "
            f"junk): held-out ROC AUC {h['roc_auc']:.4f}; at score ≥ {h['threshold']:g}, precision "
            f"{h['precision']:.4f}, recall {h['recall']:.4f}.</p>"
        )
    for profile, r in q.selection.items():
        intro += (
            f"<p>profile {html.escape(profile)}: top_fraction {r.top_fraction:g} → min_score "
            f"{r.min_score:.4f}, resolved on {r.documents:,} sampled documents before ingest (they kept "
            f"{r.kept:.1%}; the share kept of the build's documents is in the table).</p>"
        )
    img = _score_plot(curves, q.bins, "share of the subset's documents")
    return "<h2>Quality scores</h2>" + intro + table(header, rows) + img


def _stage_scores_section(m: Manifest) -> str:
    """Per stage, the scores of the documents it stores against the other stages', and what it draws by
    score."""
    stages = [s for s in m.stages if s.scores is not None]
    if not stages:
        return ""
    bins = stages[0].scores.bins
    rows, curves = [], []
    for s in stages:
        counts = [sum(c) for c in zip(*s.scores.histograms.values())] if s.scores.histograms else []
        draws = ", ".join(
            f"{name}: top {d.top_fraction:.3g} (score ≥ {d.min_score:.4g}, {d.share:.1%} of its documents)"
            for name, d in s.scores.draws.items()
        )
        rows.append([f"{s.number} {s.name}", draws or "every document", *_score_figures(counts, bins)])
        curves.append((f"{s.number} {s.name}", counts))
    header = ["stage", "drawn by score", "documents stored", *_score_header(bins)]
    img = _score_plot(curves, bins, "share of the stage's documents")
    return "<h2>Quality scores by stage</h2>" + table(header, rows) + img


MATCH_SAMPLES = 3  # matches shown per evaluation set


def _match_samples(layout: BuildLayout, per_set: int = MATCH_SAMPLES) -> dict[str, list[dict]]:
    """Return up to `per_set` match records per evaluation set from BUILD/decontamination/matches/."""
    folder = layout.decontam("matches")
    samples: dict[str, list[dict]] = {}
    if not exists(folder):
        return samples
    fs, inner = filesystem(folder)
    for path in sorted(p for p in fs.find(inner) if p.endswith(".jsonl")):
        with fs.open(path, "r") as f:
            for line in f:
                match = json.loads(line)
                bucket = samples.setdefault(match["benchmark"], [])
                if len(bucket) < per_set:
                    bucket.append(match)
    return samples


def _decontamination_section(m: Manifest, layout: BuildLayout) -> str:
    d = m.decontamination
    if d is None:
        return "<h2>Decontamination</h2><p>this build was not decontaminated (recipe: decontam)</p>"
    s = d.settings
    intro = (
        f"<p>{s['n']}-word n-grams, and texts of {s['min_words']} to {s['n'] - 1} words whole; action "
        f"<b>{html.escape(str(s['action']))}</b>"
        + (
            f" (±{s['margin']} characters, at least {s['min_chars_left']} left)"
            if s["action"] == "cut"
            else ""
        )
        + f"; index {d.index_bytes / 2**20:.1f} MiB, mapped by every ingest task. Dropped documents are in "
        "the accounting as filter reasons <code>decontam:&lt;set&gt;</code>.</p>"
    )
    sets = table(
        ["set", "items", "matchable", "keys", "common keys left out", "version", "sha256 of its text"],
        [
            [b.name, b.items, b.matchable_items, b.keys, b.common_keys, b.version, b.checksum[:16]]
            for b in d.benchmarks
        ],
    )
    rows = [
        [
            f"{name} / {source}",
            c.items,
            c.documents_dropped,
            c.documents_cut,
            c.chars_removed,
            "—" if c.tokens_removed is None else c.tokens_removed,
        ]
        for name, by_source in d.found.items()
        for source, c in by_source.items()
    ]
    found = (
        table(
            [
                "set / source",
                "items found",
                "documents dropped",
                "documents cut",
                "chars removed",
                "tokens removed",
            ],
            rows,
        )
        if rows
        else "<p>no evaluation item was found in any document</p>"
    )
    samples = [
        [name, m_["source"], m_["document"], m_["item"], m_["action"], m_["text"][:300]]
        for name, matches in _match_samples(layout).items()
        for m_ in matches
    ]
    sampled = (
        f"<h3>Matches (up to {MATCH_SAMPLES} per set; all in {html.escape(d.matches)})</h3>"
        + table(["set", "source", "document", "item", "action", "matched text"], samples)
        if samples
        else ""
    )
    return "<h2>Decontamination</h2>" + intro + sets + "<h3>Found, per set and source</h3>" + found + sampled


def render_report(manifest: Manifest, layout: BuildLayout) -> str:
    """Return the report page for a build as HTML."""
    parts = [
        f"<!doctype html><meta charset=utf-8><title>gristmill build {html.escape(manifest.name)}</title>",
        f"<style>{CSS}</style><h1>Build {html.escape(manifest.name)}</h1>",
        f"<p>recipe hash {manifest.recipe_hash}, seed {manifest.seed}"
        + (
            f", tokenizer {manifest.tokenizer.hash} (vocab {manifest.tokenizer.vocab_size:,})"
            if manifest.tokenizer
            else ""
        )
        + "</p>",
        _accounting_section(manifest),
        _filter_section(manifest),
        _decontamination_section(manifest, layout),
        _quality_section(manifest),
        _overlap_section(manifest),
        _length_histograms(layout),
        _stages_section(manifest),
        _stage_scores_section(manifest),
    ]
    return "\n".join(parts)


def write_report(build: str) -> str:
    """Write BUILD/reports/index.html from the build's manifest and step outputs; return its path."""
    layout = BuildLayout(build)
    page = render_report(read_manifest(build), layout)
    path = layout.report_file(REPORT_NAME)
    with atomic_write(path, "w") as f:
        f.write(page)
    return path
