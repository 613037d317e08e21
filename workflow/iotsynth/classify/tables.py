"""Classifier tables in the published layout and the comparison with the published values (rule tables).

Published layout (Tables 7 and 8 of Alyoubi et al., Sensors 25(24):7457,
2025): one row per classifier (RF, NN, SVM) with accuracy, weighted
precision, recall and F1, training time in seconds and memory in MB.
``table07_wgan`` and ``table08_smote`` contain the WGAN- and SMOTE-balanced
runs under the published protocol (``paper``). ``classifiers_<balancing>_<protocol>``
contains every evaluated pair in the same layout, and ``classifiers_summary``
adds macro-F1, balanced accuracy and row counts for all pairs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from iotsynth.classify.models import DISPLAY_NAMES
from iotsynth.tables import write_table

LOGGER = logging.getLogger(__name__)

# Published tables: file stem -> balancing shown (protocol paper).
PUBLISHED_TABLES = {"table07_wgan": "wgan", "table08_smote": "smote"}
PUBLISHED_PROTOCOL = "paper"
# Long-table column -> published column header.
LAYOUT = {
    "classifier": "Classifier",
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1-score",
    "train_seconds": "Training time (s)",
    "memory_mb": "Memory (MB)",
}
SUMMARY_COLUMNS = (
    "balancing", "protocol", "classifier", "accuracy", "precision", "recall", "f1", "macro_f1",
    "balanced_accuracy", "train_seconds", "memory_mb", "train_rows", "synthetic_train_rows",
    "test_rows", "synthetic_test_rows",
)
METRIC_DIGITS = 4
REFERENCE_COLUMNS = ("table", "balancing", "protocol", "classifier", "metric", "value", "source")


def read_metrics(paths: Mapping[tuple[str, str], str | Path]) -> pd.DataFrame:
    """Read metrics files into one long table.

    Parameters
    ----------
    paths : mapping of (balancing, protocol) to path
        ``results/metrics/<balancing>/<protocol>.json`` files.

    Returns
    -------
    pandas.DataFrame
        ``SUMMARY_COLUMNS``, one row per (balancing, protocol, classifier),
        classifier as its display name (RF, NN, SVM).
    """
    records = []
    for (balancing, protocol), path in paths.items():
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if document.get("balancing") != balancing or document.get("protocol") != protocol:
            raise ValueError(f"{path} contains balancing {document.get('balancing')!r} and protocol "
                             f"{document.get('protocol')!r}, expected {balancing!r} and {protocol!r}; rerun evaluate")
        rows = document["rows"]
        for name, scores in document["classifiers"].items():
            records.append({
                "balancing": balancing,
                "protocol": protocol,
                "classifier": DISPLAY_NAMES.get(name, name),
                **{key: scores[key] for key in ("accuracy", "precision", "recall", "f1", "macro_f1",
                                                "balanced_accuracy", "train_seconds")},
                "memory_mb": scores["peak_memory_mb"],
                "train_rows": rows["train"]["real"] + rows["train"]["synthetic"],
                "synthetic_train_rows": rows["train"]["synthetic"],
                "test_rows": rows["test"]["real"] + rows["test"]["synthetic"],
                "synthetic_test_rows": rows["test"]["synthetic"],
            })
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))


def published_layout(long: pd.DataFrame, balancing: str, protocol: str) -> pd.DataFrame:
    """Return the rows of one (balancing, protocol) pair in the published layout, rounded for reading."""
    rows = long[(long["balancing"] == balancing) & (long["protocol"] == protocol)]
    if rows.empty:
        raise ValueError(f"no metrics for balancing {balancing!r} and protocol {protocol!r}")
    order = {name: index for index, name in enumerate(DISPLAY_NAMES.values())}
    rows = rows.sort_values("classifier", key=lambda column: column.map(order))
    table = rows[list(LAYOUT)].rename(columns=LAYOUT).reset_index(drop=True)
    for column in ("Accuracy", "Precision", "Recall", "F1-score"):
        table[column] = table[column].round(METRIC_DIGITS)
    for column in ("Training time (s)", "Memory (MB)"):
        table[column] = table[column].round(1)
    return table


def table_stems(balancings: list[str], protocols: list[str]) -> list[str]:
    """Return the file stems the tables rule writes (without folder and suffix)."""
    stems = [stem for stem, balancing in PUBLISHED_TABLES.items()
             if balancing in balancings and PUBLISHED_PROTOCOL in protocols]
    stems += [f"classifiers_{balancing}_{protocol}" for balancing in balancings for protocol in protocols]
    return stems + ["classifiers_summary"]


def write_classifier_tables(long: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Write the published-layout tables, one per evaluated pair, and the summary, as CSV and Markdown."""
    folder = Path(folder)
    pairs = long[["balancing", "protocol"]].drop_duplicates().itertuples(index=False)
    pairs = [(pair.balancing, pair.protocol) for pair in pairs]
    written = []
    for stem, balancing in PUBLISHED_TABLES.items():
        if (balancing, PUBLISHED_PROTOCOL) in pairs:
            written += write_table(published_layout(long, balancing, PUBLISHED_PROTOCOL), folder / stem)
    for balancing, protocol in pairs:
        written += write_table(published_layout(long, balancing, protocol), folder / f"classifiers_{balancing}_{protocol}")

    summary = long.copy()
    metric_columns = ["accuracy", "precision", "recall", "f1", "macro_f1", "balanced_accuracy"]
    summary[metric_columns] = summary[metric_columns].round(METRIC_DIGITS)
    summary[["train_seconds", "memory_mb"]] = summary[["train_seconds", "memory_mb"]].round(1)
    written += write_table(summary, folder / "classifiers_summary")
    return written


