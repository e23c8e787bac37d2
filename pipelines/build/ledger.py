"""Per-task accounting: counts per subset that each build step writes, and that the manifest sums."""

from __future__ import annotations

from collections import defaultdict

from gristmill.storage import write_json


class Ledger:
    """Counts of one task of one step, by subset: plain counters plus reason → count maps.

    Written as `{subset: {"in": n, "quarantined": n, "filtered": {reason: n}, …}}`.
    """

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.reasons: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )

    def add(self, subset: str, key: str, n: int = 1) -> None:
        """Add `n` to counter `key` of `subset`."""
        self.counts[subset][key] += n

    def add_reason(self, subset: str, group: str, reason: str, n: int = 1) -> None:
        """Add `n` to `reason` within the map `group` (e.g. "filtered") of `subset`."""
        self.reasons[subset][group][reason] += n

    def to_dict(self) -> dict[str, dict]:
        """Return the counts as plain, key-sorted dicts."""
        out: dict[str, dict] = {}
        for subset in sorted(set(self.counts) | set(self.reasons)):
            entry: dict = dict(sorted(self.counts[subset].items()))
            for group, reasons in sorted(self.reasons[subset].items()):
                entry[group] = dict(sorted(reasons.items()))
            out[subset] = entry
        return out

    def write(self, path: str) -> None:
        """Write the counts atomically as JSON."""
        write_json(path, self.to_dict())
