"""Train and score the classifiers on one (balancing, protocol) pair (rule evaluate).

Every classifier trains on the balanced training split in the
preprocessor's space, the MLP stops early on the balanced validation split,
and all are scored on the protocol's test split. Training wall time and peak
memory come from :func:`iotsynth.classify.measure.measure_call` around the
``fit`` call alone: reading the splits and transforming them is done once
before and is not counted.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from iotsynth.classify.measure import measure_call
from iotsynth.classify.metrics import SCORE_NAMES, score_predictions
from iotsynth.classify.models import (
    CLASSIFIERS,
    DISPLAY_NAMES,
    check_names,
    class_scores,
    describe,
    fit_classifier,
    make_classifier,
)
from iotsynth.classify.windows import prediction_frame
from iotsynth.gan.balance import SPLIT_NAMES
from iotsynth.preprocess import Preprocessor

LOGGER = logging.getLogger(__name__)

MEMORY_METHOD = (
    "peak resident set size of the process during fit minus the resident set size before it "
    "(psutil samples every interval seconds, plus getrusage ru_maxrss when the process reached a new peak)"
)


def read_splits(paths: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """Read the ``train``, ``val`` and ``test`` parquet files. A file without ``synthetic`` contains real rows only."""
    splits = {}
    for name in SPLIT_NAMES:
        frame = pd.read_parquet(paths[name])
        if "device_type" not in frame.columns:
            raise ValueError(f"{paths[name]} has no device_type column; it must be a split or a balanced split")
        if "synthetic" not in frame.columns:
            frame = frame.assign(synthetic=False)
        splits[name] = frame
    return splits


def row_counts(splits: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, int]]:
    """Return real and synthetic rows per split. A split without ``synthetic`` contains real rows only."""
    counts = {}
    for name, frame in splits.items():
        synthetic = int(frame["synthetic"].astype(bool).sum()) if "synthetic" in frame.columns else 0
        counts[name] = {"real": len(frame) - synthetic, "synthetic": synthetic}
    return counts


def evaluate_classifiers(splits: Mapping[str, pd.DataFrame], preprocessor: Preprocessor, section: Mapping[str, Any],
                         seed: int, threads: int = 1, keep_predictions: bool = False) -> dict[str, Any]:
    """Train and score every configured classifier.

    Parameters
    ----------
    splits : mapping of str to pandas.DataFrame
        ``train``, ``val`` and ``test`` with ``device_type`` and the features.
    preprocessor : Preprocessor
        Fitted on the real training split.
    section : mapping
        The ``classifiers`` config section (``models``,
        ``memory_interval`` and one entry per classifier).
    seed : int
    threads : int, default 1
        Threads for the classifiers and for BLAS.
    keep_predictions : bool, default False
        Also return the test rows' predictions and class scores.

    Returns
    -------
    dict
        ``labels`` (device types, sorted), ``rows`` (real and synthetic per
        split) and ``classifiers``: per classifier its scores
        (:func:`score_predictions`), ``train_seconds``,
        ``peak_memory_mb``, ``predict_seconds`` and ``details``. With
        ``keep_predictions``, ``predictions`` holds the table of
        :func:`iotsynth.classify.windows.prediction_frame`.
    """
    names = list(section.get("models", CLASSIFIERS))
    check_names(names)
    interval = float(section.get("memory_interval", 0.05))

    X = {name: preprocessor.transform(frame) for name, frame in splits.items()}
    y = {name: frame["device_type"].astype(str).to_numpy() for name, frame in splits.items()}
    labels = sorted(set(y["train"]) | set(y["test"]))
    missing = sorted(set(y["test"]) - set(y["train"]))
    if missing:
        LOGGER.warning("device types %s are in the test split but not in training; every classifier misses them",
                       missing)
    LOGGER.info("features: %d columns; rows %s", X["train"].shape[1], {name: len(values) for name, values in y.items()})

    results, outputs = {}, {}
    with threadpool_limits(limits=threads):
        for name in names:
            results[name], outputs[name] = _train_and_score(name, X, y, labels, section, seed, threads, interval,
                                                            keep_predictions)
    result = {"labels": labels, "rows": row_counts(splits), "classifiers": results}
    if keep_predictions:
        result["predictions"] = prediction_frame(splits["test"], outputs)
    return result


def _train_and_score(name: str, X: dict, y: dict, labels: list[str], section: Mapping[str, Any], seed: int,
                     threads: int, interval: float, keep_predictions: bool) -> tuple[dict[str, Any], tuple | None]:
    model = make_classifier(name, section, seed, threads)
    _, cost = measure_call(lambda: fit_classifier(model, X["train"], y["train"], X["val"], y["val"]), interval)

    started = time.perf_counter()
    predicted = model.predict(X["test"])
    predict_seconds = time.perf_counter() - started

    result = score_predictions(y["test"], predicted, labels)
    result.update(
        train_seconds=cost.seconds,
        peak_memory_mb=cost.peak_memory_mb,
        rss_before_mb=cost.rss_before_mb,
        predict_seconds=predict_seconds,
        details=describe(model),
    )
    LOGGER.info("%s: accuracy %.4f, weighted F1 %.4f, macro-F1 %.4f, balanced accuracy %.4f; trained in %.1f s "
                "using %.0f MB", DISPLAY_NAMES[name], result["accuracy"], result["f1"], result["macro_f1"],
                result["balanced_accuracy"], cost.seconds, cost.peak_memory_mb)
    if not keep_predictions:
        return result, None
    classes, scores = class_scores(model, X["test"])
    return result, (predicted, classes, scores)


def per_class_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """Return one row per device type: test support and each classifier's recall."""
    table = pd.DataFrame({"device_type": result["labels"]})
    first = next(iter(result["classifiers"].values()))
    table["support"] = [first["support"][label] for label in result["labels"]]
    for name, scores in result["classifiers"].items():
        table[name] = [scores["per_class_recall"][label] for label in result["labels"]]
    return table


