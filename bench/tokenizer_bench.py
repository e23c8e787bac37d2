"""Benchmark tokenizer training and encoding against the raw libraries, on one corpus in one run.

(a) training time and peak memory (each in a fresh child process, ru_maxrss) of `gristmill tokenizer train`
    (sentencepiece BPE from sentences and from pre-token counts, the llama2 profile, HF byte-level BPE with
    Llama 3's split pattern and with the bounded one) against plain sentencepiece training on the raw text
    (one line = one sentence, Llama-2 settings) and the plain HF `ByteLevelBPETokenizer` (GPT-2's pattern);
(b) encoding throughput per core, one thread (the process pins itself to one CPU and calls
    `gristmill.threads.limit_threads(1)`, as a one-CPU Ray task runs), in MB of text per CPU second (best of
    --repeats rounds taken in turn; CPU seconds, since the machine may be shared), on held-out text no
    model was trained on: per model, its reference encoder, `tokenizers`, kitoken, gigatoken and ours
    (`Tokenizer.encode_batch_flat`: the encoder its parity check chose), with the number of documents whose
    ids equal the reference's; then the build's tokenize step (`TokenizeDocuments.run`, one task: parquet
    in, token file out, the parity check of a fresh process included) on the llama2 model, and with
    --baseline-python the same step of another checkout (e.g. main's, in its own virtualenv) in this run;
(c) bytes per token of every model on the held-out text, by source (`gristmill tokenizer eval`), and on the
    tokenizers' own held-out sample (the same documents for every model: same seed, same corpus); for the
    byte-level models, the distinct pre-tokens of their training sample (the trainer's table).

Corpora (--corpus):
  generated  prose (pydoc topics) and code (the stdlib's .py files), repeated with seeded word substitutions
             until --mb megabytes; encoded on Debian package docs (/usr/share/doc, never trained on)
  real       Python's sources and language reference and the Debian docs, each file a document (cut at
             16 KB), code and prose; about 5% of the files (by a hash of their path) are held out, and
             training samples --mb megabytes of the rest (code 40%, prose 60%)

    python bench/tokenizer_bench.py --mb 20 --vocab 8000          # smoke run
    python bench/tokenizer_bench.py --corpus real --mb 50 --vocab 32000 --encode-mb 8 \\
        --baseline-python /work/main-before/.venv/bin/python      # the figures in docs/tokenizer.md
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SOURCES = {"prose": 0.6, "code": 0.4}  # training mixture
DOC_CHARS = 16_000  # real corpus: files are cut into documents of at most this many characters
SKIPPED_SUFFIXES = {".png", ".gif", ".jpg", ".svgz", ".woff", ".ttf", ".pdf", ".ico"}
GRISTMILL_KINDS = {  # `gristmill tokenizer train` options of each trained model
    "gristmill-sentences": [],
    "gristmill-counts": ["--count-pretokens", "always"],
    "gristmill-llama2": ["--profile", "llama2"],
    "gristmill-hf": ["--backend", "hf-bpe"],  # Llama 3's split pattern, the default
    "gristmill-hf-bounded": ["--backend", "hf-bpe", "--hf-pretokenizer", "bounded"],
}
PLAIN_KINDS = ("sentencepiece", "hf-tokenizers")
STEP_MODEL = "gristmill-llama2"


def make_corpus(directory: Path, megabytes: float, seed: int = 0) -> dict[str, Path]:
    """Write prose.jsonl and code.jsonl (about 60:40) of `megabytes` MB in total; return source → path."""
    from gristmill.sample.text import doc_topics, stdlib_top_modules

    bases = {"prose": doc_topics(), "code": [text for _, text in stdlib_top_modules()]}
    rng = random.Random(seed)
    words = sorted({w for text in bases["prose"][:200] for w in re.findall(r"[A-Za-z_]{3,12}", text)})
    paths = {}
    for source, docs in bases.items():
        path = directory / f"{source}.jsonl"
        paths[source] = path
        if path.exists():
            continue
        budget, written = megabytes * 1e6 * SOURCES[source], 0
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


def _read_text(path: Path) -> str | None:
    """Return a file's UTF-8 text (gunzipped when .gz), or None for binary or unreadable files."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None


