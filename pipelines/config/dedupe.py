"""Deduplication settings as they appear in a recipe."""

from __future__ import annotations

from pydantic import Field

from gristmill.models import StrictModel


class NearDedupeConfig(StrictModel):
    """MinHash-LSH near-duplicate detection: word n-gram shingles, signatures of `bands` × `rows` bins.

    The defaults (5-gram shingles, 14 bands of 8 rows = 112 bins, as FineWeb's 112 permutations) detect a
    pair with Jaccard similarity s with probability about 1 - (1 - s**rows)**bands: 0.70 → 0.50,
    0.80 → 0.92, 0.90 → 1.00.
    """

    enabled: bool = True
    shingle_size: int = Field(5, ge=1)
    bands: int = Field(14, ge=1)
    rows: int = Field(8, ge=1)
    seed: int = 1
    jaccard_threshold: float = Field(
        0.7,
        ge=0,
        le=1,
        description=(
            "candidate pairs whose Jaccard similarity estimated from the whole signature is below this "
            "are not duplicates (0 keeps every LSH candidate)"
        ),
    )

    @property
    def num_perm(self) -> int:
        """Signature length (bins; permutations in classic MinHash)."""
        return self.bands * self.rows


class DedupeConfig(StrictModel):
    """Exact (normalised-text hash) and near (MinHash-LSH) deduplication across all sources."""

    exact: bool = True
    near: NearDedupeConfig = NearDedupeConfig()
    against: list[str] = Field(
        default_factory=list, description="earlier build directories whose kept documents count as seen"
    )
    docs_per_partition: int = Field(
        2_000_000,
        ge=1,
        description=(
            "documents per hash partition of the clustering: sets its task count and per-task memory"
        ),
    )
