"""Model-based quality: a fastText classifier of real against junk text, trained ahead of time
(`gristmill classifier train`) and scoring every document of a build (`pipelines/steps/quality.py`).

    model.py     train, save with its card (checksum, settings), load verified, score
    labelled.py  labelled texts from files; the held-out split by a hash of the text
    metrics.py   precision, recall, ROC AUC
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
