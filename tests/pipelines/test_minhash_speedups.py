"""The fast paths of MinHash give exactly what the plain definitions give: words, blocks, batches."""

from __future__ import annotations

import numpy as np
import pytest

from gristmill.pipelines.steps.dedupe import minhash
from gristmill.pipelines.steps.dedupe.minhash import _WORD, MinHasher, words_of

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
    "x" * 500,
    " ".join(f"word{i % 37} other{i % 11}" for i in range(400)),
]


def test_words_match_the_regex_on_ascii_and_unicode():
    for text in TEXTS:
        got = [w.decode() if isinstance(w, bytes) else w for w in words_of(text)]
        assert got == _WORD.findall(text.lower()), repr(text)


@pytest.mark.parametrize("block", [1, 7, 1 << 16])
def test_signatures_do_not_depend_on_blocks_or_batches(monkeypatch, block):
    hasher = MinHasher(5, 14, 8, seed=1)
    one_by_one = np.concatenate([hasher.signatures([t])[0] for t in TEXTS])
    monkeypatch.setattr(minhash, "_BLOCK_SHINGLES", block)
    sig, has = hasher.signatures(TEXTS)
    assert (sig == one_by_one).all()
    assert has.tolist() == [bool(_WORD.findall(t.lower())) for t in TEXTS]


def test_a_signature_is_the_minimum_of_each_permutation():
    hasher = MinHasher(5, 2, 3, seed=4)
    hashes, starts = hasher.shingles(TEXTS)
    sig, _ = hasher.signatures_from_shingles(hashes, starts)
    for d in range(len(TEXTS)):
        h = hashes[starts[d] : starts[d + 1]]
        if h.size:
            expected = (h[:, None] * hasher._a[None, :] + hasher._b[None, :]).min(axis=0) >> np.uint64(32)
            assert (sig[d] == expected.astype(np.uint32)).all()
