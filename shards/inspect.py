"""What a build holds (stages, shards, rows, tokens per source, padding, splits) and one row as text."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from gristmill.errors import InputError
from gristmill.shards.manifest import Manifest, StageEntry
from gristmill.shards.reader import Row, open_shard


def padding_rate(stage: StageEntry) -> float:
    """Return the stage's padding over all tokens stored in its rows (padding included): what
    `shards inspect` and the build report both show."""
    stored = stage.tokens + stage.padding_tokens
    return stage.padding_tokens / stored if stored else 0.0


def build_summary(manifest: Manifest) -> dict:
    """Return the build's stages as JSON-ready data: sizes, padding and split rates, mixture and sampling."""
    stages = []
    for stage in manifest.stages:
        stages.append(
            {
                "number": stage.number,
                "name": stage.name,
                "seq_len": stage.seq_len,
                "shards": len(stage.shards),
                "rows": stage.rows,
                "tokens": stage.tokens,
                "trained_rows": stage.trained_rows,
                "trained_tokens": stage.trained_tokens,
                "padding_tokens": stage.padding_tokens,
                "padding_rate": padding_rate(stage),
                "split_documents": stage.split_documents,
                "tokens_per_step": stage.tokens_per_step,
                "bytes": sum(s.bytes for s in stage.shards),
                "sources": {
                    name: {
                        "tokens": n,
                        "trained_tokens": stage.source_trained_tokens.get(name, 0),
                        "share": stage.source_trained_tokens.get(name, 0) / max(stage.trained_tokens, 1),
                        "passes": stage.passes.get(name),
                        "sampling": stage.sampling.get(name),
                        "drawn_by_score": _draw(stage, name),
                    }
                    for name, n in stage.source_tokens.items()
                },
            }
        )
    tok = manifest.tokenizer
    return {
        "name": manifest.name,
        "seed": manifest.seed,
        "recipe_hash": manifest.recipe_hash,
        "sources": [s.name for s in manifest.sources],
        "tokenizer": tok.model_dump() if tok is not None else None,
        "stages": stages,
    }


def _draw(stage: StageEntry, source: str) -> dict | None:
    """Return the stage's draw of `source` by quality score (top fraction, lowest score), if it has one."""
    draw = stage.scores.draws.get(source) if stage.scores is not None else None
    return None if draw is None else {"top_fraction": draw.top_fraction, "min_score": draw.min_score}


def stage_table(summary: dict) -> Table:
    """Return a rich table with a line per stage."""
    table = Table(title=f"build {summary['name']}: stages")
    columns = ("#", "stage", "L", "shards", "rows", "tokens", "trained", "padding", "split docs", "size")
    for column in columns:
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in summary["stages"]:
        table.add_row(
            str(s["number"]),
            s["name"],
            str(s["seq_len"]),
            str(s["shards"]),
            f"{s['rows']:,}",
            f"{s['tokens']:,}",
            f"{s['trained_tokens']:,}",
            f"{s['padding_rate']:.3%}",
            f"{s['split_documents']:,}",
            f"{s['bytes'] / 2**20:,.1f} MiB",
        )
    return table


def mixture_table(summary: dict) -> Table:
    """Return a rich table of trained tokens, share, passes and sampling factor per source and stage."""
    table = Table(
        title="mixture: tokens trained (share), passes over the stored rows, sampling, top by score"
    )
    table.add_column("source")
    for s in summary["stages"]:
        table.add_column(s["name"], justify="right")
    for name in summary["sources"]:
        cells = []
        for s in summary["stages"]:
            entry = s["sources"].get(name)
            cells.append(
                "—"
                if entry is None
                else f"{entry['trained_tokens']:,} ({entry['share']:.1%}) "
                f"×{entry['passes']:.2f} ×{entry['sampling']:.2f}"
                + (
                    f", top {entry['drawn_by_score']['top_fraction']:.0%}"
                    if entry.get("drawn_by_score")
                    else ""
                )
            )
        table.add_row(name, *cells)
    return table


def find_stage(manifest: Manifest, stage: str) -> StageEntry:
    """Return the stage named `stage`, or numbered so (from 1); raise InputError listing the stages."""
    for entry in manifest.stages:
        if stage in (entry.name, str(entry.number)):
            return entry
    known = ", ".join(f"{s.number} ({s.name})" for s in manifest.stages) or "none"
    raise InputError(f"no stage {stage!r}; the stages are {known}")


@dataclass(frozen=True)
class RowLocation:
    """Where a stage's row lies: shard path (relative to the build) and the row within it."""

    shard: str
    row: int


def locate_row(stage: StageEntry, row: int) -> RowLocation:
    """Return the shard and local row of the stage's row `row` (counting across shards in manifest order)."""
    if not 0 <= row < stage.rows:
        raise InputError(f"stage {stage.name!r} has rows 0–{stage.rows - 1}, not {row}")
    for shard in stage.shards:
        if row < shard.rows:
            return RowLocation(shard.path, row)
        row -= shard.rows
    raise InputError(f"stage {stage.name!r} lists {stage.rows} rows but its shards hold fewer")


def read_row(build: str, manifest: Manifest, stage: str, row: int) -> tuple[RowLocation, Row]:
    """Return the location and content of row `row` of `stage` (name or number)."""
    found = find_stage(manifest, stage)
    where = locate_row(found, row)
    return where, open_shard(build.rstrip("/") + "/" + where.shard, seq_len=found.seq_len).row(where.row)


def render_row(row: Row, decode, eos_id: int, source: str) -> str:
    """Return a row as text: each document piece decoded under a marker line, then the padding."""
    lines = [f"source {source}, {row.used} of {len(row.tokens)} tokens used"]
    pieces = row.documents()
    for i, (piece, start) in enumerate(zip(pieces, row.doc_offsets[:-1])):
        ends = len(piece) and int(piece[-1]) == eos_id
        how = "ends the document" if ends else "continues in another row"
        lines.append(
            f"──── piece {i + 1}/{len(pieces)}: tokens {int(start)}–{int(start) + len(piece)} "
            f"({len(piece)}), {how} ────"
        )
        lines.append(decode(piece))
    lines.append(f"──── padding: {len(row.tokens) - row.used} tokens ────")
    return "\n".join(lines)