def make_real_corpus(directory: Path) -> dict[str, Path]:
    """Write code.jsonl (Python sources), prose.jsonl (the language reference, Debian docs) and heldout.jsonl
    (the files whose path hashes into the held-out 5%, either source); return name → path."""
    from gristmill.sample.text import doc_topics, python_modules

    paths = {name: directory / f"{name}.jsonl" for name in ("code", "prose", "heldout")}
    if all(p.exists() for p in paths.values()):
        return paths
    files = {name: p.open("w", encoding="utf-8") for name, p in paths.items()}

    def put(source: str, key: str, text: str) -> None:
        held = hashlib.sha256(key.encode()).digest()[0] < 13  # 13/256: about 5% of the files
        for start in range(0, len(text), DOC_CHARS):
            line = json.dumps({"text": text[start : start + DOC_CHARS], "source": source})
            files["heldout" if held else source].write(line + "\n")

    with contextlib.ExitStack() as stack:
        for f in files.values():
            stack.enter_context(f)
        for i, text in enumerate(doc_topics()):
            put("prose", f"pydoc-topic-{i}", text)
        for name, text in python_modules():
            put("code", name, text)
        for path in sorted(Path("/usr/share/doc").rglob("*")):
            if path.is_file() and not path.is_symlink() and path.suffix not in SKIPPED_SUFFIXES:
                text = _read_text(path)
                if text:
                    put("prose", str(path), text)
    return paths


def debian_docs(megabytes: float) -> list[dict]:
    """Return about `megabytes` MB of real text never trained on by the generated corpus: Debian package docs
    (/usr/share/doc), as documents of at most 8 KB."""
    docs, total = [], 0
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if total >= megabytes * 1e6:
            break
        if not path.is_file() or path.is_symlink():
            continue
        text = _read_text(path)
        if text is None:
            continue
        for start in range(0, len(text), 8000):
            docs.append({"text": text[start : start + 8000], "source": "debian-docs"})
            total += len(docs[-1]["text"].encode())
    return docs


def heldout_docs(path: Path, megabytes: float, seed: int = 0) -> list[dict]:
    """Return `megabytes` MB of a held-out jsonl file's documents (text and source), drawn in a seeded
    order, so that every source is in them by its share."""
    lines = path.read_text(encoding="utf-8").splitlines()
    random.Random(seed).shuffle(lines)
    docs, total = [], 0
    for line in lines:
        if total >= megabytes * 1e6:
            break
        docs.append(json.loads(line))
        total += len(docs[-1]["text"].encode())
    return docs


def _texts(paths: dict[str, Path]) -> list[str]:
    return [json.loads(line)["text"] for s in SOURCES for line in paths[s].open(encoding="utf-8")]


