"""NumPy evaluation of a constraint set on feature tables in original units.

The rejection filter uses :func:`row_violation_score`, the fidelity report
:func:`violation_rates` and :func:`summarize_rates`. Frames hold feature
columns as in the packet table (other columns are ignored); ``labels`` give
each row's device type.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from iotsynth.constraints.rules import pearson, rule_outcome

RATE_COLUMNS = (
    "device_type",
    "section",
    "rule_id",
    "n_rows",
    "n_applicable",
    "n_violated",
    "rate",
    "conditional_rate",
    "value",
)


def _columns(constraints, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    missing = [name for name in constraints.kinds if name not in frame.columns]
    if missing:
        raise ValueError(
            f"the frame lacks {len(missing)} feature columns the constraints use, e.g. {missing[:5]}; "
            "pass rows in original units with every feature column"
        )
    return {name: frame[name].to_numpy(dtype=np.float64) for name in constraints.kinds}


def _labels(constraints, frame: pd.DataFrame, labels) -> np.ndarray:
    labels = np.asarray(labels, dtype=object)
    if labels.shape != (len(frame),):
        raise ValueError(f"labels have shape {labels.shape}; expected one device type per row ({len(frame)},)")
    unknown = sorted(set(labels) - set(constraints.device_types))
    if unknown:
        raise ValueError(
            f"labels name device types without constraints: {unknown[:10]}; "
            f"known device types are {constraints.device_types}"
        )
    return labels


def _device_type_columns(constraints, frame: pd.DataFrame, labels):
    """Yield each device type present, in name order, with the mask of its rows and those rows' feature columns."""
    labels = _labels(constraints, frame, labels)
    columns = _columns(constraints, frame)
    for device_type in sorted(set(labels)):
        selected = labels == device_type
        yield device_type, selected, {name: values[selected] for name, values in columns.items()}


def violations(constraints, frame: pd.DataFrame, device_type: str) -> pd.DataFrame:
    """Return which rows break which row rule of one device type.

    Parameters
    ----------
    constraints : ConstraintSet
        The constraint set.
    frame : pandas.DataFrame
        Rows of this device type with every feature column in original units.
    device_type : str
        The device type whose rules apply to every row.

    Returns
    -------
    pandas.DataFrame of bool, with the index of ``frame``
        One column per range and protocol rule (``range:<feature>``,
        ``protocol:<id>``), True where the row breaks it. Correlation rules
        concern a set of rows, see :func:`correlation_checks`.
    """
    rules = constraints.row_rules(device_type)
    columns = _columns(constraints, frame)
    broken = {rule.rule_id: rule_outcome(columns, rule, constraints.tolerances)[1] for rule in rules}
    return pd.DataFrame(broken, index=frame.index, columns=[rule.rule_id for rule in rules], dtype=bool)


def correlation_checks(constraints, frame: pd.DataFrame, labels) -> pd.DataFrame:
    """Compute each device type's correlations and test them.

    Parameters
    ----------
    constraints : ConstraintSet
        The constraint set.
    frame : pandas.DataFrame
        Rows with every feature column in original units.
    labels : array-like of str of shape (n_rows,)
        Device type of each row.

    Returns
    -------
    pandas.DataFrame
        One row per correlation rule of each device type present, with
        ``n_rows``, ``checked`` (at least ``correlation_min_rows`` rows),
        ``pearson`` (NaN when not checked), ``threshold`` and ``violated``.
    """
    rows = []
    for device_type, selected, subset in _device_type_columns(constraints, frame, labels):
        n_rows = int(selected.sum())
        checked = n_rows >= constraints.correlation_min_rows
        for rule in constraints.correlation_rules(device_type):
            r = pearson(subset[rule.first], subset[rule.second]) if checked else np.nan
            rows.append(
                {
                    "device_type": device_type,
                    "rule_id": rule.rule_id,
                    "n_rows": n_rows,
                    "checked": checked,
                    "pearson": r,
                    "threshold": rule.threshold,
                    "violated": bool(checked and rule.sign * r < rule.threshold),
                }
            )
    return pd.DataFrame(rows, columns=["device_type", "rule_id", "n_rows", "checked", "pearson", "threshold", "violated"])


