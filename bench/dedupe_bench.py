"""MinHash signatures: gristmill's vectorised MinHash vs rensa (Rust), datasketch and datatrove's
MinhashDedupSignature, on the same documents (5-gram word shingles, 112 permutations or bins), per core
with one thread (the process pins itself to one CPU and calls `limit_threads(1)`; CPU time, as wall time on a
shared machine measures the neighbours), rounds interleaved, best kept; the exact-dedupe key on the same
documents; plus near-duplicate quality on planted pairs (through the whole pipeline, and from the signatures
alone on many more pairs) and the clustering's peak memory per million documents.

    python bench/dedupe_bench.py [--docs-mb 4] [--pairs 300] [--signature-pairs 4000] [--cluster-docs 100000]
                           [--repeats 3] [--signatures-only]

Text: the English prose files (README, docs, licences: *.md, *.rst, *.txt) of the installed Python packages,
cut into documents of about 3 KB. Prints a Markdown report (pasted into docs/dedupe.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import site
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from gristmill.pipelines.build.engine import run_locally
from gristmill.pipelines.config.dedupe import DedupeConfig
from gristmill.pipelines.steps.dedupe.minhash import _WORD, MinHasher, exact_hashes
from gristmill.sample.planted import TextMaker, shingle_set
from gristmill.threads import limit_threads

SHINGLE, BANDS, ROWS = 5, 14, 8


def prose_documents(megabytes: float) -> list[str]:
    """Return about `megabytes` MB of real English text from installed packages' docs, in ~3 KB documents."""
    docs, total = [], 0
    roots = [Path(p) for p in site.getsitepackages()]
    for path in sorted(p for root in roots for ext in ("md", "rst", "txt") for p in root.rglob(f"*.{ext}")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for start in range(0, len(text), 3000):
            chunk = text[start : start + 3000]
            if len(chunk.split()) >= 50:
                docs.append(chunk)
                total += len(chunk.encode())
        if total >= megabytes * 1e6:
            break
    return docs


def rensa_shingles(text: str) -> list[str]:
    """Return the word 5-grams of `text` as strings, in Python (what a rensa user writes)."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)]


def bench_signatures(docs: list[str], repeats: int) -> list[tuple[str, float]]:
    """Return (implementation, MB/s on one core, best of `repeats` rounds taken in turn) for each MinHash."""
    from datasketch import MinHash
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from rensa import RMinHash

    mb = sum(len(d.encode()) for d in docs) / 1e6
    ours = MinHasher(SHINGLE, BANDS, ROWS, seed=1)

    def datasketch_bulk() -> None:
        shingles = [[" ".join(s).encode() for s in shingle_set(d, SHINGLE)] for d in docs]
        MinHash.bulk(shingles, num_perm=BANDS * ROWS)

    def rensa_matrix() -> None:
        RMinHash.digest_matrix_from_token_sets([rensa_shingles(d) for d in docs], BANDS * ROWS, 1)

    with tempfile.TemporaryDirectory() as tmp:
        config = MinhashConfig(n_grams=SHINGLE, num_buckets=BANDS, hashes_per_bucket=ROWS)
        step = MinhashDedupSignature(tmp, config)
        documents = [Document(text=d, id=str(i)) for i, d in enumerate(docs)]
        runs = {
            "gristmill MinHasher (numpy)": lambda: ours.signatures(docs),
            "gristmill exact key (xxh3-128 of NFC, lower, squeezed)": lambda: exact_hashes(docs),
            "rensa RMinHash digest_matrix (Rust; Python shingling)": rensa_matrix,
            "datasketch MinHash.bulk": datasketch_bulk,
            "datatrove MinhashDedupSignature": lambda: step.run(iter(documents)),
        }
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(repeats):
            for name, fn in runs.items():
                start = time.process_time()
                fn()
                best[name] = min(best[name], time.process_time() - start)
    return [(name, mb / seconds) for name, seconds in best.items()]


def build_pairs(root: Path, pairs: list, config: DedupeConfig) -> np.ndarray:
    """Run the whole dedupe on originals + copies; return which copies were removed."""
    import pyarrow.parquet as pq
    from datatrove.data import Document

    from gristmill.pipelines.build.layout import BuildLayout
    from gristmill.pipelines.documents import DocumentFileWriter
    from gristmill.pipelines.recipe import Recipe, SourceConfig
    from gristmill.pipelines.steps.dedupe import dedupe_steps

    layout = BuildLayout(str(root))
    for source, texts in (("a", [p.original for p in pairs]), ("b", [p.copy for p in pairs])):
        writer = DocumentFileWriter(layout.documents_file(source, 0))
        for i, text in enumerate(texts):
            writer.write(Document(text=text, id=str(i), metadata={"source": source, "subset": "x"}))
        writer.close()
    recipe = Recipe(
        name="bench",
        output=str(root),
        dedupe=config,
        sources=[SourceConfig(name=s, format="jsonl", paths=["-"]) for s in ("a", "b")],
    )
    steps = dedupe_steps(recipe, layout, [("a", 0), ("b", 0)])
    peaks = {}
    for step in steps:
        tracemalloc.start()
        run_locally([step], layout)
        peaks[step.name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    removed = pq.read_table(layout.decisions_file("b", 0)).column("row").to_numpy()
    found = np.zeros(len(pairs), dtype=bool)
    found[removed] = True
    build_pairs.peaks = peaks
    return found


def quality(pairs_per_range: int, tmp: Path) -> list[str]:
    """Return report lines: recall at J ≥ 0.85, false positives at J ≤ 0.5, and recall near 0.7/0.8/0.9."""
    maker = TextMaker(seed=11)
    pairs = []
    for edits in ((1, 3), (17, 40), (4, 12)):  # 200 words: J ≈ 0.87-0.95, 0.2-0.5, 0.6-0.85
        pairs += maker.pairs(pairs_per_range, 200, edits, SHINGLE)
    found = build_pairs(tmp / "quality", pairs, DedupeConfig())
    sim = np.array([p.similarity for p in pairs])
    high, low = sim >= 0.85, sim <= 0.5
    lines = [
        f"- recall at J ≥ 0.85: **{found[high].mean():.3f}** ({high.sum()} pairs)",
        f"- false-positive rate at J ≤ 0.5: **{found[low].mean():.4f}** ({low.sum()} pairs)",
        "",
        "| Jaccard | LSH S-curve 1-(1-s^8)^14 | measured (±0.025, LSH + 0.7 verification) | pairs |",
        "|---|---|---|---|",
    ]
    for s in (0.7, 0.8, 0.9):
        near = np.abs(sim - s) <= 0.025
        measured = f"{found[near].mean():.3f}" if near.any() else "–"
        lines.append(f"| {s} | {1 - (1 - s**ROWS) ** BANDS:.3f} | {measured} | {near.sum()} |")
    return lines


def signature_quality(count: int) -> list[str]:
    """Return report lines: the signatures' Jaccard estimates and LSH candidates (no pipeline) on many pairs.

    Per similarity range: mean error and RMSE of the estimate (whole signature), the share of pairs that
    are LSH candidates against the S-curve, and the share found (candidate and 8-bit estimate ≥ 0.7).
    """
    from gristmill.pipelines.steps.dedupe.minhash import estimated_jaccard, sketch_bytes

    hasher = MinHasher(SHINGLE, BANDS, ROWS, seed=1)
    lines = [
        "| words | Jaccard | pairs | mean error | RMSE (classic MinHash: √(J(1−J)/112)) | LSH candidates "
        "(S-curve) | found (LSH + 0.7) |",
        "|---|---|---|---|---|---|---|",
    ]
    for words, edits in ((200, (1, 40)), (40, (1, 4))):
        maker = TextMaker(seed=17)
        pairs = maker.pairs(count, words, edits, SHINGLE)
        sim = np.array([p.similarity for p in pairs])
        a, _ = hasher.signatures([p.original for p in pairs])
        b, _ = hasher.signatures([p.copy for p in pairs])
        error = (a == b).mean(axis=1) - sim
        candidate = (a.reshape(-1, BANDS, ROWS) == b.reshape(-1, BANDS, ROWS)).all(axis=2).any(axis=1)
        found = candidate & (estimated_jaccard(sketch_bytes(a), sketch_bytes(b)) >= 0.7)
        for lo, hi in ((0.2, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 1.0)):
            near = (sim >= lo) & (sim < hi)
            if near.sum() < 30:
                continue
            mid = sim[near].mean()
            classic = np.sqrt(mid * (1 - mid) / (BANDS * ROWS))
            s_curve = (1 - (1 - sim[near] ** ROWS) ** BANDS).mean()
            lines.append(
                f"| {words} | {lo}–{hi} | {near.sum()} | {error[near].mean():+.4f} | "
                f"{np.sqrt((error[near] ** 2).mean()):.4f} ({classic:.4f}) | "
                f"{candidate[near].mean():.4f} ({s_curve:.4f}) | {found[near].mean():.4f} |"
            )
    return lines


def memory(docs: int, tmp: Path) -> list[str]:
    """Return report lines: peak traced memory of each step for `docs` documents in one partition."""
    maker = TextMaker(seed=5)
    # Each document 60 words; one in ten has a near copy (2 edits), as a typical web crawl's duplicate share.
    originals = [maker.document(60) for _ in range(docs // 2)]
    copies = [maker.edited(t, 2) if i % 10 == 0 else maker.document(60) for i, t in enumerate(originals)]
    pairs = [type("P", (), {"original": a, "copy": b})() for a, b in zip(originals, copies)]
    build_pairs(tmp / "memory", pairs, DedupeConfig(docs_per_partition=10**9))
    lines = ["| step | peak traced memory (MiB) | per million documents (MiB) |", "|---|---|---|"]
    for name, peak in build_pairs.peaks.items():
        if name.startswith("dedupe-components") and peak < 1 << 16:
            continue  # skipped after convergence
        lines.append(f"| {name} | {peak / 2**20:.1f} | {peak / 2**20 * 1e6 / docs:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs-mb", type=float, default=4.0)
    parser.add_argument("--pairs", type=int, default=300, help="planted pairs per similarity range")
    parser.add_argument("--cluster-docs", type=int, default=100_000)
    parser.add_argument("--signature-pairs", type=int, default=4000, help="pairs per length, no pipeline")
    parser.add_argument("--repeats", type=int, default=3, help="signature rounds (best kept)")
    parser.add_argument("--signatures-only", action="store_true", help="skip the quality and memory parts")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # per core, one thread: as a one-CPU Ray task runs
    limit_threads(1)
    docs = prose_documents(args.docs_mb)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    machine = platform.processor() or platform.machine()
    print(
        f"machine: {machine}, Python {platform.python_version()}, one process pinned to CPU {cpu}, "
        "one thread per library\n"
    )
    print(
        f"## MinHash signatures ({len(docs)} documents, {mb:.1f} MB, {SHINGLE}-gram shingles, "
        f"{BANDS * ROWS} permutations)\n"
    )
    results = dict(bench_signatures(docs, args.repeats))
    names = {
        "datatrove": "datatrove MinhashDedupSignature",
        "datasketch": "datasketch MinHash.bulk",
        "rensa": "rensa RMinHash digest_matrix (Rust; Python shingling)",
    }
    print(f"best of {args.repeats}\n")
    print("| implementation | MB/s per core | × datatrove | × datasketch | × rensa |\n|---|---|---|---|---|")
    for name, rate in results.items():
        ratios = " | ".join(f"{rate / results[names[b]]:.2f}" for b in ("datatrove", "datasketch", "rensa"))
        print(f"| {name} | {rate:.2f} | {ratios} |")
    if args.signatures_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        print("\n## Planted pairs (whole pipeline, default settings)\n")
        print("\n".join(quality(args.pairs, Path(tmp))))
        print(f"\n## Signatures on planted pairs ({args.signature_pairs} pairs per length, no pipeline)\n")
        print("\n".join(signature_quality(args.signature_pairs)))
        print(f"\n## Clustering memory ({args.cluster_docs} documents, one partition)\n")
        print("\n".join(memory(args.cluster_docs, Path(tmp))))


if __name__ == "__main__":
    main()
