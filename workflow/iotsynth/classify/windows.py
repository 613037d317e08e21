"""Device-type prediction from windows of consecutive packets of one capture.

A per-packet classifier labels one packet at a time. An identification
system that monitors a device receives a stream of its packets, so the
decision can rest on several of them. Here a window is ``k`` consecutive
real test packets of one capture, ordered by their frame number in the
capture. The windows of a capture do not overlap, and a window never spans
two captures, so packets of different sessions are kept apart. A capture's trailing packets that do not fill a
window are left out, and a capture with fewer than ``k`` test packets gives
no window; the table counts the windows and captures that remain.

Two ways to turn the packets' outputs into one decision per window:

``vote``
    The device type predicted for most of the window's packets; a tie goes
    to the tied device type with the highest mean score.
``mean_score``
    The device type with the highest mean score over the window's packets:
    the mean class probability for the Random Forest and the MLP, the mean
    one-vs-rest decision value for the SVM.

With ``k = 1`` both equal the per-packet prediction on the real test rows.
Under the ``paper`` protocol the test split also holds synthetic rows; they
belong to no capture and take no part in windows, so the ``k = 1`` row of
the table is the per-packet score on real rows only.

In the stratified split, a capture's test packets are a random subset of
its packets, so "consecutive" means consecutive among the test packets. In
the ``by_capture`` split, every packet of a test capture is in the test
split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from iotsynth.classify.metrics import score_predictions
from iotsynth.classify.models import DISPLAY_NAMES

METHODS = ("vote", "mean_score")
# Columns every prediction table has besides the classifiers' columns.
KEY_COLUMNS = ("capture", "frame", "device_type")
SCORE_SEPARATOR = ":"


def prediction_frame(test: pd.DataFrame, outputs: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Return the real test rows with each classifier's prediction and class scores.

    Parameters
    ----------
    test : pandas.DataFrame
        The test split, with ``capture``, ``frame``, ``device_type`` and
        ``synthetic`` (optional) columns, in the order of the outputs.
    outputs : mapping of str to (predicted, classes, scores)
        Per classifier: the predicted device type of every test row, the
        device types in score column order, and scores of shape
        (test rows, classes).

    Returns
    -------
    pandas.DataFrame
        One row per real test row: ``capture``, ``frame``, ``device_type``,
        ``<classifier>`` (the prediction) and ``<classifier>:<device type>``
        (the score).

    Raises
    ------
    ValueError
        If ``test`` lacks ``capture`` or ``frame``.
    """
    missing = [name for name in KEY_COLUMNS if name not in test.columns]
    if missing:
        raise ValueError(f"the test split has no {missing} column; windows need the capture and frame of each "
                         "packet (rebuild the splits with this version)")
    real = ~test["synthetic"].astype(bool).to_numpy() if "synthetic" in test.columns else np.ones(len(test), bool)
    columns = {
        "capture": test["capture"].astype(str).to_numpy()[real],
        "frame": test["frame"].to_numpy(dtype=np.int64)[real],
        "device_type": test["device_type"].astype(str).to_numpy()[real],
    }
    for name, (predicted, classes, scores) in outputs.items():
        columns[name] = np.asarray(predicted).astype(str)[real]
        for position, label in enumerate(classes):
            columns[f"{name}{SCORE_SEPARATOR}{label}"] = np.asarray(scores)[real, position].astype(np.float32)
    return pd.DataFrame(columns)


