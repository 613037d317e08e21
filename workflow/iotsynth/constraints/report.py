"""Violation rates of real rows against a constraint set, for the ``constraint_violations`` rule."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from iotsynth.constraints.evaluate import summarize_rates, violation_rates
from iotsynth.constraints.model import ConstraintSet

LOGGER = logging.getLogger(__name__)


def _rows_violating(constraint_set: ConstraintSet, frame: pd.DataFrame, labels) -> dict[str, int]:
    """Count rows that break at least one range rule, one protocol rule, and one of either."""
    counts = dict.fromkeys(("range", "protocol", "range_or_protocol"), 0)
    for device_type in sorted(set(labels)):
        broken = constraint_set.violations(frame[labels == device_type], device_type)
        by_section = {
            section: broken.filter(like=f"{section}:").any(axis=1) for section in ("range", "protocol")
        }
        counts["range"] += int(by_section["range"].sum())
        counts["protocol"] += int(by_section["protocol"].sum())
        counts["range_or_protocol"] += int((by_section["range"] | by_section["protocol"]).sum())
    return counts


def violation_report(constraint_set: ConstraintSet, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return per-rule rates and a per-section summary for labelled rows.

    Rows of a device type without constraints are left out and logged.

    Returns
    -------
    rates : pandas.DataFrame
        See :func:`iotsynth.constraints.evaluate.violation_rates`.
    summary : pandas.DataFrame
        :func:`~iotsynth.constraints.evaluate.summarize_rates` for the
        sections ``range``, ``protocol`` and ``correlation``, and a row
        ``range_or_protocol`` for both row-rule sections together. Two more
        columns count rows: ``rows_violated`` (rows that break at least one
        rule of the section; NaN for correlations, which concern a set of
        rows) and ``row_share`` (that count over all rows).
    """
    known = frame["device_type"].isin(constraint_set.device_types)
    if not known.all():
        LOGGER.warning(
            "skipping %d rows of device types without constraints: %s",
            int((~known).sum()), sorted(frame.loc[~known, "device_type"].unique())[:10],
        )
    frame = frame[known].reset_index(drop=True)
    labels = frame["device_type"].to_numpy()

    rates = violation_rates(constraint_set, frame, labels)
    row_rates = rates[rates["section"] != "correlation"].assign(section="range_or_protocol")
    summary = pd.concat([summarize_rates(rates), summarize_rates(row_rates, ("range_or_protocol",))], ignore_index=True)

    rows_violated = _rows_violating(constraint_set, frame, labels)
    summary["rows_violated"] = summary["section"].map(rows_violated)
    summary["row_share"] = summary["rows_violated"] / len(frame) if len(frame) else float("nan")
    return rates, summary


def run_violation_stage(
    constraints: str | Path,
    dictionary: str | Path,
    split: str | Path,
    rates: str | Path,
    summary: str | Path,
) -> pd.DataFrame:
    """Run the ``constraint_violations`` rule on one split and write both tables (see :func:`violation_report`)."""
    started = time.perf_counter()
    feature_dictionary = pd.read_csv(dictionary)
    constraint_set = ConstraintSet.load(constraints, feature_dictionary)
    names = [str(name) for name in feature_dictionary["name"]]
    frame = pd.read_parquet(split, columns=["device_type", *names])
    LOGGER.info("read %s (%d device types) and %s (%d rows)", constraints, len(constraint_set.device_types), split, len(frame))

    rate_table, summary_table = violation_report(constraint_set, frame)
    for path, table in ((rates, rate_table), (summary, summary_table)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False, float_format="%.6g")
    for row in summary_table.itertuples(index=False):
        LOGGER.info(
            "%s: %d rules, violation rate %.5f, rows breaking at least one rule %.5f",
            row.section, row.rules, row.violation_rate, row.row_share,
        )
    LOGGER.info("wrote %s and %s in %.1f s", rates, summary, time.perf_counter() - started)
    return summary_table
