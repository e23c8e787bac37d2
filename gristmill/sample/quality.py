"""Labelled documents for the quality classifier: this machine's real prose and code against junk and
boilerplate-heavy pages.

- real (label 1): curated prose (`keep_corpus.prose_documents`: Python's reference topics, module docstrings,
  Debian's README/NEWS/copyright files) and hand-written code (`keep_corpus.code_documents`: standard-library
  modules and C headers);
- junk (label 0): pages made as the web makes them around a line or two of real prose: navigation,
  breadcrumbs, cookie and share notices, tag clouds, related-post lists, comment threads, footers;
  keyword-stuffed shop pages; and the filters' own junk (`text.junk_documents`, `keep_corpus.junk_documents`).

`quality_split` holds documents out by a hash of their text (real) and by generator seed (junk), so a
held-out page is never a training page. For tests and benches (bench/classifier_bench.py) and `gristmill
sample OUT --kind quality` (`write_quality_sample`); nothing in a build imports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from random import Random

from gristmill.pipelines.quality.labelled import held_out
from gristmill.sample import keep_corpus
from gristmill.sample.text import doc_topics, junk_documents, stdlib_sections
from gristmill.storage import atomic_write, write_json

SUMMARY_FILE = "QUALITY.json"

_MENU = ["Home", "News", "Sports", "Shop", "Deals", "About", "Contact us", "Login", "Register", "Blog", "FAQ"]
_SHARE = ["Share on Facebook", "Tweet", "Pin it", "Email", "Print", "WhatsApp", "Copy link"]
_FOOTER = [
    "© {year} {site}. All rights reserved.",
    "Privacy Policy | Terms of Service | Cookie Settings | Sitemap",
    "Powered by WordPress | Theme by {site}",
    "Subscribe to our newsletter for the latest updates!",
    "Follow us on Facebook, Twitter and Instagram",
]
_NOTICES = [
    "We use cookies to improve your experience. By using this site you accept our cookie policy. Accept",
    "This website uses cookies to ensure you get the best experience on our website. Learn more Got it!",
    "Advertisement",
    "Sponsored content",
    "Click here to read more",
    "Sign up for free to continue reading",
]
_SHOP = [
    "Buy {w} online at the best price",
    "Cheap {w} for sale, free shipping on orders over $49",
    "Top 10 best {w} reviews {year}",
    "{w} {w2} discount code, save up to {n}% today",
    "Order {w} now and get {n}% off",
]


@dataclass(frozen=True)
class Labelled:
    """One document with its label (1: real, 0: junk) and the kind of text it is."""

    label: int
    kind: str
    text: str


def _prose_pool() -> tuple[list[str], list[str]]:
    """Return (paragraphs of real prose, words) that the junk pages wrap around."""
    prose = [p for doc in doc_topics() for p in doc.split("\n\n") if len(p) > 200 and not p.startswith(" ")]
    words = sorted({w.lower() for p in prose[:300] for w in p.split() if w.isalpha() and len(w) > 3})
    return prose, words


def _sentences(paragraph: str, rng: Random, most: int) -> str:
    parts = [s.strip() for s in paragraph.replace("\n", " ").split(". ") if s.strip()]
    start = rng.randrange(len(parts))
    return ". ".join(parts[start : start + rng.randint(1, most)]).rstrip(".") + "."


def boilerplate_page(rng: Random, prose: list[str], words: list[str]) -> str:
    """Return a page whose real text is a sentence or a few, lost in navigation, notices, lists, footers."""
    site = rng.choice(words).capitalize() + rng.choice(["Hub", "Daily", "Online", "World", "Zone"])
    year = rng.randint(2009, 2024)
    title = " ".join(rng.sample(words, rng.randint(3, 7))).capitalize()
    lines = [" | ".join(rng.sample(_MENU, rng.randint(5, 9)))]
    lines.append(f"Home > {rng.choice(words).capitalize()} > {title}")
    lines.append(title)
    lines.append(
        f"Posted by {rng.choice(words)}{rng.randint(1, 999)} on {rng.randint(1, 28)}/{rng.randint(1, 12)}"
        f"/{year} | {rng.randint(0, 300)} comments"
    )
    body = [_sentences(rng.choice(prose), rng, 3) for _ in range(rng.randint(1, 3))]
    for paragraph in body:
        lines.append(paragraph)
        if rng.random() < 0.5:
            lines.append(rng.choice(_NOTICES))
    lines.append(" ".join(rng.sample(_SHARE, rng.randint(3, 6))))
    lines.append("Tags: " + ", ".join(rng.sample(words, rng.randint(4, 15))))
    lines.append("Related posts:")
    lines += [" ".join(rng.sample(words, rng.randint(3, 8))).capitalize() for _ in range(rng.randint(3, 8))]
    for _ in range(rng.randint(0, 6)):
        lines.append(f"{rng.choice(words)}{rng.randint(1, 99)} says:")
        lines.append(
            rng.choice(
                [
                    "Great post, thanks for sharing!",
                    "Nice article.",
                    "Thanks!",
                    "Very helpful",
                    "I agree with this.",
                    "Where can I find more?",
                    "+1",
                ]
            )
        )
        lines.append("Reply")
    lines.append(rng.choice(_NOTICES))
    lines += [f.format(year=year, site=site) for f in rng.sample(_FOOTER, rng.randint(2, 4))]
    return "\n".join(lines)


def shop_page(rng: Random, words: list[str]) -> str:
    """Return a keyword-stuffed shop page: listings, prices and search-engine phrases."""
    w = rng.choice(words)
    lines = [" | ".join(rng.sample(_MENU, rng.randint(4, 8)))]
    for _ in range(rng.randint(6, 25)):
        pattern = rng.choice(_SHOP)
        lines.append(
            pattern.format(w=w, w2=rng.choice(words), n=rng.randint(5, 80), year=rng.randint(2015, 2024))
        )
        if rng.random() < 0.6:
            lines.append(
                f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d} ★★★★☆ ({rng.randint(1, 5000)} reviews)"
                " Add to cart"
            )
    lines.append(" ".join(rng.sample(_SHARE, 3)))
    lines.append(rng.choice(_FOOTER).format(year=rng.randint(2009, 2024), site=w.capitalize()))
    return "\n".join(lines)


def real_documents(every: int = 1, max_debian: int = 300) -> list[Labelled]:
    """Return this machine's curated prose and hand-written code, each text once (label 1)."""
    prose = [Labelled(1, "prose", t) for t in keep_corpus.prose_documents(every, max_debian)]
    code = [Labelled(1, "code", t) for _, t in keep_corpus.code_documents(max(every, 1))]
    return prose + code


