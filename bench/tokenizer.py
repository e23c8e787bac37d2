"""Benchmark tokenizer training and encoding against the raw libraries, on one generated corpus in one run.

(a) training time and peak memory (each in a fresh child process, ru_maxrss) of gristmill's
    `train_tokenizer` (sentences, and pre-token counts) against plain sentencepiece training on the raw
    text (one line = one sentence, Llama-2 settings) and the HF `tokenizers` byte-level BPE trainer;
(b) batch-encoding throughput of our `Tokenizer` against raw sentencepiece and raw `tokenizers` on the
    same model (target: >= 0.9x the fastest raw library of the same backend);
(c) bytes per token and byte-fallback rate on held-out documents: ours against a Llama-2-settings baseline
    trained on the same sample.

The corpus is prose (pydoc topics) and code (the stdlib's .py files), repeated with seeded word
substitutions until it reaches --mb megabytes.

    python bench/tokenizer.py --mb 20 --vocab 8000          # smoke run
    python bench/tokenizer.py --mb 200 --vocab 32000 --out /tmp/tokbench
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
import sysconfig
import time
from pathlib import Path


def make_corpus(directory: Path, megabytes: float, seed: int = 0) -> dict[str, Path]:
    """Write prose.jsonl and code.jsonl (about 60:40) of `megabytes` MB in total; return source → path."""
    from pydoc_data.topics import topics

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.glob("*.py"))]
    bases = {"prose": list(topics.values()), "code": code}
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
                text = re.sub(r"[A-Za-z_]{3,12}", lambda m: rng.choice(words) if rng.random() < 0.08
                              else m.group(0), text)
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

        settings = {"gristmill-sentences": {}, "gristmill-counts": {"count_pretokens": "always"},
                    "gristmill-llama2": {"profile": "llama2"}, "gristmill-hf": {"backend": "hf-bpe"}}[kind]
        config = TokenizerTrainConfig(vocab_size=vocab, sample_bytes=10**12, heldout_bytes=2_000_000,
                                      heldout_fraction=0.01, **settings)
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
        tok.train_from_iterator(_texts(paths), vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                show_progress=False)
        tok.save(str(out / "plain-hf.json"))
    else:
        raise ValueError(kind)
    return {"seconds": time.perf_counter() - started,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(kind: str, corpus: Path, out: Path, vocab: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--corpus", str(corpus), "--out", str(out),
           "--vocab", str(vocab)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _throughputs(encoders: dict[str, object], texts: list[str], repeats: int = 5) -> dict[str, float]:
    """Return MB/s per encoder, best of `repeats` rounds taken in turn (shared machines are noisy)."""
    nbytes = sum(len(t.encode()) for t in texts)
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(repeats):
        for name, fn in encoders.items():
            started = time.perf_counter()
            fn(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: nbytes / seconds / 1e6 for name, seconds in best.items()}


def encode_bench(out: Path, texts: list[str]) -> list[tuple[str, str, float]]:
    """Return (backend, encoder, MB/s) for our Tokenizer and the raw libraries on the same models."""
    import sentencepiece as spm
    from tokenizers import Tokenizer as HFTokenizer

    from gristmill.tokenizer.interface import Tokenizer

    threads = os.cpu_count() or 1
    sp_dir, hf_dir = out / "gristmill-sentences", out / "gristmill-hf"
    sp = spm.SentencePieceProcessor(model_file=str(sp_dir / "tokenizer.model"))
    raw_json = HFTokenizer.from_file(str(sp_dir / "tokenizer.json"))
    ours = Tokenizer.load(sp_dir)
    raw_hf = HFTokenizer.from_file(str(hf_dir / "tokenizer.json"))
    ours_hf = Tokenizer.load(hf_dir)
    # every raw encoder returns the ids as Python lists: the least any caller needs
    encoders = {
        ("sentencepiece-bpe", "raw sentencepiece encode(num_threads)"):
            lambda b: sp.encode(b, num_threads=threads),
        ("sentencepiece-bpe", "raw tokenizers encode_batch_fast (our json)"):
            lambda b: [e.ids for e in raw_json.encode_batch_fast(b, add_special_tokens=False)],
        ("sentencepiece-bpe", "ours encode_batch"): ours.encode_batch,
        ("sentencepiece-bpe", "ours encode_batch_flat"): ours.encode_batch_flat,
        ("hf-bpe", "raw tokenizers encode_batch_fast"):
            lambda b: [e.ids for e in raw_hf.encode_batch_fast(b, add_special_tokens=False)],
        ("hf-bpe", "ours encode_batch"): ours_hf.encode_batch,
        ("hf-bpe", "ours encode_batch_flat"): ours_hf.encode_batch_flat,
    }
    return [(backend, name, rate) for (backend, name), rate in _throughputs(encoders, texts).items()]


def main() -> None:
    """Run the benchmark and print its tables (and write results.json beside the corpus)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=10, help="corpus size in MB")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--out", default="/tmp/gristmill-tokenizer-bench")
    parser.add_argument("--encode-mb", type=float, default=10, help="MB of held-out text to encode")
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
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; corpus {size / 1e6:.0f} MB (jsonl), vocab {args.vocab}")
    results: dict = {"corpus_bytes": size, "vocab": args.vocab, "train": {}}
    print("\n(a) training: seconds, peak RSS MiB (fresh child process each)")
    for kind in ("gristmill-sentences", "gristmill-counts", "gristmill-llama2", "sentencepiece",
                 "gristmill-hf", "hf-tokenizers"):
        results["train"][kind] = r = _run_child(kind, corpus, out, args.vocab)
        print(f"  {kind:22s} {r['seconds']:8.1f} s  {r['peak_rss_mib']:8.0f} MiB", flush=True)
    heldout = [json.loads(line)["text"] for line in (out / "gristmill-sentences" / "sample" / "heldout.jsonl")
               .open(encoding="utf-8")]
    texts = (heldout * (1 + int(args.encode_mb * 1e6 // max(1, sum(len(t) for t in heldout)))))
    texts = texts[: max(1, int(len(texts) * args.encode_mb * 1e6 / max(1, sum(len(t) for t in texts))))]
    print(f"\n(b) batch encoding of {sum(len(t.encode()) for t in texts) / 1e6:.1f} MB "
          f"({len(texts):,} documents): MB/s, best of 5")
    rows = encode_bench(out, texts)
    results["encode_mb_per_s"] = {f"{b} / {e}": v for b, e, v in rows}
    for backend in ("sentencepiece-bpe", "hf-bpe"):
        raw_best = max(v for b, e, v in rows if b == backend and e.startswith("raw"))
        for b, e, v in rows:
            if b == backend:
                print(f"  {b:18s} {e:46s} {v:7.2f} MB/s  {v / raw_best:5.2f}x fastest raw")
    print("\n(c) held-out compression (same sample, same held-out documents)")
    results["evaluation"] = {}
    for kind in ("gristmill-sentences", "gristmill-llama2", "gristmill-hf"):
        total = json.loads((out / kind / "evaluation.json").read_text())["total"]
        results["evaluation"][kind] = total
        print(f"  {kind:22s} bytes/token {total['bytes_per_token']:.3f}  "
              f"byte fallback {total['byte_fallback_rate']:.3%}  lossless {total['round_trip_lossless']}")
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