def read_reference(path: str | Path) -> pd.DataFrame:
    """Read the published values (``resources/paper_results.csv``); an empty ``value`` means not recorded."""
    reference = pd.read_csv(path, dtype={"table": "string", "balancing": "string"}, keep_default_na=False)
    missing = [column for column in REFERENCE_COLUMNS if column not in reference.columns]
    if missing:
        raise ValueError(f"{path} is missing the columns {missing}; expected {list(REFERENCE_COLUMNS)}")
    reference["value"] = pd.to_numeric(reference["value"].replace("", np.nan), errors="raise")
    return reference


def _our_value(long: pd.DataFrame, balancing: str, protocol: str, classifier: str, metric: str) -> float | None:
    rows = long[(long["balancing"] == balancing) & (long["protocol"] == protocol) & (long["classifier"] == classifier)]
    return None if rows.empty else float(rows.iloc[0][metric])


def _format(value: float | None, metric: str) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:.1f}" if metric in ("train_seconds", "memory_mb") else f"{value:.4f}"


def comparison_table(long: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Return published and our values side by side, with ours minus published.

    Rows of the reference file that name a balancing are matched on
    (balancing, protocol, classifier, metric). A row without a balancing (a
    published value whose table is not recorded) lists our value for every
    balancing that has a published table, and no difference.
    """
    records = []
    for row in reference.itertuples(index=False):
        published = None if pd.isna(row.value) else float(row.value)
        if row.balancing:
            ours = _our_value(long, row.balancing, row.protocol, row.classifier, row.metric)
            difference = None if ours is None or published is None else ours - published
            our_text, difference_text = _format(ours, row.metric), _format(difference, row.metric)
            if difference_text and not difference_text.startswith("-"):
                difference_text = "+" + difference_text
        else:
            parts = []
            for balancing in PUBLISHED_TABLES.values():
                value = _our_value(long, balancing, row.protocol, row.classifier, row.metric)
                if value is not None:
                    parts.append(f"{balancing}: {_format(value, row.metric)}")
            our_text, difference_text = "; ".join(parts), ""
        records.append({
            "table": row.table or "not recorded",
            "balancing": row.balancing or "not recorded",
            "protocol": row.protocol,
            "classifier": row.classifier,
            "metric": row.metric,
            "published": _format(published, row.metric) or "not recorded",
            "ours": our_text or "not evaluated",
            "difference": difference_text,
        })
    return pd.DataFrame(records)


def write_paper_comparison(long: pd.DataFrame, reference: pd.DataFrame, reference_path: str | Path,
                           path: str | Path) -> Path:
    """Write ``paper_comparison.md``: the recorded published values beside ours, and their sources."""
    table = comparison_table(long, reference)
    recorded = table[table["published"] != "not recorded"]
    sources = sorted({source for source in reference["source"] if source})
    lines = [
        "# Our classifier results beside the published ones",
        "",
        f"Published values are read from `{reference_path}`, which fills in only values known from the source. "
        f"{len(table) - len(recorded)} of its {len(table)} values are empty (not recorded) and left out here; "
        "`table07_wgan` and `table08_smote` give all of ours. Difference is ours minus published.",
        "",
        "Both sides use the `paper` protocol, where the test split is topped up with synthetic rows. "
        "Training time and memory depend on the machine (see the `machine` and `threads` entries of each "
        "metrics file), so their difference says little about the methods.",
        "",
        recorded.to_markdown(index=False),
        "",
        "Sources:",
        "",
        *[f"- {source}" for source in sources],
        "",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    LOGGER.info("wrote %s: %d published values, %d recorded", path, len(reference), int(reference["value"].notna().sum()))
    return path


def run_tables_stage(metrics_paths: Mapping[tuple[str, str], str | Path], reference_path: str | Path,
                     folder: str | Path, comparison_path: str | Path) -> pd.DataFrame:
    """Run the ``tables`` rule: classifier tables for every evaluated pair and the paper comparison.

    Returns
    -------
    pandas.DataFrame
        The long table (``SUMMARY_COLUMNS``).
    """
    long = read_metrics(metrics_paths)
    LOGGER.info("read %d metrics files: %d rows", len(metrics_paths), len(long))
    write_classifier_tables(long, folder)
    write_paper_comparison(long, read_reference(reference_path), reference_path, comparison_path)
    return long


def split_comparison(stratified: pd.DataFrame, by_capture: pd.DataFrame, stratified_windows: pd.DataFrame,
                     by_capture_windows: pd.DataFrame) -> pd.DataFrame:
    """Set the scores of the stratified split beside those of the by_capture split.

    Parameters
    ----------
    stratified, by_capture : pandas.DataFrame
        ``classifiers_summary`` tables of the two runs (``SUMMARY_COLUMNS``).
    stratified_windows, by_capture_windows : pandas.DataFrame
        ``windowed`` tables of the two runs.

    Returns
    -------
    pandas.DataFrame
        One row per (balancing, protocol, classifier) evaluated in both
        runs: accuracy, macro-F1 and balanced accuracy per packet under each
        split and their difference (by_capture minus stratified), then the
        macro-F1 of the longest window under each split (majority vote).
    """
    keys = ["balancing", "protocol", "classifier"]
    metrics = ["accuracy", "macro_f1", "balanced_accuracy"]
    merged = stratified[keys + metrics].merge(by_capture[keys + metrics], on=keys,
                                              suffixes=("_stratified", "_by_capture"))
    for metric in metrics:
        merged[f"{metric}_difference"] = merged[f"{metric}_by_capture"] - merged[f"{metric}_stratified"]

    windows = []
    for frame, suffix in ((stratified_windows, "stratified"), (by_capture_windows, "by_capture")):
        if frame.empty:
            continue
        longest = frame[(frame["k"] == frame["k"].max()) & (frame["method"] == "vote")].copy()
        k = int(longest["k"].max())
        windows.append(longest[keys + ["macro_f1"]].rename(columns={"macro_f1": f"macro_f1_k{k}_{suffix}"}))
    for part in windows:
        merged = merged.merge(part, on=keys, how="left")
    columns = keys + [f"{metric}_{suffix}" for metric in metrics for suffix in ("stratified", "by_capture",
                                                                                  "difference")]
    return merged[columns + [name for name in merged.columns if name not in columns]]


def run_split_comparison_stage(paths: Mapping[str, str | Path], stem: str | Path) -> pd.DataFrame:
    """Run the ``split_comparison`` rule.

    Parameters
    ----------
    paths : mapping of str to path
        ``stratified`` and ``by_capture`` (classifier summaries),
        ``stratified_windows`` and ``by_capture_windows`` (windowed tables).
    stem : str or pathlib.Path
        Output path without suffix; ``.csv`` and ``.md`` are written.
    """
    tables = {name: pd.read_csv(path) for name, path in paths.items()}
    table = split_comparison(tables["stratified"], tables["by_capture"], tables["stratified_windows"],
                             tables["by_capture_windows"])
    if table.empty:
        raise ValueError(f"{paths['stratified']} and {paths['by_capture']} share no (balancing, protocol, "
                         "classifier); by_capture.balancings must be among classifiers.balancings")
    rounded = table.copy()
    numeric = rounded.select_dtypes("number").columns
    rounded[numeric] = rounded[numeric].round(METRIC_DIGITS)
    write_table(rounded, stem)
    return table