def junk_pages(seed: int, pages: int) -> list[Labelled]:
    """Return about `pages` junk documents (label 0) drawn with `seed`: boilerplate and shop pages, and the
    filters' junk, each kind in fixed proportion."""
    rng = Random(seed)
    prose, words = _prose_pool()
    out = [Labelled(0, "boilerplate", boilerplate_page(rng, prose, words)) for _ in range(pages // 2)]
    out += [Labelled(0, "shop", shop_page(rng, words)) for _ in range(pages // 6)]
    sections = stdlib_sections()
    web = []
    while len(web) < pages // 6:
        web += [t for t in junk_documents(sections, rng) if t.strip()]
    out += [Labelled(0, "web-junk", t) for t in web[: pages // 6]]
    plain = [t for _, t in keep_corpus.junk_documents(seed, per_kind=max(1, pages // 54)) if t.strip()]
    out += [Labelled(0, "plain-junk", t) for t in plain]
    return out


def quality_split(
    heldout: float = 0.3, every: int = 1, max_debian: int = 300, junk_per_real: float = 1.0
) -> tuple[list[Labelled], list[Labelled]]:
    """Return (train, held out): real documents split by a hash of their text, junk drawn with seed 0 for
    training and seed 1 for the held-out side, about `junk_per_real` junk pages per real document."""
    real = real_documents(every, max_debian)
    train = [d for d in real if not held_out(d.text, heldout)]
    test = [d for d in real if held_out(d.text, heldout)]
    train += junk_pages(0, round(len(train) * junk_per_real))
    test += junk_pages(1, round(len(test) * junk_per_real))
    return train, test


def write_quality_sample(out: str | Path) -> dict:
    """Write labelled documents for `gristmill classifier train|eval`: OUT/train/{real,junk}.jsonl and
    OUT/heldout/{real,junk}.jsonl (`{"text", "kind"}` per line), counted in OUT/QUALITY.json; return the
    counts.

    The real side is Python's reference text, docstrings and standard-library code only: Debian's README and
    NEWS files are the ablation sample's evaluation text (`sample.ablation`), which a classifier that selects
    an ablation's training data must not have been trained on.
    """
    split = dict(zip(("train", "heldout"), quality_split(max_debian=0)))
    summary: dict[str, dict] = {}
    for part, documents in split.items():
        for label, name in ((1, "real"), (0, "junk")):
            chosen = [d for d in documents if d.label == label]
            path = Path(out, part, f"{name}.jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(str(path), "w") as f:
                for d in chosen:
                    f.write(json.dumps({"text": d.text, "kind": d.kind}) + "\n")
            summary[f"{part}/{name}"] = {
                "documents": len(chosen),
                "bytes": sum(len(d.text.encode()) for d in chosen),
            }
    write_json(str(Path(out, SUMMARY_FILE)), summary)
    return summary
