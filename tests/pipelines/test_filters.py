"""The rule sets on crafted documents: each rule drops what it targets, with its reason, and keeps prose."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import numpy as np
import pytest
from datatrove.data import Document

from gristmill.pipelines.config.filters import (
    RULE_SETS,
    C4Config,
    CodeConfig,
    CuratedConfig,
    FiltersConfig,
    GopherQualityConfig,
)
from gristmill.pipelines.filters import (
    RULE_SET_CLASSES,
    C4Filter,
    CodeFilter,
    FineWebFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    gopher_repetition,
    make_filters,
)
from gristmill.pipelines.filters.c4 import count_sentences
from gristmill.pipelines.filters.curated import CuratedFilter
from gristmill.pipelines.filters.datatrove import RuleSetFilter
from gristmill.pipelines.filters.gopher_repetition import (
    _repeated_ngram_chars,
    _top_ngram_chars,
    repeated_ngram_chars,
    top_ngram_chars,
)
from gristmill.pipelines.filters.profiles import ProfileScope
from gristmill.pipelines.filters.text_stats import batch_words, lengths, string_hashes, words
from gristmill.sample.text import bench_documents

PROSE = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch of his house.\n"
    "It was a warm afternoon, and the fields had been cut the week before, so that the air smelled of hay.\n"
    "Nobody in the village could remember a summer as dry as this one, and the wells were running low.\n"
    "The children spent their days by the river, which was the only place that still felt cool to them.\n"
    "In the evening the farmer sat with his wife and talked about the harvest and the price of grain.\n"
    "They agreed that they would sell the old horse in the autumn and buy a new plough with the money.\n"
)

CODE = '''import os


def list_files(root: str) -> list[str]:
    """Return the files under root, sorted."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            found.append(os.path.join(directory, name))
    return sorted(found)
