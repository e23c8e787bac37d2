"""The evaluation set is kept out of every build: a shared word n-gram drops a document, a shorter one does
not, and a build is read from its clean documents or, without them, its decoded rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.ablate.contamination import NgramIndex, decontaminate, trained_texts

PASSAGE = "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat today"


def test_a_shared_13_gram_marks_a_document_and_a_12_gram_does_not():
    words = PASSAGE.split()
    index = NgramIndex([PASSAGE, "an unrelated document about compilers and their many passes"], 13)
    assert index.matches("Preface. " + " ".join(words[2:15]).upper() + "! and more") == {
        0
    }  # case, punctuation
    assert index.matches(" ".join(words[2:14])) == set()  # 12 words only
    assert index.matches(" ".join(words[2:8]) + " elephant " + " ".join(words[8:15])) == set()  # broken up
    assert NgramIndex(["too short"], 13).matches("too short") == set()


def _clean_build(root, texts):
    (root / "clean" / "web").mkdir(parents=True)
    pq.write_table(pa.table({"text": texts}), root / "clean" / "web" / "00000.parquet")
    return str(root)


def test_decontamination_drops_what_any_candidate_saw_for_every_candidate(tmp_path):
    seen = "a b c d e f g h i j k l m n o p"
    sets = {"clean": [PASSAGE, seen, "nothing here matches any training text at all, twelve words or more"]}
    builds = {
        "x": _clean_build(tmp_path / "x", ["prefix " + PASSAGE + " suffix"]),
        "y": _clean_build(tmp_path / "y", ["zz " + seen]),
    }
    result = decontaminate(sets, builds, 13)
    assert result.seen_by["clean"] == {"x": [0], "y": [1]}
    assert result.kept["clean"] == [sets["clean"][2]]
    assert result.to_dict()["sets"]["clean"] == {"documents": 3, "kept": 1, "seen_by": {"x": 1, "y": 1}}


def test_a_build_without_clean_documents_is_read_from_its_decoded_rows(builds, build_fixture):
    texts = list(trained_texts(str(builds.train)))
    train_texts, _ = build_fixture.documents()
    assert len(texts) >= len(train_texts)  # documents split across rows come back as pieces
    joined = "".join(texts)
    assert train_texts[0][:60] in joined and train_texts[-1][-60:] in joined
