"""Confusion matrices of the classifiers (figure 13), one panel per classifier."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iotsynth.classify.models import DISPLAY_NAMES  # noqa: E402

LOGGER = logging.getLogger(__name__)


def row_normalize(matrix: np.ndarray) -> np.ndarray:
    """Divide each row by its sum, so a cell is the share of that device type's test rows; empty rows stay 0."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion_matrices(result: Mapping[str, Any], title: str, path: str | Path) -> Path:
    """Draw one row-normalised confusion matrix per classifier and save the figure.

    Parameters
    ----------
    result : mapping
        Output of :func:`iotsynth.classify.evaluate.evaluate_classifiers`:
        ``labels`` and, per classifier, ``confusion``, ``accuracy`` and
        ``macro_f1``.
    title : str
        Figure title (balancing and protocol).
    path : str or pathlib.Path
        PNG file; parent folders are created.

    Returns
    -------
    pathlib.Path
    """
    labels = list(result["labels"])
    classifiers = list(result["classifiers"])
    size = max(4.0, 0.28 * len(labels) + 2.0)
    figure, axes = plt.subplots(1, len(classifiers), figsize=(size * len(classifiers) + 1.5, size + 1.0),
                                squeeze=False, layout="constrained")

    image = None
    for axis, name in zip(axes[0], classifiers):
        scores = result["classifiers"][name]
        image = axis.imshow(row_normalize(scores["confusion"]), cmap="Blues", vmin=0.0, vmax=1.0)
        axis.set_title(f"{DISPLAY_NAMES.get(name, name)}: accuracy {scores['accuracy']:.3f}, "
                       f"macro-F1 {scores['macro_f1']:.3f}", fontsize=11)
        axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
        axis.set_xlabel("predicted device type", fontsize=9)
        axis.set_ylabel("true device type", fontsize=9)
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.6, label="share of the true device type's test rows")
    figure.suptitle(f"Confusion matrices, {title}", fontsize=13)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(figure)
    LOGGER.info("wrote %s", path)
    return path
