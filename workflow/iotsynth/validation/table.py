"""The ``validation_table`` rule: one row per generator and device type, from the validation JSON files."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from iotsynth.documents import read_json
from iotsynth.tables import write_table
from iotsynth.validation.stage import FORMAT_NAME

LOGGER = logging.getLogger(__name__)

COLUMNS = (
    "generator",
    "device_type",
    "status",
    "backend",
    "model",
    "sample_size",
    "score",
    "offline_score",
    "constraint_score",
    "distance_score",
    "doubted_features",
)


def read_document(path: str | Path) -> dict:
    """Read one ``results/validation/<generator>.json`` and check its format."""
    path = Path(path)
    document = read_json(path, "validation file", "validate")
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a validation file (format {FORMAT_NAME!r}); rerun the validate rule")
    return document


def validation_rows(document: dict) -> list[dict]:
    """Return the table rows of one generator, in device type order."""
    rows = []
    for device_type, entry in document["device_types"].items():
        offline = entry.get("offline", {})
        rows.append(
            {
                "generator": document["generator"],
                "device_type": device_type,
                "status": entry["status"],
                "backend": entry["backend"],
                "model": entry["model"] or "",
                "sample_size": entry["sample_size"],
                "score": entry["score"],
                "offline_score": offline.get("score"),
                "constraint_score": offline.get("constraint_score"),
                "distance_score": offline.get("distance_score"),
                "doubted_features": ", ".join(item["feature"] for item in entry["doubted_features"]),
            }
        )
    return rows


def validation_table(documents: Sequence[dict]) -> pd.DataFrame:
    """Return one row per generator and device type, generators in the given order.

    Scores are rounded to 4 decimals; a skipped device type has empty scores.
    """
    rows = [row for document in documents for row in validation_rows(document)]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("score", "offline_score", "constraint_score", "distance_score"):
        table[column] = pd.to_numeric(table[column]).round(4)
    return table


def run_validation_table_stage(paths: Sequence[str | Path], stem: str | Path) -> pd.DataFrame:
    """Run the ``validation_table`` rule: read every generator's file, write ``<stem>.csv`` and ``<stem>.md``."""
    documents = [read_document(path) for path in paths]
    table = validation_table(documents)
    write_table(table, stem)
    for document in documents:
        summary = document["summary"]
        LOGGER.info(
            "%s (%s backend): mean score %s, min score %s over %d device types, %d skipped",
            document["generator"], document["backend"], summary["mean_score"], summary["min_score"],
            summary["device_types_scored"], summary["device_types_skipped"],
        )
    return table