'''


def verdict(flt, text: str) -> str | None:
    return flt.check_batch([text])[0]


def test_prose_passes_every_text_rule_set():
    for flt in make_filters(FiltersConfig(), "web"):
        assert verdict(flt, PROSE) is None, flt.name


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Too short to be a document.", "min_doc_words"),
        (" ".join(["a"] * 60) + " the and of", "min_avg_word_length"),
        (" ".join(["internationalisation"] * 60) + " the and", "max_avg_word_length"),
        (PROSE + " #tag" * 60, "hash_ratio"),
        (PROSE + " ..." * 60, "ellipsis_ratio"),
        ("\n".join(f"• item number {i} of the list with the words" for i in range(30)), "bullet_lines"),
        ("\n".join(f"and then the story went on and on {i}..." for i in range(10)), "ellipsis_lines"),
        (PROSE + " 12345 67890" * 60, "alpha_words"),
        (" ".join(f"word{i} apple banana cherry" for i in range(20)), "stop_words"),
    ],
)
def test_gopher_quality_rules(text, reason):
    assert verdict(GopherQualityFilter(), text) == f"gopher_quality:{reason}"


def test_gopher_quality_zero_threshold_turns_a_rule_off():
    text = PROSE + " #tag" * 20  # 20 hashes in 150 words: over 0.1, while 87% of words still hold letters
    assert verdict(GopherQualityFilter(), text) == "gopher_quality:hash_ratio"
    assert verdict(GopherQualityFilter(GopherQualityConfig(max_symbol_word_ratio=0)), text) is None
    assert verdict(GopherQualityFilter(), "") == "gopher_quality:min_doc_words"
    assert verdict(GopherQualityFilter(GopherQualityConfig(min_doc_words=0)), "") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("\n\n".join([PROSE] * 3), "dup_para_frac"),
        ("\n".join(["the same line again and again"] * 10 + [PROSE]), "dup_line_frac"),
        (PROSE + " " + " ".join(["all work and no play"] * 40), "top_2_gram"),
    ],
)
def test_gopher_repetition_rules(text, reason):
    assert verdict(GopherRepetitionFilter(), text) == f"gopher_repetition:{reason}"


def test_repeated_ngrams_follow_datatrove_walk():
    # datatrove: a repeated n-gram counts and the walk jumps n words, skipping the n-grams it jumps over
    def reference(tokens, n):
        seen, repeated, i = set(), 0, 0
        while i < len(tokens) - n + 1:
            gram = "".join(tokens[i : i + n])
            if gram in seen:
                repeated += len(gram)
                i += n
            else:
                seen.add(gram)
                i += 1
        return repeated

    rng = random.Random(3)
    for _ in range(200):
        tokens = [rng.choice(["ab", "cd", "ef", "gh"]) for _ in range(rng.randint(0, 60))]
        ids, sizes = string_hashes(tokens), lengths(tokens)
        for n in (2, 3, 5):
            for counter in (repeated_ngram_chars, _repeated_ngram_chars):  # the C half and its twin
                assert counter(ids, sizes, 0, len(tokens), n, float("inf")) == reference(tokens, n)


def test_ngram_counts_follow_the_definitions_per_document_of_a_batch():
    """Counted over a range of a batch's word arrays, each document gets the counts it gets alone, and the
    top n-gram is datatrove's `Counter.most_common(1)` count × length; C half and twin alike."""
    rng = random.Random(11)
    vocabulary = ["ab", "cd", "ef", "gh", "ij"]
    docs = [[rng.choice(vocabulary) for _ in range(rng.randint(0, 50))] for _ in range(40)]
    tokens = [t for doc in docs for t in doc]
    ids, sizes = string_hashes(tokens), lengths(tokens)
    start = 0
    for doc in docs:
        end = start + len(doc)
        alone_ids, alone_sizes = string_hashes(doc), lengths(doc)
        for n in (2, 3, 4):
            for top, repeated in (
                (top_ngram_chars, repeated_ngram_chars),
                (_top_ngram_chars, _repeated_ngram_chars),
            ):
                assert top(ids, sizes, start, end, n) == top(alone_ids, alone_sizes, 0, len(doc), n)
                assert repeated(ids, sizes, start, end, n, np.inf) == repeated(
                    alone_ids, alone_sizes, 0, len(doc), n, np.inf
                )
                grams = Counter(" ".join(doc[i : i + n]) for i in range(len(doc) - n + 1)).most_common(1)
                expected = len(grams[0][0]) * grams[0][1] if grams else 0
                assert top(ids, sizes, start, end, n) == expected, (doc, n)
        start = end


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (PROSE + "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", "lorem_ipsum"),
        (PROSE + "Call it as f(x) { return x; } in the code.\n", "curly_bracket"),
        ("One line here.\nAnother line here.\nno punctuation here\n", "min_num_sentences"),
    ],
)
def test_c4_rules(text, reason):
    assert verdict(C4Filter(), text) == f"c4:{reason}"


def test_c4_drops_only_for_kept_lines_and_never_rewrites():
    # "{" on a line C4 would delete anyway (no terminal punctuation) does not drop the document
    text = PROSE + "for (i = 0; i < n; i++) {\n"
    assert verdict(C4Filter(), text) is None
    assert count_sentences("He said so. Then he left! Why?") == 3
    assert count_sentences('"Stop." Then go.') == 2


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("   \n", "empty"),
        (
            "\n".join(["A list item without an end"] * 3 + ["Another item without one"] * 10),
            "line_punct_ratio",
        ),
        ("\n".join([f"Short line {i}." for i in range(20)]), "short_line_ratio"),
        (PROSE + PROSE.split("\n")[0] + "\n", "char_dup_ratio"),
    ],
)
def test_fineweb_rules(text, reason):
    assert verdict(FineWebFilter(), text) == f"fineweb:{reason}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("x = 1\n" + "y = '" + "a" * 1200 + "'\n", "max_line_length"),
        (
            "\n".join(
                [
                    "value = compute(alpha, beta, gamma, delta) + another_value * yet_another_factor + 1"
                    " - offset_value + the_last_correction_term"
                ]
                * 30
            ),
            "mean_line_length",
        ),
        ("\n".join(["0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,"] * 30), "alpha_fraction"),
        ("// ---- ++++ ----\n" * 40, "alphanum_fraction"),
        ("# Code generated by protoc-gen-go. DO NOT EDIT.\n" + CODE, "autogenerated"),
        (
            "[\n"
            + ",\n".join(
                json.dumps({"id": i, "name": f"item number {i}", "note": "kept for the records"})
                for i in range(400)
            )
            + "\n]",
            "data_file",
        ),
        (
            "blob = '"
            + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 3
            + "'\n"
            + ("'" + "QUJD" * 20 + "',\n") * 40,
            "encoded_data",
        ),
    ],
)
def test_code_rules(text, reason):
    assert verdict(CodeFilter(), text) == f"code:{reason}"


def test_code_passes_ordinary_source_and_uses_paths_for_data_files():
    flt = CodeFilter()
    assert verdict(flt, CODE) is None
    long_config = "\n".join(f"key_{i}: value {i}" for i in range(2000))
    assert flt.check_batch([long_config, long_config], ["conf/settings.yaml", "src/notes.py"]) == [
        "code:data_file",
        None,
    ]
    assert verdict(CodeFilter(CodeConfig(max_data_file_chars=0)), long_config) is None
    with pytest.raises(ValueError, match="1 texts but 2 paths"):
        flt.check_batch([CODE], ["a.py", "b.py"])


def test_make_filters_by_profile_and_switches():
    assert [f.name for f in make_filters(FiltersConfig(), "web")] == [
        "gopher_quality",
        "gopher_repetition",
        "c4",
        "fineweb",
    ]
    with pytest.raises(ValueError, match="unknown filter profile 'text'"):  # `web` has no old alias
        make_filters(FiltersConfig(), "text")
    assert [f.name for f in make_filters(FiltersConfig(), "code")] == ["curated", "code"]
    assert [f.name for f in make_filters(FiltersConfig(), "curated")] == ["curated"]
    assert make_filters(FiltersConfig(), "none") == []
    off = FiltersConfig.model_validate({"c4": {"enabled": False}, "code": {"enabled": False}})
    assert [f.name for f in make_filters(off, "web")] == ["gopher_quality", "gopher_repetition", "fineweb"]
    assert [f.name for f in make_filters(off, "code")] == ["curated"]
    assert make_filters(FiltersConfig(enabled=False), "web") == []
    mine = FiltersConfig.model_validate({"profiles": {"mine": ["fineweb", "curated"]}})
    assert [f.name for f in make_filters(mine, "mine")] == ["curated", "fineweb"]  # chain order
    with pytest.raises(ValueError, match="unknown filter profile 'video'"):
        make_filters(FiltersConfig(), "video")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "curated:empty"),
        (" \n\t\n", "curated:empty"),
        ("Click here to continue.", "curated:too_short"),
        (PROSE + "\x01\x02\x03\x04\x05" * 10, "curated:binary"),
        (PROSE + "\ufffd" * 40, "curated:binary"),
        (PROSE.split("\n")[0] + "\n" + "\n".join([PROSE.split("\n")[1]] * 10), "curated:dup_line_chars"),
        ("\n".join(["ok"] * 8 + [PROSE]), "curated:top_line"),
        (PROSE + " buy" * 200, "curated:top_word"),
        (PROSE, None),
        (CODE, None),
        (PROSE + "\x0c\n" + PROSE.upper(), None),  # a form feed is text (old sources separate pages so)
    ],
)
def test_curated_rules(text, reason):
    assert verdict(CuratedFilter(), text) == reason


def test_curated_zero_threshold_turns_a_rule_off():
    assert verdict(CuratedFilter(CuratedConfig(min_words=0)), "Click here.") is None
    assert verdict(CuratedFilter(CuratedConfig(max_top_word_frac=0)), PROSE + " buy" * 200) is None


def test_alpha_words_counts_tokens_or_whitespace_words():
    # Prose heavy in punctuation: spaCy's tokens count each comma, bracket and quote as a word, letterless.
    line = '"Yes," she said (quietly), "the old house - with the garden - is ours; we have it."'
    text = " ".join([line] * 8)
    tokens = GopherQualityFilter(GopherQualityConfig())
    whitespace = GopherQualityFilter(GopherQualityConfig(alpha_words="whitespace"))
    assert verdict(tokens, text) == "gopher_quality:alpha_words"
    assert verdict(whitespace, text) is None
    numbers = " ".join(f"{i}01 {i}02 {i}03 with the measurements" for i in range(40))  # 3 of 6: no letter
    assert verdict(whitespace, numbers) == "gopher_quality:alpha_words"
    with pytest.raises(ValueError):
        GopherQualityConfig(alpha_words="letters")


def test_every_rule_set_has_settings_and_an_implementation_of_one_name():
    assert tuple(RULE_SET_CLASSES) == RULE_SETS  # the registry in chain order
    for name, cls in RULE_SET_CLASSES.items():
        settings = FiltersConfig().rule_set(name)
        assert type(settings).__name__.lower().startswith(name.replace("_", ""))
        assert cls(settings).name == name
    with pytest.raises(ValueError, match="unknown rule set 'pii'"):
        FiltersConfig().rule_set("pii")


def test_the_old_nested_settings_name_their_new_place():
    with pytest.raises(ValueError, match=r"`filters.text` is gone.*filters\.c4, filters\.fineweb"):
        FiltersConfig.model_validate({"text": {"c4": {"enabled": False}, "fineweb": {}}})


def test_rule_sets_judge_only_the_subsets_whose_profile_runs_them():
    scope = ProfileScope(
        {"pile": {"Github": "code", "Pile-CC": "web", "*": "curated"}}, FiltersConfig().profiles
    )
    gopher = RuleSetFilter(GopherQualityFilter(), scope=scope)
    curated = RuleSetFilter(CuratedFilter(), scope=scope)
    docs = [
        Document(text=CODE, id=subset, metadata={"source": "pile", "subset": subset})
        for subset in ("Github", "Pile-CC", "Books3")
    ]
    docs.append(Document(text=CODE, id="other", metadata={"source": "elsewhere", "subset": "Github"}))
    assert [d.id for d in gopher.run(iter(docs))] == ["Github", "Books3", "other"]  # code fails web rules
    assert [d.id for d in curated.run(iter(docs))] == ["Github", "Pile-CC", "Books3", "other"]
    assert curated.filter(Document(text="", id="e", metadata={"source": "pile", "subset": "Books3"})) == (
        False,
        "curated:empty",
    )
    assert scope.profile("pile", "Github") == "code" and scope.profile("elsewhere", "x") is None


def test_words_follow_spacy_conventions():
    assert words("Don't stop, it's U.S. e.g. well-known (see http://x.com/a). 20% I/O.") == [
        "Do",
        "n't",
        "stop",
        ",",
        "it",
        "'s",
        "U.S.",
        "e.g.",
        "well",
        "-",
        "known",
        "(",
        "see",
        "http://x.com/a",
        ")",
        ".",
        "20",
        "%",
        "I",
        "/",
        "O.",
    ]
    assert words("You cannot do that; def f(): pass") == [
        "You",
        "can",
        "not",
        "do",
        "that",
        ";",
        "def",
        "f",
        "(",
        "):",
        "pass",
    ]


def test_batch_words_reuses_the_same_texts_only():
    a, b = PROSE + "a", PROSE + "b"
    first = batch_words([a, b])
    again = batch_words([b])
    assert again[0] is first[1]
    assert batch_words([a])[0] == words(a)


def test_verdicts_do_not_depend_on_the_batch():
    texts = [PROSE, "", "\n".join(["x"] * 50), PROSE * 3]
    for flt in make_filters(FiltersConfig(), "web"):
        assert flt.check_batch(texts) == [verdict(flt, t) for t in texts]


def test_datatrove_adapters_count_named_reasons():
    step = RuleSetFilter(GopherQualityFilter())
    docs = [Document(text=PROSE, id="keep"), Document(text="Too short.", id="drop")]
    kept = list(step.run(iter(docs)))
    assert [d.id for d in kept] == ["keep"]
    assert step.stats["dropped_gopher_quality:min_doc_words"].total == 1
    code = RuleSetFilter(CodeFilter())
    config = "\n".join(f"key_{i}: value {i}" for i in range(2000))
    doc = Document(text=config, id="c", metadata={"repo_path": "deploy/values.yaml"})
    assert code.filter(doc) == (False, "code:data_file")


def test_c4_window_check_never_misses_a_long_word():
    # a run of `size` non-space characters always covers a whole aligned window, so no run is ever missed
    from gristmill.pipelines.filters.c4 import _may_hold_run

    rng = random.Random(0)
    for size in (1, 2, 3, 7, 8, 1001):
        run = re.compile(rf"\S{{{size}}}")
        for _ in range(2_000):
            text = "".join(rng.choice(["a", "b", " ", "\n", "\u00a0", "x" * (size // 3)]) for _ in range(30))
            if run.search(text):
                assert _may_hold_run(text, size), (text, size)
    assert not _may_hold_run("word " * 2_000, 1001)


def test_c4_drops_lines_with_a_word_over_the_limit():
    long_word = "x" * 1001
    config = C4Config(min_num_sentences=-1, filter_no_terminal_punct=False, min_words_per_line=-1)
    # a line with a word over the limit is removed, not judged: its "{" does not drop the document
    assert verdict(C4Filter(config), PROSE + f"\n{{ {long_word} }}") is None
    assert verdict(C4Filter(config), PROSE + f"\n{{ {long_word[1:]} }}") == "c4:curly_bracket"
    assert (
        verdict(C4Filter(C4Config(max_word_length=-1)), PROSE + f"\n{{ {long_word} }}.") == "c4:curly_bracket"
    )


def test_encoded_chars_are_those_of_the_whole_text_search():
    from gristmill.pipelines.filters.code import _ENCODED, encoded_chars

    rng = random.Random(1)
    pieces = ["QUJD" * 5, "0x", "ff" * 10, "\\x4f", "\\u00e9", "==", "=", " ", "\n", "+/", "é", "_", "\\"]
    for _ in range(3_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert encoded_chars(text) == sum(map(len, _ENCODED.findall(text))), text


needs_ngrams = pytest.mark.skipif(gopher_repetition._ngrams is None, reason="_ngrams was not built")


@needs_ngrams
def test_c_ngram_counts_equal_their_twins():
    rng = random.Random(5)
    vocabulary = ["ab", "cd", "ef", "gh", "ij", "a", "bcd"]
    docs = [
        [rng.choice(vocabulary[: rng.randint(1, 7)]) for _ in range(rng.randint(0, 80))] for _ in range(300)
    ]
    tokens = [t for doc in docs for t in doc]
    hashes, sizes = string_hashes(tokens), lengths(tokens)
    start = 0
    for doc in docs:
        end = start + len(doc)
        for n in (1, 2, 3, 4, 5, 7, 10):
            top = gopher_repetition._ngrams.top_ngram_chars(hashes, sizes, start, end, n)
            assert top == _top_ngram_chars(hashes, sizes, start, end, n), (doc, n)
            for stop in (float("inf"), 10.0):
                repeated = gopher_repetition._ngrams.repeated_ngram_chars(hashes, sizes, start, end, n, stop)
                assert repeated == _repeated_ngram_chars(hashes, sizes, start, end, n, stop), (doc, n, stop)
        start = end


@needs_ngrams
def test_the_rule_loop_gives_the_same_verdicts_over_either_counter(monkeypatch):
    texts = bench_documents(600_000) + [
        PROSE + " " + " ".join(["all work and no play"] * k) for k in range(1, 40)
    ]
    rule_set = GopherRepetitionFilter()
    native = rule_set.check_batch(texts)
    monkeypatch.setattr(gopher_repetition, "top_ngram_chars", _top_ngram_chars)
    monkeypatch.setattr(gopher_repetition, "repeated_ngram_chars", _repeated_ngram_chars)
    assert rule_set.check_batch(texts) == native
    assert any(v and "gram" in v for v in native)


@pytest.mark.parametrize("counter", ["top_ngram_chars", "repeated_ngram_chars"])
def test_ngram_counts_refuse_bad_ranges_alike(counter):
    hashes, sizes = string_hashes(["a", "b"]), lengths(["a", "b"])
    extra = (1.0,) if counter == "repeated_ngram_chars" else ()
    for fn in (getattr(gopher_repetition, counter), getattr(gopher_repetition, f"_{counter}")):
        with pytest.raises(ValueError, match=re.escape("bad range [0, 3) of 2 words for n = 2")):
            fn(hashes, sizes, 0, 3, 2, *extra)
        with pytest.raises(ValueError, match="bad range"):
            fn(hashes, sizes, 1, 0, 2, *extra)
        with pytest.raises(ValueError, match="bad range"):
            fn(hashes, sizes, 0, 1, 0, *extra)
        with pytest.raises(ValueError, match="one length"):
            fn(hashes, sizes[:1], 0, 1, 1, *extra)


def test_c4_long_word_search_finds_exactly_the_runs_over_the_limit():
    plain = re.compile(r"\S{12}")
    long_word = C4Filter(C4Config(max_word_length=11))._long_word  # tried only where a run starts
    rng = random.Random(2)
    for _ in range(3_000):
        text = "".join(
            rng.choice(["a", "bc", " ", "\n", "\u00a0", "x" * 5, "é"]) for _ in range(rng.randint(0, 40))
        )
        assert bool(long_word.search(text)) == bool(plain.search(text)), text
    # runs one short of the limit, then one over it: every position of every run was scanned before
    text = ("x" * 1000 + " ") * 5_000 + "y" * 1001 + " end.\n"
    assert verdict(C4Filter(C4Config(min_num_sentences=-1)), PROSE + text) is None


def test_code_config_lines_match_as_the_plain_pattern_in_linear_time():
    from gristmill.pipelines.filters.code import _CONFIG_LINE, looks_like_data

    plain = re.compile(r"\s*(?:#|- |[\w.\-\"' ]+:(?:\s|$)|[\w.\-]+\s*=)")  # quadratic in the indent
    rng = random.Random(4)
    pieces = [
        " ",
        "  ",
        "\t",
        "\u00a0",
        "#",
        "-",
        "- ",
        ":",
        ": ",
        "=",
        "a",
        "_",
        ".",
        "'",
        '"',
        "x y",
        "é",
        "1",
    ]
    for _ in range(50_000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        assert bool(_CONFIG_LINE.match(line)) == bool(plain.match(line)), repr(line)
    indented = [" " * 100_000 + "x", " " * 100_000 + "key: value", "\t" * 100_000 + "k = v"]
    assert [bool(_CONFIG_LINE.match(line)) for line in indented] == [False, True, True]
    assert not looks_like_data("\n".join([" " * 50_000 + "x"] * 10))


def test_json_nested_past_the_parser_reads_as_no_json_and_raises_nothing():
    from gristmill.pipelines.filters.code import looks_like_data

    assert looks_like_data("[" * 100_000) is False
    assert looks_like_data("[" * 100_000 + "]" * 100_000) is False  # valid, but deeper than json parses
    config = CodeConfig(
        max_line_length=0, max_mean_line_length=0, min_alphanum_fraction=0, min_alpha_fraction=0
    )
    assert verdict(CodeFilter(config), "{" * 30_000) is None
