"""Benchmark tokenizer training and encoding against the raw libraries, on one generated corpus in one run.

(a) training time and peak memory (each in a fresh child process, ru_maxrss) of gristmill's
    `train_tokenizer` (sentences, and pre-token counts) against plain sentencepiece training on the raw
    text (one line = one sentence, Llama-2 settings) and the HF `tokenizers` byte-level BPE trainer;
(b) encoding throughput per core, one thread (the process pins itself to one CPU and calls
    `gristmill.threads.limit_threads(1)`, as a one-CPU Ray task runs), on --encode-mb MB of Debian package
    docs that no tokenizer was trained on: our `Tokenizer` (the fastest exact encoder its parity check
    chose) against sentencepiece, `tokenizers` and kitoken on the same models, with the number of
    documents whose ids equal the reference encoder's; then the build's tokenize step itself
    (`TokenizeDocuments.run`, one task: parquet in, token file out) on the same documents;
(c) bytes per token and byte-fallback rate on held-out documents: ours against a Llama-2-settings baseline
    trained on the same sample.

The corpus is prose (pydoc topics) and code (the stdlib's .py files), repeated with seeded word
substitutions until it reaches --mb megabytes.

    python bench/tokenizer_bench.py --mb 20 --vocab 8000          # smoke run
    python bench/tokenizer_bench.py --mb 20 --vocab 32000 --encode-mb 8     # the figures in docs/tokenizer.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path


def make_corpus(directory: Path, megabytes: float, seed: int = 0) -> dict[str, Path]:
    """Write prose.jsonl and code.jsonl (about 60:40) of `megabytes` MB in total; return source → path."""
    from gristmill.sample.text import doc_topics, stdlib_top_modules

    bases = {"prose": doc_topics(), "code": [text for _, text in stdlib_top_modules()]}
    shares = {"prose": 0.6, "code": 0.4}
    rng = random.Random(seed)
    words = sorted({w for text in bases["prose"][:200] for w in re.findall(r"[A-Za-z_]{3,12}", text)})
    paths = {}
    for source, docs in bases.items():
        path = directory / f"{source}.jsonl"
        paths[source] = path
        if path.exists():
            continue
        budget, written = megabytes * 1e6 * shares[source], 0
        with path.open("w", encoding="utf-8") as f:
            while written < budget:
                text = rng.choice(docs)
                # seeded variation: swap about 8% of the words, so copies are not identical
                text = re.sub(
                    r"[A-Za-z_]{3,12}",
                    lambda m: rng.choice(words) if rng.random() < 0.08 else m.group(0),
                    text,
                )
                f.write(json.dumps({"text": text, "source": source}) + "\n")
                written += len(text.encode())
    return paths


def _texts(paths: dict[str, Path]) -> list[str]:
    return [json.loads(line)["text"] for p in paths.values() for line in p.open(encoding="utf-8")]


def child_train(kind: str, corpus: Path, out: Path, vocab: int) -> dict:
    """Train one way (in this child process); return seconds and peak RSS in MiB."""
    paths = {s: corpus / f"{s}.jsonl" for s in ("prose", "code")}
    started = time.perf_counter()
    if kind in ("gristmill-sentences", "gristmill-counts", "gristmill-llama2", "gristmill-hf"):
        from rich.console import Console

        from gristmill.tokenizer.config import TokenizerTrainConfig
        from gristmill.tokenizer.corpus import read_files
        from gristmill.tokenizer.train import train_tokenizer

        settings = {
            "gristmill-sentences": {},
            "gristmill-counts": {"count_pretokens": "always"},
            "gristmill-llama2": {"profile": "llama2"},
            "gristmill-hf": {"backend": "hf-bpe"},
        }[kind]
        config = TokenizerTrainConfig(
            vocab_size=vocab, sample_bytes=10**12, heldout_bytes=2_000_000, heldout_fraction=0.01, **settings
        )
        docs = read_files([str(p) for p in paths.values()])
        train_tokenizer(config, docs, out / kind, seed=0, console=Console(quiet=True))
    elif kind == "sentencepiece":
        import sentencepiece as spm

        from gristmill.tokenizer.train_sentencepiece import LLAMA2_TRAINER_SPEC

        raw = out / "raw.txt"  # the raw text, one line = one sentence, as plain sentencepiece reads it
        with raw.open("w", encoding="utf-8") as f:
            for text in _texts(paths):
                f.write(text.rstrip("\n") + "\n")
        spec = {**LLAMA2_TRAINER_SPEC, "vocab_size": vocab, "num_threads": os.cpu_count(), "minloglevel": 2}
        spm.SentencePieceTrainer.train(input=str(raw), model_prefix=str(out / "plain-sp"), **spec)
    elif kind == "hf-tokenizers":
        from tokenizers import ByteLevelBPETokenizer

        tok = ByteLevelBPETokenizer()
        tok.train_from_iterator(
            _texts(paths), vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False
        )
        tok.save(str(out / "plain-hf.json"))
    else:
        raise ValueError(kind)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_child(kind: str, corpus: Path, out: Path, vocab: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--vocab",
        str(vocab),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def debian_docs(megabytes: float) -> list[str]:
    """Return about `megabytes` MB of real text never trained on: Debian package docs (/usr/share/doc)."""
    import gzip

    texts, total = [], 0
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if total >= megabytes * 1e6:
            break
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            continue
        for start in range(0, len(text), 8000):  # documents of at most 8 KB
            texts.append(text[start : start + 8000])
            total += len(texts[-1].encode())
    return texts


def pin_to_one_core() -> int:
    """Pin this process to its first allowed CPU, one thread per library (as a one-CPU Ray task runs)."""
    from gristmill.threads import limit_threads

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    limit_threads(1)
    return cpu


def _throughputs(encoders: dict, texts: list[str], repeats: int) -> tuple[dict, dict]:
    """Return (MB/s per encoder, best of `repeats` rounds taken in turn, and each encoder's last ids)."""
    nbytes = sum(len(t.encode()) for t in texts)
    best = dict.fromkeys(encoders, float("inf"))
    ids = {}
    for _ in range(repeats):
        for name, fn in encoders.items():
            started = time.perf_counter()
            ids[name] = fn(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: nbytes / seconds / 1e6 for name, seconds in best.items()}, ids


def encode_bench(out: Path, texts: list[str], repeats: int) -> list[tuple[str, str, float, str]]:
    """Return (backend, encoder, MB/s per core, ids identical to the reference) on both trained models."""
    import kitoken
    import sentencepiece as spm
    from tokenizers import Tokenizer as HFTokenizer

    from gristmill.tokenizer.interface import Tokenizer

    sp_dir, hf_dir = out / "gristmill-sentences", out / "gristmill-hf"
    sp = spm.SentencePieceProcessor(model_file=str(sp_dir / "tokenizer.model"))
    raw_json = HFTokenizer.from_file(str(sp_dir / "tokenizer.json"))
    kt_sp = kitoken.Kitoken.from_sentencepiece_file(str(sp_dir / "tokenizer.model"))
    ours = Tokenizer.load(sp_dir)
    raw_hf = HFTokenizer.from_file(str(hf_dir / "tokenizer.json"))
    raw_hf.encode_special_tokens = True
    kt_hf = kitoken.Kitoken.from_tokenizers_file(str(hf_dir / "tokenizer.json"))
    ours_hf = Tokenizer.load(hf_dir)
    print(f"  ours on sentencepiece-bpe: {ours.encoder_choice.note}")
    print(f"  ours on hf-bpe: {ours_hf.encoder_choice.note}")
    # every encoder returns each text's ids: the least any caller needs (lists, or our int32 arrays)
    encoders = {
        ("sentencepiece-bpe", "sentencepiece encode (reference)"): lambda b: sp.encode(b, num_threads=1),
        ("sentencepiece-bpe", "tokenizers encode_batch_fast (our json)"): lambda b: [
            e.ids for e in raw_json.encode_batch_fast(b, add_special_tokens=False)
        ],
        ("sentencepiece-bpe", "kitoken encode_all (from_sentencepiece_file)"): lambda b: kt_sp.encode_all(
            b, False
        ),
        ("sentencepiece-bpe", "ours encode_batch"): ours.encode_batch,
        ("hf-bpe", "tokenizers encode_batch_fast (reference)"): lambda b: [
            e.ids for e in raw_hf.encode_batch_fast(b, add_special_tokens=False)
        ],
        ("hf-bpe", "kitoken encode_all (from_tokenizers_file)"): lambda b: kt_hf.encode_all(b, False),
        ("hf-bpe", "ours encode_batch"): ours_hf.encode_batch,
    }
    rates, ids = _throughputs(encoders, texts, repeats)
    rows = []
    for (backend, name), rate in rates.items():
        reference = next(v for (b, n), v in ids.items() if b == backend and "reference" in n)
        same = sum(list(a) == list(r) for a, r in zip(ids[(backend, name)], reference))
        rows.append((backend, name, rate, f"{same}/{len(texts)}"))
    return rows


def tokenize_step_bench(out: Path, texts: list[str], repeats: int) -> float:
    """Return MB/s per core of the build's tokenize step (`TokenizeDocuments.run`, one task) on `texts`."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from gristmill.pipelines.build.layout import BuildLayout
    from gristmill.pipelines.steps.tokenize import TokenizeDocuments

    layout = BuildLayout(str(out / "step-build"))
    shutil.copytree(out / "gristmill-sentences", layout.tokenizer_dir, dirs_exist_ok=True)
    clean = Path(layout.clean_file("docs", 0))
    clean.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), clean)
    step = TokenizeDocuments(layout, [("docs", 0)])
    nbytes = sum(len(t.encode()) for t in texts)
    best = float("inf")
    for _ in range(repeats):  # a fresh load each time, as each task does (parity check included)
        started = time.perf_counter()
        for _ in step.run(rank=0):
            pass
        best = min(best, time.perf_counter() - started)
    return nbytes / best / 1e6


def main() -> None:
    """Run the benchmark and print its tables (and write results.json beside the corpus)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=10, help="corpus size in MB")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--out", default="/tmp/gristmill-tokenizer-bench")
    parser.add_argument("--encode-mb", type=float, default=10, help="MB of Debian docs to encode")
    parser.add_argument("--repeats", type=int, default=5, help="encoding rounds (best kept)")
    parser.add_argument("--skip-train", action="store_true", help="reuse earlier trained tokenizers")
    parser.add_argument("--child")
    parser.add_argument("--corpus")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_train(args.child, Path(args.corpus), Path(args.out), args.vocab)))
        return
    out = Path(args.out) / f"{args.mb:g}mb-{args.vocab}"
    corpus = Path(args.out) / f"corpus-{args.mb:g}mb"
    corpus.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    paths = make_corpus(corpus, args.mb)
    size = sum(p.stat().st_size for p in paths.values())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; corpus {size / 1e6:.0f} MB (jsonl), vocab {args.vocab}"
    )
    results: dict = {"corpus_bytes": size, "vocab": args.vocab, "train": {}}
    print("\n(a) training: seconds, peak RSS MiB (fresh child process each)")
    for kind in (
        "gristmill-sentences",
        "gristmill-counts",
        "gristmill-llama2",
        "sentencepiece",
        "gristmill-hf",
        "hf-tokenizers",
    ):
        if args.skip_train and (out / kind).exists():
            continue
        results["train"][kind] = r = _run_child(kind, corpus, out, args.vocab)
        print(f"  {kind:22s} {r['seconds']:8.1f} s  {r['peak_rss_mib']:8.0f} MiB", flush=True)
    cpu = pin_to_one_core()
    texts = debian_docs(args.encode_mb)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(
        f"\n(b) encoding {mb:.1f} MB of Debian package docs ({len(texts):,} documents, never trained on), "
        f"pinned to CPU {cpu}, one thread per library: MB/s per core, best of {args.repeats}"
    )
    rows = encode_bench(out, texts, args.repeats)
    results["encode_mb_per_s"] = {f"{b} / {e}": v for b, e, v, _ in rows}
    print(f"  {'backend':18s} {'encoder':46s} {'MB/s':>7s}  {'x ref':>6s} {'x kitoken':>9s}  ids = ref")
    for backend in ("sentencepiece-bpe", "hf-bpe"):
        ref = next(v for b, e, v, _ in rows if b == backend and "reference" in e)
        kit = next(v for b, e, v, _ in rows if b == backend and e.startswith("kitoken"))
        for b, e, v, same in rows:
            if b == backend:
                print(f"  {b:18s} {e:46s} {v:7.2f}  {v / ref:5.2f}x {v / kit:8.2f}x  {same}")
    step_rate = tokenize_step_bench(out, texts, args.repeats)
    results["tokenize_step_mb_per_s"] = step_rate
    sp_rate = next(v for b, e, v, _ in rows if b == "sentencepiece-bpe" and "reference" in e)
    print(
        f"  tokenize step (TokenizeDocuments.run, one task, parquet in, Arrow out): {step_rate:.2f} MB/s "
        f"per core, {step_rate / sp_rate:.2f}x sentencepiece encode"
    )
    print("\n(c) held-out compression (same sample, same held-out documents)")
    results["evaluation"] = {}
    for kind in ("gristmill-sentences", "gristmill-llama2", "gristmill-hf"):
        total = json.loads((out / kind / "evaluation.json").read_text())["total"]
        results["evaluation"][kind] = total
        print(
            f"  {kind:22s} bytes/token {total['bytes_per_token']:.3f}  "
            f"byte fallback {total['byte_fallback_rate']:.3%}  lossless {total['round_trip_lossless']}"
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
