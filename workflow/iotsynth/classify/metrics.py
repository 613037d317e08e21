"""Scores of one classifier on one test split.

The published tables report accuracy and the support-weighted mean of the
per-class precision, recall and F1 (scikit-learn's ``average="weighted"``).
Weighted recall equals accuracy. Because weighting follows the test split's
class sizes, those three hide the small device types. Macro-F1 (every device
type counts once) and balanced accuracy (the mean per-class recall) do not,
so they lead under the ``real_test`` protocol, whose test split keeps its
real class imbalance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

# Keys of the score dictionary, in table order.
SCORE_NAMES = ("accuracy", "precision", "recall", "f1", "macro_f1", "balanced_accuracy")


def score_predictions(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Return the scores, per-class recall and confusion matrix of one set of predictions.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray of str
        True and predicted device types of the test rows.
    labels : sequence of str
        Device types in the order of the per-class results and of the
        confusion matrix rows and columns; must contain every value of
        ``y_true``.

    Returns
    -------
    dict
        ``SCORE_NAMES`` (floats), ``per_class_recall`` and ``support``
        (dicts by device type) and ``confusion`` (list of rows, true device
        type by row and predicted by column). Recall is None for a device
        type absent from ``y_true``.

    Raises
    ------
    ValueError
        If ``y_true`` is empty or holds a device type missing from ``labels``.
    """
    y_true = np.asarray(y_true).astype(str)
    y_pred = np.asarray(y_pred).astype(str)
    labels = [str(label) for label in labels]
    if len(y_true) == 0:
        raise ValueError("cannot score an empty test split")
    unknown = sorted(set(y_true) - set(labels))
    if unknown:
        raise ValueError(f"the test split contains device types missing from the label list: {unknown[:5]}")

    # Weighted and macro means run over the device types present in the test
    # split, as scikit-learn does when labels is not given.
    present = sorted(set(y_true))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="weighted", zero_division=0
    )
    _, class_recall, _, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    scores = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
    }
    scores["per_class_recall"] = {
        label: (float(value) if count > 0 else None) for label, value, count in zip(labels, class_recall, support)
    }
    scores["support"] = {label: int(count) for label, count in zip(labels, support)}
    scores["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return scores
