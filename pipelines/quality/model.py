"""The quality classifier: a supervised fastText model trained from real and junk documents, saved with a
JSON sidecar that holds its checksum and settings, loaded only once the checksum matches, and asked for each
document's probability of being real.

Files: `<name>.bin` (fastText's own format) and `<name>.bin.json` (`ModelCard`). Both are untrusted when
read: the card must parse, the model file must hash to the card's sha256 (and to the recipe's, when given)
and start with fastText's header before fastText itself reads it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
from pydantic import Field

from gristmill.errors import InputError
from gristmill.models import FrozenModel
from gristmill.pipelines.config.quality import ClassifierSettings
from gristmill.storage import read_json, write_json

FORMAT = "gristmill-quality-classifier-1"
REAL, JUNK = "__label__real", "__label__junk"
_FASTTEXT_MAGIC, _FASTTEXT_VERSION = 793712314, 12  # the int32s fastText's .bin files start with


class ModelCard(FrozenModel):
    """The sidecar of a classifier's .bin file: what it is, how it was trained, and its checksum."""

    format: str = Field(description=f"always {FORMAT!r}")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the .bin file")
    bytes: int = Field(ge=0)
    settings: ClassifierSettings
    documents: dict[str, int] = Field(description="training documents by label: real, junk")
    heldout: dict[str, float] | None = Field(
        None,
        description="figures on the held-out documents: documents, real, junk, threshold, precision, recall, "
        "roc_auc (None: none held out on one side)",
    )
    train_sha256: str | None = Field(
        None,
        description="sha256 of what the build trained it from (its recipe's `quality.train` and the settings "
        "of the sources and rule sets that reads); None for a model trained by `gristmill classifier train`",
    )
    sample: dict[str, int] | None = Field(
        None, description="what the build's sample took: files, records, unreadable, dropped (by the rules)"
    )


def normalise(text: str, max_words: int) -> str:
    """Return the one line fastText sees for `text`: its first `max_words` whitespace-separated words,
    lowercased, joined by single spaces (fastText reads a newline as the end of an example)."""
    words = text.split(maxsplit=max_words)
    if len(words) > max_words:
        words = words[:max_words]
    return " ".join(words).lower()


