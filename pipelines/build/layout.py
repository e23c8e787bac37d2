"""Where each build step keeps its output inside a build directory (one place, so steps agree)."""

from __future__ import annotations

from dataclasses import dataclass

RECIPE_MARKER = "recipe.json"  # written first: the mark of a gristmill build directory
TOKENIZER_TEMP_PREFIX = ".tokenizer."  # the tokenizer step trains into BUILD/.tokenizer.<random>/ first


@dataclass(frozen=True)
class BuildLayout:
    """Every path inside BUILD/. Per-task files are named `<task:05d>.<ext>` under a per-source folder.

    BUILD/
      recipe.json                            the recipe this directory builds (claimed on the first run)
      work_units.json                        the ingest tasks, planned once (task numbers keep meaning)
      manifest.json                          written last, atomically: the build is complete when present
      documents/<source>/<task>.parquet      read + filtered documents (id, text, source, subset, metadata)
      quarantine/<source>/<task>.jsonl       unreadable records: file, where, reason, excerpt
      dropped/<source>/<task>.jsonl          a sample of filtered documents per reason, for inspection
      decontamination/index/                 the evaluation items' index, built once (decontam_index step)
      decontamination/matches/<source>/<task>.jsonl   every item found in a document, and what was done
      decontamination/removed/<source>/<task>.parquet the text decontamination took out (for its tokens)
      quality/model.bin, model.bin.json, selection.json   the classifier (copied or trained) and its card;
                                             the thresholds each profile's top_fraction resolved to
      stats/<step>/<source>/<task>.json      per-task accounting (ingest, decontam, decontam_tokens, dedupe)
      dedupe/…                               dedupe work files, decisions, index, overlap.json
      clean/<source>/<task>.parquet          documents that survive dedupe: the input of tokenizing
      tokenizer/                             the tokenizer the shards were made with
      tokens/<source>/<task>.bin|.arrow|.json   token ids, their index, and length histograms
      plan/stage-<number>/shard-<n>.arrow, plan.json   the pieces of each shard, and the plan's summary
      plan/slice-<g>.json                    each plan task's summary (merged into plan.json)
      stage-<number>-<seq_len>/shard-<n>.arrow    packed shards (+ .json sidecar: the shard's manifest entry;
                                             .docs.parquet: its provenance, every segment's document)
      stage-<number>-<seq_len>/documents-<p>.parquet   the stage's document index, partition p (+ .json)
      provenance/stage-<number>/shard-<n>.arrow   each shard's index lines by partition (the index's input)
      reports/                               build report
      logs/<step>/                           datatrove logs, stats and completion markers (resume)
      logs/tasks/<step>.json                 per-task measurements of a Ray step: peak RSS, seconds, node
    """

    root: str

    def path(self, *parts: str) -> str:
        """Join `parts` under the build root."""
        return "/".join([self.root.rstrip("/"), *parts])

    def relative(self, path: str) -> str:
        """Return `path` (inside the build) relative to the build root."""
        return path.removeprefix(self.root.rstrip("/") + "/")

    def task_file(self, kind: str, source: str, task: int, ext: str) -> str:
        """Return e.g. BUILD/documents/<source>/00003.parquet."""
        return self.path(kind, source, f"{task:05d}.{ext}")

    # The build's claim and plan of work.
    @property
    def recipe_file(self) -> str:
        """BUILD/recipe.json."""
        return self.path(RECIPE_MARKER)

    @property
    def work_units_file(self) -> str:
        """BUILD/work_units.json."""
        return self.path("work_units.json")

    # Ingest.
    def documents_file(self, source: str, task: int) -> str:
        """BUILD/documents/<source>/<task>.parquet: the documents ingest kept."""
        return self.task_file("documents", source, task, "parquet")

    def quarantine_file(self, source: str, task: int) -> str:
        """BUILD/quarantine/<source>/<task>.jsonl."""
        return self.task_file("quarantine", source, task, "jsonl")

    def dropped_file(self, source: str, task: int) -> str:
        """BUILD/dropped/<source>/<task>.jsonl."""
        return self.task_file("dropped", source, task, "jsonl")

    def stats_file(self, step: str, source: str, task: int) -> str:
        """Return BUILD/stats/<step>/<source>/<task>.json."""
        return self.path("stats", step, source, f"{task:05d}.json")

    def task_runs_file(self, step: str) -> str:
        """BUILD/logs/tasks/<step>.json: rank → peak RSS, wall and CPU seconds, node and pid of each task
        (measurements, like the logs: not part of the build's reproducible content)."""
        return self.path("logs", "tasks", f"{step}.json")

    def task_error_file(self, step: str, rank: int) -> str:
        """BUILD/logs/errors/<step>-<rank>.txt: a task's error, where the driver can show it."""
        return self.path("logs", "errors", f"{step}-{rank:05d}.txt")

    @property
    def task_errors(self) -> str:
        """BUILD/logs/errors."""
        return self.path("logs", "errors")

    # Decontamination.
    def decontam(self, *parts: str) -> str:
        """BUILD/decontamination/<parts>."""
        return self.path("decontamination", *parts)

    @property
    def decontam_index_dir(self) -> str:
        """BUILD/decontamination/index: the index every ingest task matches documents against."""
        return self.decontam("index")

    def decontam_matches_file(self, source: str, task: int) -> str:
        """BUILD/decontamination/matches/<source>/<task>.jsonl: each item found, in which document, how."""
        return self.task_file("decontamination/matches", source, task, "jsonl")

    def decontam_removed_file(self, source: str, task: int) -> str:
        """BUILD/decontamination/removed/<source>/<task>.parquet: the text taken out of each document."""
        return self.task_file("decontamination/removed", source, task, "parquet")

    # Quality.
    @property
    def quality_dir(self) -> str:
        """BUILD/quality: the build's classifier (model.bin and its card), copied or trained, and the
        thresholds its selections resolved to."""
        return self.path("quality")

    @property
    def quality_model_file(self) -> str:
        """BUILD/quality/model.bin: the classifier every ingest task scores documents with."""
        return self.path("quality", "model.bin")

    @property
    def quality_selection_file(self) -> str:
        """BUILD/quality/selection.json: profile → the threshold its `top_fraction` resolved to."""
        return self.path("quality", "selection.json")

    # Dedupe.
    def dedupe(self, *parts: str) -> str:
        """BUILD/dedupe/<parts>."""
        return self.path("dedupe", *parts)

    @property
    def overlap_file(self) -> str:
        """BUILD/dedupe/overlap.json: the source × source duplicate matrix."""
        return self.dedupe("overlap.json")

    @property
    def dedupe_index_meta(self) -> str:
        """BUILD/dedupe/index/meta.json: the settings and files of the index later builds deduplicate against
        (`dedupe.against`)."""
        return self.dedupe("index", "meta.json")

    def dedupe_index_file(self, source: str, task: int) -> str:
        """BUILD/dedupe/index/<source>/<task>.arrow."""
        return self.task_file("dedupe/index", source, task, "arrow")

    def decisions_file(self, source: str, task: int) -> str:
        """BUILD/dedupe/decisions/<source>/<task>.parquet: each duplicate's cluster and kept copy."""
        return self.task_file("dedupe/decisions", source, task, "parquet")

    def documents_dir(self, kind: str) -> str:
        """BUILD/documents or BUILD/clean (`kind`): the document files of one phase."""
        if kind not in ("documents", "clean"):
            raise ValueError(f"no document files of kind {kind!r}")
        return self.path(kind)

    def clean_file(self, source: str, task: int) -> str:
        """BUILD/clean/<source>/<task>.parquet: the documents that survive dedupe."""
        return self.task_file("clean", source, task, "parquet")

    # Tokenizer, tokens, plan, shards.
    @property
    def tokenizer_dir(self) -> str:
        """BUILD/tokenizer."""
        return self.path("tokenizer")

    def token_file(self, source: str, task: int, ext: str = "arrow") -> str:
        """BUILD/tokens/<source>/<task>.arrow: a token file's index (.bin: its ids; .json: its histogram)."""
        return self.task_file("tokens", source, task, ext)

    def histogram_file(self, source: str) -> str:
        """BUILD/tokens/<source>/histogram.json."""
        return self.path("tokens", source, "histogram.json")

    @property
    def tokens_dir(self) -> str:
        """BUILD/tokens."""
        return self.path("tokens")

    @property
    def plan_file(self) -> str:
        """BUILD/plan.json, written last by the plan step."""
        return self.path("plan.json")

    def plan_slice_file(self, index: int) -> str:
        """BUILD/plan/slice-<g>.json: one plan task's summary, merged into plan.json."""
        return self.path("plan", f"slice-{index:05d}.json")

    def shard_layout_file(self, stage: int, shard: int) -> str:
        """BUILD/plan/stage-<number>/shard-<n>.arrow: the pieces the pack step gathers into shard n of stage
        number `stage`."""
        return self.path("plan", f"stage-{stage}", f"shard-{shard:05d}.arrow")

    def stage_dir(self, stage: int, seq_len: int) -> str:
        """Return BUILD/stage-<number>-<seq_len> of stage number `stage` (stages count from 1)."""
        return self.path(f"stage-{stage}-{seq_len}")

    def shard_file(self, stage: int, seq_len: int, shard: int, ext: str = "arrow") -> str:
        """BUILD/stage-<number>-<L>/shard-<n>.<ext> (.json: the shard's manifest entry)."""
        return f"{self.stage_dir(stage, seq_len)}/shard-{shard:05d}.{ext}"

    def index_file(self, stage: int, seq_len: int, partition: int, ext: str = "parquet") -> str:
        """BUILD/stage-<number>-<L>/documents-<p>.<ext>: partition p of the stage's document index (.json: its
        manifest entry)."""
        return f"{self.stage_dir(stage, seq_len)}/documents-{partition:05d}.{ext}"

    def index_lines_file(self, stage: int, shard: int) -> str:
        """BUILD/provenance/stage-<number>/shard-<n>.arrow: a shard's index lines, partitioned by the index
        partition of their id (what each index task reads its part of)."""
        return self.path("provenance", f"stage-{stage}", f"shard-{shard:05d}.arrow")

    # Logs and report.
    def logs(self, step: str) -> str:
        """Return the datatrove logging directory of a step."""
        return self.path("logs", step)

    def report_file(self, name: str) -> str:
        """BUILD/reports/<name>."""
        return self.path("reports", name)
