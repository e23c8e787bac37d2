"""Where each build step keeps its output inside a build directory (one place, so steps agree)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildLayout:
    """Paths inside BUILD/. Per-task files are named `<task:05d>.<ext>` under a per-source folder.

    BUILD/
      manifest.json                          written last, atomically: the build is complete when present
      documents/<source>/<task>.parquet      read + filtered documents (id, text, source, subset, metadata)
      quarantine/<source>/<task>.jsonl       unreadable records: file, where, reason, excerpt
      dropped/<source>/<task>.jsonl          a sample of filtered documents per reason, for inspection
      stats/<step>/<source>/<task>.json      per-task accounting of each step
      dedupe/…                               dedupe indexes and decisions (see pipelines/dedupe)
      clean/<source>/<task>.parquet          documents that survive dedupe: the input of tokenizing
      tokenizer/                             the tokenizer the shards were made with
      stage-<i>-<seq_len>/shard-<n>.arrow    packed shards
      reports/                               build report
      logs/<step>/                           datatrove logs, stats and completion markers (resume)
    """

    root: str

    def path(self, *parts: str) -> str:
        """Join `parts` under the build root."""
        return "/".join([self.root.rstrip("/"), *parts])

    def task_file(self, kind: str, source: str, task: int, ext: str) -> str:
        """Return e.g. BUILD/documents/<source>/00003.parquet."""
        return self.path(kind, source, f"{task:05d}.{ext}")

    def stats_file(self, step: str, source: str, task: int) -> str:
        """Return BUILD/stats/<step>/<source>/<task>.json."""
        return self.path("stats", step, source, f"{task:05d}.json")

    def logs(self, step: str) -> str:
        """Return the datatrove logging directory of a step."""
        return self.path("logs", step)

    def stage_dir(self, index: int, seq_len: int) -> str:
        """Return BUILD/stage-<index>-<seq_len> (index counts from 1)."""
        return self.path(f"stage-{index}-{seq_len}")