def file_sha256(path: str | Path) -> str:
    """Return the sha256 of a local file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(model_path: str | Path) -> str:
    """Return where the sidecar of the model file `model_path` lives: `<model>.json`."""
    return f"{model_path}.json"


def _quiet_fasttext():
    import fasttext

    fasttext.FastText.eprint = lambda *_: None  # load_model's warning about the API change, on every load
    return fasttext


def train_classifier(
    real: Iterable[str],
    junk: Iterable[str],
    out: str | Path,
    settings: ClassifierSettings,
    *,
    held_out: tuple[Sequence[str], Sequence[str]] | None = None,
    **card: Any,
) -> ModelCard:
    """Train on `real` and `junk` texts, write `out` and its sidecar atomically, and return the card.

    Examples are shuffled with `settings.seed` and trained with one thread, so the same inputs and settings
    give the same model bytes. With `held_out` ((real, junk) texts not trained on), the card holds the
    model's figures on them when both sides have some; `card` fills the card's other optional fields
    (`train_sha256`, `sample`). Raises InputError when either side has no document or training fails."""
    fasttext = _quiet_fasttext()
    out = Path(out)
    examples = [f"{REAL} {normalise(t, settings.max_words)}" for t in real]
    n_real = len(examples)
    examples += [f"{JUNK} {normalise(t, settings.max_words)}" for t in junk]
    n_junk = len(examples) - n_real
    if not n_real or not n_junk:
        raise InputError(f"training needs real and junk documents (got {n_real} real, {n_junk} junk)")
    Random(settings.seed).shuffle(examples)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".classifier-") as work:
        train_file = Path(work) / "train.txt"
        train_file.write_text("\n".join(examples) + "\n", encoding="utf-8")
        model = _train(fasttext, train_file, settings)
        staged = Path(work) / "model.bin"
        model.save_model(str(staged))
        card = ModelCard(
            format=FORMAT,
            sha256=file_sha256(staged),
            bytes=staged.stat().st_size,
            settings=settings,
            documents={"real": n_real, "junk": n_junk},
            heldout=_heldout_figures(model, settings, held_out),
            **card,
        )
        os.replace(staged, out)
    write_json(card_path(out), card.model_dump(mode="json"))
    return card


def _heldout_figures(
    model: object, settings: ClassifierSettings, held_out: tuple[Sequence[str], Sequence[str]] | None
) -> dict[str, float] | None:
    """Return `evaluate`'s figures of the fastText `model` on the held-out (real, junk) texts, or None when
    a side has none."""
    from gristmill.pipelines.quality.metrics import evaluate

    if held_out is None or not held_out[0] or not held_out[1]:
        return None
    real, junk = held_out
    scores = _predict(model, [*real, *junk], settings.max_words)
    labels = np.r_[np.ones(len(real), dtype=bool), np.zeros(len(junk), dtype=bool)]
    return evaluate(labels, scores).to_dict()


def _predict(model: object, texts: Sequence[str], max_words: int) -> np.ndarray:
    """Return float32 scores of `texts` by the fastText `model`: its probability of the label real."""
    if not texts:
        return np.zeros(0, dtype=np.float32)
    labels, probs = model.predict([normalise(t, max_words) for t in texts], k=2)
    out = np.empty(len(texts), dtype=np.float32)
    for i, (names, p) in enumerate(zip(labels, probs)):
        # k=2 of two labels: both are there, most probable first (k=2 never drops the runner-up)
        out[i] = p[0] if names[0] == REAL else 1.0 - p[0]
    return np.clip(out, 0.0, 1.0)


_M_PERTURB = -6  # glibc's mallopt parameter: fill what malloc returns with the complement of this byte


@contextlib.contextmanager
def _zeroed_allocations() -> Iterator[None]:
    """Have malloc return zeroed memory while fastText trains (glibc's M_PERTURB with 0xff: its complement).

    The fastText of `fasttext-numpy2-wheel` allocates its input matrix without clearing it, and with one
    training thread initialises only the first tenth of it (upstream's std::vector is zero there): the rest
    is whatever the heap held. Measured on the sample corpus: runs stopped with "Encountered NaN." or gave
    different bytes for the same seed, depending on what the process had freed before; with the matrix
    zeroed, as upstream's is, one seed gives one model. Where malloc is not glibc's, nothing is set."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_PERTURB, 0xFF)
    try:
        yield
    finally:
        mallopt(_M_PERTURB, 0)


def _train(fasttext, train_file: Path, settings: ClassifierSettings):
    """Return fastText's model trained on `train_file` (one thread, the settings' seed); raise InputError
    when training diverges ("Encountered NaN.")."""
    try:
        with _zeroed_allocations():
            return fasttext.train_supervised(
                input=str(train_file),
                dim=settings.dim,
                epoch=settings.epoch,
                lr=settings.lr,
                wordNgrams=settings.word_ngrams,
                minCount=settings.min_count,
                bucket=settings.bucket,
                loss="softmax",
                thread=1,
                seed=settings.seed,
                verbose=0,
            )
    except RuntimeError as e:  # fastText's only training failure
        raise InputError(f"training diverged: {e}", hint="lower `lr`") from None


def read_card(model_path: str | Path) -> ModelCard:
    """Read and validate the sidecar of `model_path`; raise InputError naming it when missing or malformed."""
    path = card_path(model_path)
    data = read_json(path)
    try:
        card = ModelCard.model_validate(data)
    except Exception as e:
        raise InputError(f"not a classifier card: {e}", path=path) from None
    if card.format != FORMAT:
        raise InputError(f"format {card.format!r}, expected {FORMAT!r}", path=path, where="format")
    return card


class QualityModel:
    """A loaded classifier: `score(texts)` gives each text's probability of being real, 0 to 1."""

    def __init__(self, model: object, card: ModelCard, path: str) -> None:
        self._model = model
        self.card = card
        self.path = path

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> QualityModel:
        """Load a classifier file after checking it against its card (and `sha256`, when given).

        Raises InputError naming the file when it or its card is missing, its checksum differs, or it is not
        a fastText model with exactly the labels real and junk."""
        path = str(path)
        if not os.path.isfile(path):
            raise InputError(
                "classifier file not found", path=path, hint="train one: gristmill classifier train"
            )
        card = read_card(path)
        actual = file_sha256(path)
        for expected, whose in ((card.sha256, "its card"), (sha256, "the recipe")):
            if expected is not None and actual != expected:
                raise InputError(
                    f"the file's sha256 is {actual}, {whose} says {expected}",
                    path=path,
                    hint="the model was changed or damaged since it was trained; train it again",
                )
        with open(path, "rb") as f:
            head = f.read(8)
        if len(head) < 8 or struct.unpack("<ii", head) != (_FASTTEXT_MAGIC, _FASTTEXT_VERSION):
            raise InputError("not a fastText model file (bad header)", path=path)
        model = _quiet_fasttext().load_model(path)
        if sorted(model.get_labels()) != sorted([REAL, JUNK]):
            raise InputError(f"labels {model.get_labels()}, expected {REAL} and {JUNK}", path=path)
        return cls(model, card, path)

    @property
    def sha256(self) -> str:
        """The model file's sha256."""
        return self.card.sha256

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 scores, one per text: the model's probability that the text is real."""
        return _predict(self._model, texts, self.card.settings.max_words)