def run_evaluation_stage(split_paths: Mapping[str, str | Path], preprocessor_path: str | Path,
                         metrics_path: str | Path, per_class_path: str | Path, figure_path: str | Path,
                         balancing: str, protocol: str, section: Mapping[str, Any], seed: int,
                         threads: int = 1, predictions_path: str | Path | None = None) -> dict[str, Any]:
    """Run the ``evaluate`` rule for one balancing and protocol.

    Parameters
    ----------
    split_paths : mapping of str to path
        Balanced (or, for ``none``, real) ``train``, ``val`` and ``test``.
    preprocessor_path : str or pathlib.Path
    metrics_path : str or pathlib.Path
        JSON with everything :func:`evaluate_classifiers` returns, plus the
        settings and how memory was measured.
    per_class_path : str or pathlib.Path
        CSV of :func:`per_class_table`.
    figure_path : str or pathlib.Path
        Confusion matrices, one panel per classifier.
    balancing, protocol : str
    section : mapping
        The ``classifiers`` config section.
    seed, threads : int
    predictions_path : str or pathlib.Path, optional
        Parquet file for the real test rows' predictions and class scores
        (:func:`iotsynth.classify.windows.prediction_frame`), which the
        ``windows`` rule reads.

    Returns
    -------
    dict
        The content of the JSON file.
    """
    from iotsynth.classify.plots import plot_confusion_matrices

    started = time.perf_counter()
    splits = read_splits(split_paths)
    preprocessor = Preprocessor.load(preprocessor_path)
    LOGGER.info("balancing %s, protocol %s: read %s", balancing, protocol,
                {name: str(path) for name, path in split_paths.items()})

    result = evaluate_classifiers(splits, preprocessor, section, seed, threads,
                                  keep_predictions=predictions_path is not None)
    predictions = result.pop("predictions", None)
    document = {
        "balancing": balancing,
        "protocol": protocol,
        "seed": seed,
        "threads": threads,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "memory_method": MEMORY_METHOD,
        "memory_interval": float(section.get("memory_interval", 0.05)),
        "settings": {name: section.get(name, {}) for name in result["classifiers"]},
        "score_names": list(SCORE_NAMES),
        **result,
    }

    metrics_path = Path(metrics_path)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(document, indent=2, allow_nan=False, default=_to_json) + "\n",
                            encoding="utf-8")
    per_class_table(result).to_csv(per_class_path, index=False)
    if predictions is not None:
        predictions.to_parquet(predictions_path, index=False)
        LOGGER.info("wrote %s: %d real test rows", predictions_path, len(predictions))
    plot_confusion_matrices(result, f"balancing {balancing}, protocol {protocol}", figure_path)
    LOGGER.info("wrote %s, %s and %s; took %.1f s", metrics_path, per_class_path, figure_path,
                time.perf_counter() - started)
    return document


def _to_json(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the metrics file")
