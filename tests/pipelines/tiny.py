"""A tiny build for the packing and provenance tests: real JSON-lines inputs, clean files as ingest writes
them, a byte-level BPE, and the tokenize → plan → pack → index steps run in process (no Ray).

The inputs are the Python docs' topic pages (stdlib text) in three sources — `web` (two files of paragraphs),
`books` (one file of whole pages) and `hq` (one file, repeated by the plan) — each read by the generic jsonl
reader, so every document's id, file and record are what a real build records, and reading the input files
again finds each document (tests/pipelines/test_provenance.py).

Test modules import it as `from . import tiny`.
"""

from __future__ import annotations

import json
from pathlib import Path

from gristmill.pipelines.build.engine import run_locally
from gristmill.pipelines.build.layout import BuildLayout
from gristmill.pipelines.documents import DocumentFileWriter
from gristmill.pipelines.readers import reader_for
from gristmill.pipelines.recipe import Recipe, parse_recipe
from gristmill.pipelines.steps import shard_steps
from gristmill.pipelines.steps.pack import collect_stages, tokenizer_entry
from gristmill.sample.text import doc_topics, paragraphs
from gristmill.shards.manifest import Counts, Manifest, SourceEntry, write_manifest

SHARD_BYTES = 64 << 10  # small shards so that stages have several
STAGES = [
    {
        "name": "short",
        "seq_len": 64,
        "tokens": 30_000,
        "tokens_per_step": 640,
        "weights": {"web": 3, "books": 2},
    },
    {
        "name": "long",
        "seq_len": 256,
        "tokens": 40_000,
        "tokens_per_step": 1024,
        "weights": {"web": 1, "books": 1},
    },
    {"name": "hq", "seq_len": 256, "tokens": 12_000, "tokens_per_step": 1024, "weights": {"hq": 1}},
]


def corpus() -> dict[str, list[list[str]]]:
    """Return source → files → document texts, from the Python docs' topic pages (stdlib text)."""
    pages = doc_topics()
    short = [p for page in pages[:60] for p in paragraphs(page)]
    hq = [p for page in pages[60:] for p in paragraphs(page, min_chars=41)][:80]
    half = len(short) // 2
    return {"web": [short[:half], short[half:]], "books": [pages], "hq": [hq]}


def train_tokenizer(directory: Path, texts: list[str]) -> None:
    """Train a 500-id byte-level BPE (`</s>` ends documents, `<pad>` pads) into directory/tokenizer.json."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["</s>", "<pad>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    directory.mkdir(parents=True)
    tok.save(str(directory / "tokenizer.json"))


def make_inputs(root: Path, **settings) -> tuple[Recipe, list[tuple[str, int]], dict]:
    """Write the input files under root/inputs, the clean files the reader makes of them (as ingest writes
    them) and a tokenizer under `root`; return (recipe, inputs, corpus). `settings`: more recipe fields."""
    texts = corpus()
    train_tokenizer(root / "tokenizer", [t for files in texts.values() for f in files for t in f])
    for source, files in texts.items():
        for task, docs in enumerate(files):
            path = root / "inputs" / source / f"part-{task}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    recipe = parse_recipe(
        {
            "name": "tiny",
            "seed": 5,
            "output": str(root),
            "sources": [
                {"name": s, "format": "jsonl", "paths": [str(root / "inputs" / s / "*.jsonl")]} for s in texts
            ],
            "tokenizer": {"path": str(root / "tokenizer")},
            "stages": STAGES,
            **settings,
        }
    )
    layout = BuildLayout(str(root))
    inputs = []
    for source in recipe.sources:
        for task in range(len(texts[source.name])):
            writer = DocumentFileWriter(layout.clean_file(source.name, task))
            for doc in reader_for(source).iter_file(
                str(root / "inputs" / source.name / f"part-{task}.jsonl")
            ):
                writer.write(doc)
            writer.close()
            inputs.append((source.name, task))
    return recipe, inputs, texts


def write_tiny_manifest(recipe: Recipe, layout: BuildLayout) -> Manifest:
    """Write the manifest of a tiny build whose steps have run (its accounting: every document kept)."""
    accounting = {}
    for source in recipe.sources:
        documents = json.loads(Path(layout.histogram_file(source.name)).read_text())["documents"]
        accounting[source.name] = {"default": Counts(records_in=documents, kept=documents)}
    manifest = Manifest(
        name=recipe.name,
        recipe=recipe.content(),
        recipe_hash="test",
        seed=recipe.seed,
        accounting=accounting,
        sources=[
            SourceEntry(name=s.name, format=s.format, kind=s.kind, priority=s.priority)
            for s in recipe.sources
        ],
        tokenizer=tokenizer_entry(layout),
        stages=collect_stages(recipe, layout),
    )
    return write_manifest(layout.root, manifest)


def build_tiny(
    root: Path, shard_bytes: int = SHARD_BYTES, **settings
) -> tuple[Recipe, BuildLayout, Manifest, dict]:
    """Make the inputs and run the shard steps in process under `root`; return (recipe, layout, manifest,
    corpus)."""
    recipe, inputs, texts = make_inputs(root, **settings)
    layout = BuildLayout(str(root))
    run_locally(shard_steps(recipe, layout, inputs, shard_bytes=shard_bytes), layout)
    return recipe, layout, write_tiny_manifest(recipe, layout), texts
