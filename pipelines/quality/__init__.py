"""Model-based quality: a fastText classifier of real against junk text, trained ahead of time
(`gristmill classifier train`) or in the build (`quality.train`), scoring every document of a build
(`pipelines/steps/quality.py`).

    model.py      train, save with its card (checksum, settings, held-out figures), load verified, score
    labelled.py   labelled texts from files; the held-out split by a hash of the text
    metrics.py    precision, recall, ROC AUC
    sampling.py   seeded samples of a recipe's documents spread over its files, through the rule sets
    training.py   the classifier a build trains from its `quality.train`
    selection.py  a profile's top_fraction resolved to a score threshold on a sample
    check.py      `recipe check`: each selection against a scored sample
"""

from gristmill.pipelines.quality.metrics import Evaluation, evaluate, roc_auc
from gristmill.pipelines.quality.model import ModelCard, QualityModel, read_card, train_classifier

__all__ = [
    "Evaluation",
    "ModelCard",
    "QualityModel",
    "evaluate",
    "read_card",
    "roc_auc",
    "train_classifier",
]
