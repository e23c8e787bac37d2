"""The fast paths of MinHash give exactly what the plain definitions give (words, word hashes, signatures),
whatever the blocks, groups and batches; and the signatures estimate Jaccard similarity without bias."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.pipelines.steps.dedupe import minhash
from gristmill.pipelines.steps.dedupe.minhash import (
    _WORD,
    MinHasher,
    estimated_jaccard,
    fmix64,
    sketch_bytes,
    word_hashes,
)
from gristmill.sample.planted import TextMaker

TEXTS = [
    "Hello, World_x 12ab! a-b\tc\nD",
    "",
    "   ",
    "__",
    "MiXeD 9 z",
    "\x7fa\x1fb\x00c",
    "one two three four",
    "café Ünïcödé naïve façade",
    "ΑΣ.Α ΑΣ Σ. İstanbul",
    "emoji 🦀 text",
    "K\u212a\xa0nbsp\u2019quote d\u0301e x\u00b2 \u0660\u0661 中文 lone \ud800 surrogate",
    "x" * 500,
    " ".join(f"word{i % 37} other{i % 11}" for i in range(400)),
]
MASK = (1 << 64) - 1


def plain_word_hash(word: str) -> int:
    """fmix64(Σ code point_j · P^j mod 2^64), in Python integers."""
    p = int(minhash._P)
    poly = sum(ord(c) * pow(p, j, 1 << 64) for j, c in enumerate(word)) & MASK
    return int(fmix64(np.array([poly], dtype=np.uint64))[0])


def plain_signature(hasher: MinHasher, keys: list[int]) -> list[int]:
    """Each bin's smallest (round, low 32 bits) over every shingle key and round, until all are filled."""
    bins, step = hasher.num_perm, int(minhash._ROUND_STEP)
    best: list[tuple[int, int] | None] = [None] * bins
    r = 0
    while any(b is None for b in best):
        for key in keys:
            g = int(fmix64(np.array([(key + r * step) & MASK], dtype=np.uint64))[0])
            b = ((g >> 32) * bins) >> 32
            value = (r, g & 0xFFFF_FFFF)
            if best[b] is None or value < best[b]:
                best[b] = value
        r += 1
    return [v for _, v in best]


@pytest.mark.parametrize(
    ("block", "chars"), [(1, 1 << 16), (7, 1 << 16), (1 << 13, 1 << 16), (1 << 13, 5), (3, 64)]
)
def test_word_hashes_are_those_of_the_regex_words(monkeypatch, block, chars):
    # `chars` below a word's length sends it through the window-by-window path
    monkeypatch.setattr(minhash, "_BLOCK_WORDS", block)
    monkeypatch.setattr(minhash, "_BLOCK_CHARS", chars)
    monkeypatch.setattr(minhash, "_POWER_CACHE", minhash._POWER_CACHE)
    hashes, counts = word_hashes(TEXTS)
    words = [_WORD.findall(t.lower()) for t in TEXTS]
    assert counts.tolist() == [len(w) for w in words]
    assert hashes.tolist() == [plain_word_hash(w) for ws in words for w in ws]


def test_signatures_follow_the_definition():
    hasher = MinHasher(5, 2, 3, seed=4)
    keys, starts = hasher.shingles(TEXTS)
    sig, has = hasher.signatures_from_shingles(keys, starts)
    for d in range(len(TEXTS)):
        doc_keys = keys[starts[d] : starts[d + 1]].tolist()
        assert has[d] == bool(doc_keys)
        if doc_keys:
            assert sig[d].tolist() == plain_signature(hasher, doc_keys), d


@pytest.mark.parametrize(("block", "group", "hits"), [(1, 1, 1), (7, 300, 64), (1 << 13, 1 << 22, 1 << 16)])
def test_signatures_do_not_depend_on_blocks_groups_rounds_or_batches(monkeypatch, block, group, hits):
    hasher = MinHasher(5, 14, 8, seed=1)
    one_by_one = np.concatenate([hasher.signatures([t])[0] for t in TEXTS])
    maker = TextMaker(seed=2)
    others = [maker.document(n) for n in (1, 3, 40, 300)]
    monkeypatch.setattr(minhash, "_BLOCK_WORDS", block)
    monkeypatch.setattr(minhash, "_GROUP_CHARS", group)
    monkeypatch.setattr(minhash, "_ROUND_HITS", hits)
    sig, has = hasher.signatures(TEXTS)
    assert (sig == one_by_one).all()
    assert has.tolist() == [bool(_WORD.findall(t.lower())) for t in TEXTS]
    # Reversed and mixed with other documents: the same signatures.
    mixed, _ = hasher.signatures([*others, *TEXTS[::-1], *others])
    assert (mixed[len(others) : len(others) + len(TEXTS)] == one_by_one[::-1]).all()


def test_short_documents_get_full_signatures():
    """Fewer shingles than bins: every bin is filled, from later rounds; equal texts, equal signatures."""
    hasher = MinHasher(5, 14, 8, seed=1)
    maker = TextMaker(seed=9)
    texts = [maker.document(n) for n in (1, 2, 5, 6, 20, 60, 115)]
    sig, has = hasher.signatures(texts)
    keys, starts = hasher.shingles(texts)
    assert has.all()
    for d in range(len(texts)):
        assert sig[d].tolist() == plain_signature(hasher, keys[starts[d] : starts[d + 1]].tolist())
        # One shingle still gives ~112 different values (one per round that filled a bin), not one copied.
        assert len(set(sig[d].tolist())) > 100
    again, _ = hasher.signatures([texts[0].upper(), texts[1]])
    assert (again == sig[:2]).all()