def window_ids(frame: pd.DataFrame, size: int) -> np.ndarray:
    """Return the window of every row, or -1 for rows left out.

    Rows are ordered by ``frame`` within their ``capture``; the windows are
    consecutive, non-overlapping runs of ``size`` rows of one capture.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"window sizes must be integers of at least 1, got {size!r}")
    order = np.lexsort((frame["frame"].to_numpy(), frame["capture"].astype(str).to_numpy()))
    captures = frame["capture"].astype(str).to_numpy()[order]
    starts = np.r_[True, captures[1:] != captures[:-1]] if len(order) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    position = np.arange(len(order)) - group_start
    group = np.cumsum(starts) - 1
    group_sizes = np.bincount(group) if len(order) else np.zeros(0, np.int64)
    complete = position < (group_sizes[group] // size) * size

    # Number windows capture by capture.
    windows_per_group = group_sizes // size
    first_window = np.r_[0, np.cumsum(windows_per_group)[:-1]] if len(group_sizes) else np.zeros(0, np.int64)
    ids = np.full(len(order), -1, dtype=np.int64)
    ids[complete] = first_window[group[complete]] + position[complete] // size
    result = np.empty(len(order), dtype=np.int64)
    result[order] = ids
    return result


def window_decisions(frame: pd.DataFrame, classifier: str, size: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(true, predicted)`` device types, one per window.

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`prediction_frame`.
    classifier : str
        A classifier with columns in ``frame``.
    size : int
        Packets per window.
    method : {"vote", "mean_score"}
    """
    if method not in METHODS:
        raise ValueError(f"windows.methods must be among {list(METHODS)}, got {method!r}")
    ids = window_ids(frame, size)
    in_window = ids >= 0
    if not in_window.any():
        return np.zeros(0, dtype=object), np.zeros(0, dtype=object)
    prefix = f"{classifier}{SCORE_SEPARATOR}"
    score_columns = [name for name in frame.columns if name.startswith(prefix)]
    classes = np.array([name[len(prefix):] for name in score_columns])
    scores = frame.loc[in_window, score_columns].to_numpy(dtype=np.float64)
    ids = ids[in_window]
    n_windows = int(ids.max()) + 1

    mean_scores = np.zeros((n_windows, len(classes)))
    np.add.at(mean_scores, ids, scores)
    mean_scores /= size
    if method == "mean_score":
        chosen = np.argmax(mean_scores, axis=1)
    else:
        predicted = frame.loc[in_window, classifier].astype(str).to_numpy()
        index = {label: position for position, label in enumerate(classes)}
        codes = np.array([index.get(label, -1) for label in predicted])
        if (codes < 0).any():
            raise ValueError(f"{classifier} predicts device types without score columns: "
                             f"{sorted(set(predicted[codes < 0]))[:5]}")
        counts = np.zeros((n_windows, len(classes)))
        np.add.at(counts, (ids, codes), 1.0)
        tied = counts == counts.max(axis=1, keepdims=True)
        chosen = np.argmax(np.where(tied, mean_scores, -np.inf), axis=1)

    truth = np.empty(n_windows, dtype=object)
    truth[ids] = frame.loc[in_window, "device_type"].astype(str).to_numpy()
    return truth.astype(str), classes[chosen]


def window_table(frame: pd.DataFrame, classifiers: Sequence[str], sizes: Sequence[int],
                 methods: Sequence[str]) -> pd.DataFrame:
    """Return one row per (classifier, window size, method) with the window-level scores.

    Columns: ``classifier``, ``k``, ``method``, ``windows``, ``captures``
    (captures with at least one window), ``accuracy``, ``macro_f1`` and
    ``balanced_accuracy``. Scores are NaN where no window remains.
    """
    rows = []
    for size in sizes:
        ids = window_ids(frame, size)
        captures = int(frame.loc[ids >= 0, "capture"].nunique())
        for classifier in classifiers:
            for method in methods:
                truth, predicted = window_decisions(frame, classifier, size, method)
                row = {"classifier": classifier, "k": int(size), "method": method, "windows": len(truth),
                       "captures": captures}
                if len(truth):
                    scores = score_predictions(truth, predicted, sorted(set(truth) | set(predicted)))
                    row.update({name: scores[name] for name in ("accuracy", "macro_f1", "balanced_accuracy")})
                else:
                    row.update(accuracy=np.nan, macro_f1=np.nan, balanced_accuracy=np.nan)
                rows.append(row)
    return pd.DataFrame(rows)


def run_windows_stage(prediction_paths: Mapping[tuple[str, str], str], section: Mapping, stem: str) -> pd.DataFrame:
    """Run the ``windows`` rule: score windows of every evaluated (balancing, protocol) pair.

    Parameters
    ----------
    prediction_paths : mapping of (balancing, protocol) to path
        Prediction tables written by the ``evaluate`` rule.
    section : mapping
        The ``windows`` config section: ``sizes`` and ``methods``.
    stem : str
        Output path without suffix; ``.csv`` and ``.md`` are written.

    Returns
    -------
    pandas.DataFrame
        The table written, one row per (balancing, protocol, classifier,
        k, method).
    """
    import logging

    from iotsynth.tables import write_table

    logger = logging.getLogger(__name__)
    sizes, methods = list(section["sizes"]), list(section["methods"])
    parts = []
    for (balancing, protocol), path in prediction_paths.items():
        frame = pd.read_parquet(path)
        classifiers = [name for name in frame.columns
                       if name not in KEY_COLUMNS and SCORE_SEPARATOR not in name]
        table = window_table(frame, classifiers, sizes, methods)
        table["classifier"] = table["classifier"].map(lambda name: DISPLAY_NAMES.get(name, name))
        parts.append(table.assign(balancing=balancing, protocol=protocol))
        best = table[table["k"] == max(sizes)]
        logger.info("%s / %s: %d real test rows, %d captures; k=%d macro-F1 %s", balancing, protocol, len(frame),
                    frame["capture"].nunique(), max(sizes),
                    {f"{row.classifier} {row.method}": round(row.macro_f1, 4) for row in best.itertuples()})
    columns = ["balancing", "protocol", "classifier", "k", "method", "windows", "captures", "accuracy", "macro_f1",
               "balanced_accuracy"]
    result = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    rounded = result.copy()
    rounded[["accuracy", "macro_f1", "balanced_accuracy"]] = rounded[["accuracy", "macro_f1",
                                                                      "balanced_accuracy"]].round(4)
    write_table(rounded, stem)
    return result