def violation_rates(constraints, frame: pd.DataFrame, labels) -> pd.DataFrame:
    """Return the violation rate of every rule of every device type present.

    Parameters
    ----------
    constraints : ConstraintSet
        The constraint set.
    frame : pandas.DataFrame
        Rows with every feature column in original units.
    labels : array-like of str of shape (n_rows,)
        Device type of each row.

    Returns
    -------
    pandas.DataFrame
        One row per rule and device type, with these columns:

        - ``device_type``, ``section`` (``range``, ``protocol`` or
          ``correlation``) and ``rule_id``;
        - ``n_rows``: rows of the device type;
        - ``n_applicable``: rows where the rule's ``when`` conditions hold,
          or for a correlation rule 1 when it was checked;
        - ``n_violated``: rows that break the rule, or 0 or 1;
        - ``rate``: ``n_violated / n_rows``, or for a correlation rule 0 or
          1 (NaN when not checked);
        - ``conditional_rate``: ``n_violated / n_applicable``;
        - ``value``: the measured correlation, NaN for row rules.
    """
    records = []
    for device_type, selected, subset in _device_type_columns(constraints, frame, labels):
        n_rows = int(selected.sum())
        for rule in constraints.row_rules(device_type):
            applies, broken = rule_outcome(subset, rule, constraints.tolerances)
            n_applicable, n_violated = int(applies.sum()), int(broken.sum())
            records.append(
                (
                    device_type,
                    rule.section,
                    rule.rule_id,
                    n_rows,
                    n_applicable,
                    n_violated,
                    n_violated / n_rows,
                    n_violated / n_applicable if n_applicable else np.nan,
                    np.nan,
                )
            )

    checks = correlation_checks(constraints, frame, labels)
    for check in checks.itertuples(index=False):
        violated = int(check.violated)
        rate = float(violated) if check.checked else np.nan
        records.append(
            (check.device_type, "correlation", check.rule_id, check.n_rows, int(check.checked), violated, rate, rate, check.pearson)
        )
    return pd.DataFrame.from_records(records, columns=list(RATE_COLUMNS))


def row_violation_score(constraints, frame: pd.DataFrame, labels) -> np.ndarray:
    """Return the share of its device type's row rules that each row breaks.

    The rejection filter keeps rows whose score is at most its tolerance;
    0 means the row keeps every range and protocol rule.

    Parameters
    ----------
    constraints : ConstraintSet
        The constraint set.
    frame : pandas.DataFrame
        Rows with every feature column in original units.
    labels : array-like of str of shape (n_rows,)
        Device type of each row.

    Returns
    -------
    numpy.ndarray of shape (n_rows,), float64
        Values in [0, 1], in the row order of ``frame``; 0 for a device type
        without row rules.
    """
    scores = np.zeros(len(frame), dtype=np.float64)
    for device_type, selected, subset in _device_type_columns(constraints, frame, labels):
        rules = constraints.row_rules(device_type)
        if not rules:
            continue
        broken = sum(rule_outcome(subset, rule, constraints.tolerances)[1].astype(np.int64) for rule in rules)
        scores[selected] = broken / len(rules)
    return scores


def summarize_rates(rates: pd.DataFrame, sections: Sequence[str] = ("range", "protocol", "correlation")) -> pd.DataFrame:
    """Summarize :func:`violation_rates` per section.

    Parameters
    ----------
    rates : pandas.DataFrame
        Output of :func:`violation_rates`.
    sections : sequence of str
        Values of its ``section`` column to summarize, in output order.

    Returns
    -------
    pandas.DataFrame
        One row per section with ``rules`` (rule and device type pairs
        evaluated), ``mean_rate`` (mean over rules of the violation rate),
        ``max_rate``, ``rules_violated`` (rules with a rate above 0) and
        ``violation_rate`` (violated row-rule pairs over all row-rule pairs;
        for correlations, violated rules over checked rules).
    """
    rows = []
    for section in sections:
        part = rates[(rates["section"] == section) & rates["rate"].notna()]
        if section == "correlation":
            pairs = part["n_applicable"].sum()
        else:
            pairs = part["n_rows"].sum()
        rows.append(
            {
                "section": section,
                "rules": len(part),
                "mean_rate": part["rate"].mean() if len(part) else np.nan,
                "max_rate": part["rate"].max() if len(part) else np.nan,
                "rules_violated": int((part["rate"] > 0).sum()),
                "violation_rate": part["n_violated"].sum() / pairs if pairs else np.nan,
            }
        )
    return pd.DataFrame(rows)