def child_train(kind: str, corpus: Path, out: Path, vocab: int, megabytes: float) -> dict:
    """Train one way (in this child process); return seconds and peak RSS in MiB."""
    paths = {s: corpus / f"{s}.jsonl" for s in SOURCES}
    started = time.perf_counter()
    if kind in GRISTMILL_KINDS:
        from gristmill.cli import cli

        args = ["tokenizer", "train", str(out / kind), "--vocab-size", str(vocab), "--seed", "0"]
        args += ["--sample-bytes", str(int(megabytes * 1e6))]
        for source, path in paths.items():
            args += ["--files", f"{source}={path}", "--weight", f"{source}={SOURCES[source]}"]
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main([*args, *GRISTMILL_KINDS[kind], "--json"], standalone_mode=False)
    elif kind == "sentencepiece":
        import sentencepiece as spm

        from gristmill.tokenizer.train_sentencepiece import LLAMA2_TRAINER_SPEC

        raw = out / "raw.txt"  # the raw text, one line = one sentence, as plain sentencepiece reads it
        with raw.open("w", encoding="utf-8") as f:
            for text in _texts(paths):
                f.write(text.rstrip("\n") + "\n")
        spec = {**LLAMA2_TRAINER_SPEC, "vocab_size": vocab, "num_threads": os.cpu_count(), "minloglevel": 2}
        spec["input_sentence_size"] = int(megabytes * 1e6 / 60)  # about --mb MB of lines, as ours samples
        spm.SentencePieceTrainer.train(input=str(raw), model_prefix=str(out / "plain-sp"), **spec)
        raw.unlink()
    elif kind == "hf-tokenizers":
        from tokenizers import ByteLevelBPETokenizer

        texts, total, sample = _texts(paths), 0, []
        for text in random.Random(0).sample(texts, len(texts)):  # about --mb MB, as ours samples
            sample.append(text)
            total += len(text.encode())
            if total >= megabytes * 1e6:
                break
        tok = ByteLevelBPETokenizer()
        tok.train_from_iterator(
            sample, vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False
        )
        tok.save(str(out / "plain-hf.json"))
    else:
        raise ValueError(kind)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_child(kind: str, corpus: Path, out: Path, vocab: int, megabytes: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--corpus-dir", str(corpus), "--out", str(out)]
    cmd += ["--vocab", str(vocab), "--mb", str(megabytes)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pin_to_one_core() -> int:
    """Pin this process to its first allowed CPU, one thread per library (as a one-CPU Ray task runs)."""
    from gristmill.threads import limit_threads

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    limit_threads(1)
    return cpu


def _flat(result):
    """Return what an encoder returned as flat (ids, offsets): lists per text, an awkward array, or flat."""
    from gristmill.tokenizer.encoders import _flat_of_awkward, flatten

    if isinstance(result, tuple):
        return result
    if type(result).__module__.startswith("awkward"):
        return _flat_of_awkward(result)
    return flatten(result)


def _same_docs(ours, reference) -> int:
    """Return how many texts have the same ids in two flat results."""
    import numpy as np

    (a, a_at), (b, b_at) = ours, reference
    return sum(
        np.array_equal(a[a_at[i] : a_at[i + 1]], b[b_at[i] : b_at[i + 1]]) for i in range(len(a_at) - 1)
    )


def _throughputs(encoders: dict, texts: list[str], repeats: int) -> tuple[dict, dict]:
    """Return (MB per CPU second per encoder, best of `repeats` rounds taken in turn; its last output).

    `encoders` maps a label to a factory returning a batch function: every round builds a fresh one
    (untimed), so that no encoder meets texts its caches saw in an earlier round (gigatoken and `tokenizers`
    cache words); ours is a fresh `Tokenizer.load`, whose cache the parity check warmed as in a task."""
    nbytes = sum(len(t.encode()) for t in texts)
    best = dict.fromkeys(encoders, float("inf"))
    out = {}
    for _ in range(repeats):
        for name, make in encoders.items():
            fn = make()
            started = time.process_time()
            out[name] = fn(texts)
            best[name] = min(best[name], time.process_time() - started)
    return {name: nbytes / seconds / 1e6 for name, seconds in best.items()}, out


def _model_encoders(directory: Path) -> tuple[dict, str]:
    """Return encoder label → factory of a batch function for a trained model directory (or a bare
    tokenizer.json), the reference labelled "(reference)"; and what our Tokenizer chose."""
    import gigatoken
    import kitoken
    from tokenizers import Tokenizer as HFTokenizer

    from gristmill.tokenizer import interface
    from gristmill.tokenizer.encoders import gigatoken_document
    from gristmill.tokenizer.hf_json import sentencepiece_to_json

    def ours():
        interface._CHOSEN.clear()  # a fresh choice, as a task in a fresh worker process makes
        return interface.Tokenizer.load(directory).encode_batch_flat

    def tokenizers_batch(special_as_text: bool):
        hf = HFTokenizer.from_file(str(json_file))
        hf.encode_special_tokens = special_as_text
        return lambda b: [e.ids for e in hf.encode_batch_fast(b, add_special_tokens=False)]

    def kitoken_batch():
        if model.exists():
            kt = kitoken.Kitoken.from_sentencepiece_file(str(model))
        else:
            kt = kitoken.Kitoken.from_tokenizers_file(str(json_file))
        return lambda b: kt.encode_all(b, False)

    def gigatoken_batch():
        gt = gigatoken.Tokenizer.from_json(json.dumps(document))
        return lambda b: gt.encode_batch(b, parallel=False)

    def sentencepiece_batch():
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model))
        return lambda b: sp.encode(b, num_threads=1)

    model = directory / "tokenizer.model" if directory.is_dir() else directory.with_suffix(".model")
    json_file = directory / "tokenizer.json" if directory.is_dir() else directory
    if model.exists():
        document = json.loads(sentencepiece_to_json(model.read_bytes()))
        document = gigatoken_document(document, sentencepiece=True)
        encoders = {
            "sentencepiece encode (reference)": sentencepiece_batch,
            "tokenizers encode_batch_fast (our json)": lambda: tokenizers_batch(False),
        }
    else:
        document = gigatoken_document(json.loads(json_file.read_text("utf-8")))
        encoders = {"tokenizers encode_batch_fast (reference)": lambda: tokenizers_batch(True)}
    encoders["kitoken encode_all"] = kitoken_batch
    try:
        gigatoken_batch()
        encoders["gigatoken encode_batch (our json)"] = gigatoken_batch
    except Exception as e:
        print(f"    gigatoken cannot load it: {str(e).splitlines()[0][:100]}")
    encoders["ours encode_batch_flat"] = ours
    interface._CHOSEN.clear()
    return encoders, interface.Tokenizer.load(directory).encoder_choice.note