@pytest.mark.parametrize("words", [200, 40])
def test_signatures_estimate_jaccard_without_bias(words):
    """Planted pairs (seeded) at J 0.5-1: per similarity range, mean error < 0.015 and RMSE below classic
    MinHash's sqrt(J(1-J)/112) + 0.01, from whole signatures and from the 8-bit sketches."""
    hasher = MinHasher(5, 14, 8, seed=1)
    maker = TextMaker(seed=13)
    edits = (1, 12) if words == 200 else (1, 4)  # 40 words: 36 shingles, fewer than the 112 bins
    pairs = maker.pairs(600, words, edits, 5)
    j = np.array([p.similarity for p in pairs])
    a, _ = hasher.signatures([p.original for p in pairs])
    b, _ = hasher.signatures([p.copy for p in pairs])
    estimates = {"full": (a == b).mean(axis=1), "8-bit": estimated_jaccard(sketch_bytes(a), sketch_bytes(b))}
    checked = 0
    for lo in (0.5, 0.6, 0.7, 0.8, 0.9):
        near = (j >= lo) & (j < lo + 0.1 + 1e-9)
        if near.sum() < 30:
            continue
        checked += 1
        bound = np.sqrt(lo * (1 - lo) / 112) + 0.01
        for name, est in estimates.items():
            error = est[near] - j[near]
            assert abs(error.mean()) < 0.015, (name, lo, error.mean())
            assert np.sqrt((error**2).mean()) < bound, (name, lo, np.sqrt((error**2).mean()))
    assert checked >= 3


def test_exact_keys_squeeze_whitespace_as_split_and_join():
    assert minhash.squeeze_spaces is not minhash._squeeze, "the C squeeze (dedupe/_spaces.c) was not built"
    rng = np.random.default_rng(0)
    pieces = ["a", "é", "日", "🦀", " ", "  ", "\t", "\n", "\r\n", "\u3000", "\xa0", "\x1c", "\x85", "\u2009"]
    texts = TEXTS + ["".join(rng.choice(pieces, size=int(rng.integers(0, 14)))) for _ in range(20_000)]
    for text in texts:
        squeezed, joined = minhash.squeeze_spaces(text), " ".join(text.split())
        # equal, and the same kind of str (dropping the only wide whitespace narrows it), so equal hashes
        assert squeezed == joined and squeezed.isascii() == joined.isascii(), repr(text)
        assert hash(squeezed) == hash(joined)
    assert minhash.exact_key("  Ｈello\u3000 WORLD\n") == "ｈello world"


def test_a_long_word_hashes_window_by_window_with_no_block_as_large_as_it(monkeypatch):
    monkeypatch.setattr(minhash, "_BLOCK_CHARS", 1 << 10)
    word = "".join(chr(ord("a") + i % 26) for i in range(5_000)) + "éß"
    hashes, counts = word_hashes([f"x {word} y", word])
    assert counts.tolist() == [3, 1]
    assert hashes.tolist() == [plain_word_hash(w) for w in ("x", word.lower(), "y", word.lower())]


def test_a_document_repeating_few_shingles_gets_the_signature_of_their_set():
    """A signature is a function of the shingle set: millions of repeats of five shingles sketch as the five
    (the repeats are dropped after two rounds, not hashed again in every round)."""
    hasher = MinHasher(5, 14, 8, seed=1)
    keys, starts = hasher.shingles(["a b c d e " * 20_000, "a b c d e a b c d"])
    assert np.unique(keys[starts[0] : starts[1]]).size == 5
    sig, has = hasher.signatures(["a b c d e " * 20_000, "a b c d e a b c d e"])
    assert has.all() and (sig[0] == sig[1]).all()
    assert sig[0].tolist() == plain_signature(hasher, np.unique(keys[starts[0] : starts[1]]).tolist())
    # Among documents still open after two rounds, only those with repeats are moved to their sets: in any
    # mix, each gets the signature it gets alone.
    maker = TextMaker(seed=5)
    texts = [
        maker.document(3),
        "x y z w v " * 500,
        maker.document(400),
        maker.document(30),
        "p q r s t u " * 90,
    ]
    mixed, _ = hasher.signatures(texts)
    assert (mixed == np.concatenate([hasher.signatures([t])[0] for t in texts])).all()


def test_nfc_is_unicodedatas_in_linear_time():
    import unicodedata

    from gristmill.pipelines.steps.dedupe.nfc import _RUN, nfc

    rng = np.random.default_rng(3)
    pieces = [chr(c) for c in range(0x300, 0x370)] + list(
        "\u0f73\u0344\u0f71\u0f72\u05b0\u0345éeaǻ 가\u1100\u1161"
    )
    pieces += ["\U0001d165", "\U0001d16d", "\u11a8", "\ud800", "x", "\u212b", "\u1dc0"]
    for _ in range(2_000):
        text = "".join(rng.choice(pieces, size=int(rng.integers(0, 4 * _RUN))))
        assert nfc(text) == unicodedata.normalize("NFC", text), ascii(text)
    # runs CPython sorts with an insertion sort: 100,000 marks out of order (about 30 s there)
    for text in ("a" + "\u0301\u0316" * 50_000, "\u0f73" * 100_000, "e" + "\u0316\u0301" * 50_000 + "x"):
        short = text[: 2 * _RUN + 3] + text[-3:]
        assert nfc(short) == unicodedata.normalize("NFC", short)
        out = nfc(text)
        assert unicodedata.is_normalized("NFC", out[:1000]) and len(out) <= len(text) * 2
    assert minhash.exact_key("A\u0301\u0316" * 40_000) == nfc("a\u0301\u0316" * 40_000)