def encode_bench(models: dict[str, Path], texts: list[str], repeats: int) -> list[dict]:
    """Return one row per (model, encoder): MB per CPU second, × reference, × kitoken, ids = reference."""
    rows = []
    for kind, directory in models.items():
        encoders, note = _model_encoders(directory)
        print(f"  {kind}: ours chose {note}", flush=True)
        rates, out = _throughputs(encoders, texts, repeats)
        ref_label = next(label for label in encoders if "(reference)" in label)
        reference = _flat(out[ref_label])
        for label, rate in rates.items():
            rows.append(
                {
                    "model": kind,
                    "encoder": label,
                    "mb_per_cpu_s": rate,
                    "x_reference": rate / rates[ref_label],
                    "x_kitoken": rate / rates["kitoken encode_all"],
                    "ids_equal": f"{_same_docs(_flat(out[label]), reference)}/{len(texts)}",
                }
            )
    return rows


STEP_CHILD = """
import json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[3])})
from gristmill.threads import limit_threads
limit_threads(1)
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.steps.tokenize import TokenizeDocuments
from gristmill.tokenizer import interface
layout, best = BuildLayout(sys.argv[1]), {"fresh": float("inf"), "warm": float("inf")}
for _ in range(int(sys.argv[2])):
    for mode in best:
        if mode == "fresh":  # the task pays the parity check, as the first in a fresh worker process does
            interface._CHOSEN.clear()
        started = time.process_time()
        for _ in TokenizeDocuments(layout, [("docs", 0)]).run(rank=0):
            pass
        best[mode] = min(best[mode], time.process_time() - started)
stats = json.load(open(layout.token_file("docs", 0, "json")))
encoder = stats.get("encoder", "not recorded")
print(json.dumps({"cpu_s": best, "encoder": encoder, "tokens": stats["tokens"]}))
"""


def tokenize_step_bench(
    out: Path, tokenizer_dir: Path, texts: list[str], repeats: int, cpu: int, python: str
) -> dict:
    """Return the CPU seconds (best of `repeats`), encoder and tokens of the build's tokenize step on `texts`
    (one task) run by `python` (this checkout's, or another's), pinned to `cpu` in a fresh process: as the
    first task of a worker process ("fresh": the parity check included) and as a later one ("warm": the
    worker remembers the choice, as Ray's reused workers do)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gristmill.pipelines.build.layout import BuildLayout

    root = out / f"step-build-{hashlib.sha256(python.encode()).hexdigest()[:8]}"
    shutil.rmtree(root, ignore_errors=True)
    layout = BuildLayout(str(root))
    shutil.copytree(tokenizer_dir, layout.tokenizer_dir, ignore=shutil.ignore_patterns("train.jsonl"))
    clean = Path(layout.clean_file("docs", 0))
    clean.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), clean)
    done = subprocess.run(
        [python, "-c", STEP_CHILD, str(root), str(repeats), str(cpu)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the tokenize step under {python} failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(root, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def distinct_pretokens(directory: Path) -> int | None:
    """Return the distinct pre-tokens of a trained byte-level model's training sample (what its trainer
    holds one entry for), or None for a model without a pre-tokenizer or sample."""
    from tokenizers import Tokenizer as HFTokenizer

    sample = directory / "sample" / "train.jsonl"
    if not sample.is_file() or (directory / "tokenizer.model").exists():
        return None
    pre_tokenizer = HFTokenizer.from_file(str(directory / "tokenizer.json")).pre_tokenizer
    seen: set[str] = set()
    with sample.open(encoding="utf-8") as f:
        for line in f:
            seen.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(json.loads(line)["text"]))
    return len(seen)


def cli_eval(model: Path, files: Path) -> dict:
    """Return `gristmill tokenizer eval MODEL --files FILES --json` (this process) for one model."""
    from gristmill.cli import cli

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        cli.main(["tokenizer", "eval", str(model), "--files", str(files), "--json"], standalone_mode=False)
    result = json.loads(buffer.getvalue())
    return result[0] if isinstance(result, list) else result


def main() -> None:
    """Run the benchmark and print its tables (and write results.json beside the corpus)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=["generated", "real"], default="generated")
    parser.add_argument("--mb", type=float, default=10, help="MB to train on (generated: corpus size)")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--out", default="/tmp/gristmill-tokenizer-bench")
    parser.add_argument("--encode-mb", type=float, default=10, help="MB of held-out text to encode")
    parser.add_argument("--repeats", type=int, default=3, help="encoding rounds (best kept)")
    parser.add_argument("--skip-train", action="store_true", help="reuse earlier trained tokenizers")
    parser.add_argument("--baseline-python", help="also run the tokenize step with this interpreter")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_train(args.child, Path(args.corpus_dir), Path(args.out), args.vocab, args.mb)
        print(json.dumps(result))
        return
    out = Path(args.out) / f"{args.corpus}-{args.mb:g}mb-{args.vocab}"
    corpus = Path(args.out) / ("corpus-real" if args.corpus == "real" else f"corpus-{args.mb:g}mb")
    corpus.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    if args.corpus == "real":
        paths = make_real_corpus(corpus)
        docs = heldout_docs(paths["heldout"], args.encode_mb)
    else:
        paths = make_corpus(corpus, args.mb)
        docs = debian_docs(args.encode_mb)
    size = sum(paths[s].stat().st_size for s in SOURCES)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, python {platform.python_version()}; corpus {args.corpus} "
        f"{size / 1e6:.0f} MB (jsonl), training on {args.mb:g} MB, vocab {args.vocab}"
    )
    results: dict = {"corpus": args.corpus, "corpus_bytes": size, "vocab": args.vocab, "train": {}}
    print("\n(a) training: seconds, peak RSS MiB (fresh child process each)")
    for kind in (*GRISTMILL_KINDS, *PLAIN_KINDS):
        if args.skip_train and ((out / kind).exists() or (kind in PLAIN_KINDS and any(out.glob("plain-*")))):
            continue
        results["train"][kind] = r = _run_child(kind, corpus, out, args.vocab, args.mb)
        print(f"  {kind:22s} {r['seconds']:8.1f} s  {r['peak_rss_mib']:8.0f} MiB", flush=True)

    cpu = pin_to_one_core()
    texts = [d["text"] for d in docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    if args.corpus == "real":
        heldout_file = paths["heldout"]  # all of it (the eval samples --max-bytes, 20 MB)
    else:
        heldout_file = out / "encode-heldout.jsonl"
        heldout_file.write_text("".join(json.dumps(d) + "\n" for d in docs))
    print(
        f"\n(b) encoding {mb:.1f} MB of held-out text ({len(texts):,} documents, never trained on), "
        f"pinned to CPU {cpu}, one thread per library: MB per CPU second, best of {args.repeats}"
    )
    models = {
        "sentencepiece-bpe": out / "gristmill-sentences",
        "llama2": out / STEP_MODEL,
        "hf-bpe (llama3 split)": out / "gristmill-hf",
        "hf-bpe (bounded split)": out / "gristmill-hf-bounded",
        "plain HF (GPT-2 split)": out / "plain-hf.json",
    }
    rows = encode_bench(models, texts, args.repeats)
    results["encode"] = rows
    print(f"  {'model':24s} {'encoder':42s} {'MB/CPU-s':>8s} {'x ref':>6s} {'x kitoken':>9s}  ids = ref")
    for r in rows:
        print(
            f"  {r['model']:24s} {r['encoder']:42s} {r['mb_per_cpu_s']:8.2f} {r['x_reference']:5.2f}x "
            f"{r['x_kitoken']:8.2f}x  {r['ids_equal']}"
        )
    pythons = {"this checkout": sys.executable}
    if args.baseline_python:
        pythons["baseline"] = args.baseline_python
    step = {
        name: tokenize_step_bench(out, out / STEP_MODEL, texts, args.repeats, cpu, python)
        for name, python in pythons.items()
    }
    results["tokenize_step"] = step
    print(f"\n  tokenize step (TokenizeDocuments.run, one task, {STEP_MODEL}): MB per CPU second")
    for name, result in step.items():
        result["mb_per_cpu_s"] = rates = {mode: mb / cpu_s for mode, cpu_s in result["cpu_s"].items()}
        print(
            f"    {name:14s} first task of a worker (parity check included) {rates['fresh']:6.2f}, "
            f"later tasks {rates['warm']:6.2f}  ({result['encoder']}, {result['tokens']:,} tokens)"
        )
    if "baseline" in step:
        ours, base = step["this checkout"]["mb_per_cpu_s"], step["baseline"]["mb_per_cpu_s"]
        print(
            f"    ratio: first task {ours['fresh'] / base['fresh']:.2f}x, "
            f"later tasks {ours['warm'] / base['warm']:.2f}x"
        )

    print(f"\n(c) bytes per token on {heldout_file.name} by source (`gristmill tokenizer eval`), and on the")
    print("    tokenizers' own held-out sample (evaluation.json: the same documents for every model)")
    results["evaluation"] = {}
    for name, path in models.items():
        evaluation = cli_eval(path, heldout_file)
        by_source = {s: v["bytes_per_token"] for s, v in evaluation["sources"].items()}
        own = path / "evaluation.json"
        sample = json.loads(own.read_text())["total"]["bytes_per_token"] if own.exists() else None
        pretokens = distinct_pretokens(path) if path.is_dir() else None
        results["evaluation"][name] = {
            "heldout": by_source,
            "total": evaluation["total"],
            "sample": sample,
            "distinct_pretokens": pretokens,
        }
        shown = "  ".join(f"{s} {v:.3f}" for s, v in sorted(by_source.items()))
        print(
            f"  {name:24s} {shown}  total {evaluation['total']['bytes_per_token']:.3f}  "
            f"byte fallback {evaluation['total']['byte_fallback_rate']:.2%}  "
            f"sample {sample if sample is None else format(sample, '.3f')}"
            + (f"  distinct pre-tokens in its training sample {pretokens:,}" if pretokens else "")
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
