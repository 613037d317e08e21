"""Offline backend: derive each device type's constraints from the training rows.

No request leaves the machine and the result depends only on the rows, the
feature graph and the settings.

numerical_constraints
    Continuous and discrete features: the ``range_quantiles`` of the device
    type's rows, widened on each side by ``range_margin`` times their
    distance and clipped to the training range of all device types (discrete
    bounds rounded outward). Binary and categorical features: the values seen
    in at least ``category_min_share`` of the rows, as ``allowed``.
feature_correlations
    The ``correlation_candidates`` strongest graph edges between
    non-categorical features, recomputed as Pearson correlation on the device
    type's rows; pairs with ``|r| >= correlation_min_strength`` are kept,
    strongest first. The sign comes from the device type's rows, not from
    the graph, because a pair can correlate differently within one device.
    Both features must differ from their most common value on at least
    ``correlation_min_varying_share`` of the rows. A correlation carried by
    a few rare packets (DNS answers of a device that seldom resolves) is
    undefined in most batches, because there the feature is constant.
protocol_rules
    Implications "when A then B1 and B2 ...". A is one condition ``f == v``
    on a binary or categorical feature, or a discrete feature at 0 (the value
    of an absent layer), that holds on at least ``rule_min_support`` rows but
    not on nearly all of them. Each B is a condition that holds on at least
    ``rule_min_confidence`` of the rows where A holds but not on that share of
    all the device type's rows, so it says more than the device type does as
    a whole: a feature fixed at one value, a numeric interval at most
    ``rule_narrow_fraction`` as wide as the device type's range, or a smaller
    set of categories. Conditions are dropped, least reliable first,
    until all of them together hold on ``rule_min_confidence`` of those rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from iotsynth.constraints.rules import CORRELATION_KINDS, Condition, condition_holds, pearson
from iotsynth.constraints.settings import ConstraintSettings

LOGGER = logging.getLogger(__name__)

SCALED_KINDS = ("continuous", "discrete")
SET_KINDS = ("binary", "categorical")


def correlation_candidates(edges: pd.DataFrame, kinds: Mapping[str, str], limit: int) -> list[tuple[str, str]]:
    """Return the strongest graph edges between two non-categorical features.

    Parameters
    ----------
    edges : pandas.DataFrame
        ``results/graph/edges.csv``: at least ``source``, ``target`` and
        ``weight``.
    kinds : mapping of str to str
        Feature kind by name.
    limit : int
        Maximum number of pairs to return.
    """
    missing = [column for column in ("source", "target", "weight") if column not in edges.columns]
    if missing:
        raise ValueError(f"the graph edge table lacks the columns {missing}; columns are {list(edges.columns)}")
    usable = edges[
        edges["source"].map(kinds).isin(CORRELATION_KINDS) & edges["target"].map(kinds).isin(CORRELATION_KINDS)
    ]
    usable = usable.sort_values("weight", ascending=False, kind="stable").head(limit)
    return list(zip(usable["source"].astype(str), usable["target"].astype(str)))


def derive_constraints(
    frame: pd.DataFrame,
    kinds: Mapping[str, str],
    ranges: Mapping[str, tuple[float, float]],
    edges: pd.DataFrame,
    settings: ConstraintSettings,
    label_column: str = "device_type",
) -> dict[str, dict]:
    """Derive the three sections for every device type in ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Training rows with ``label_column`` and every feature column.
    kinds : mapping of str to str
        Feature kind by name, in dictionary order.
    ranges : mapping of str to (float, float)
        Training minimum and maximum of each feature over all device types.
    edges : pandas.DataFrame
        The graph edge table.
    settings : ConstraintSettings
        Quantiles, margins and limits.
    label_column : str
        Column with the device type.

    Returns
    -------
    dict of str to dict
        By device type, in sorted order: ``numerical_constraints``,
        ``feature_correlations``, ``protocol_rules`` and ``n_rows``.
    """
    names = list(kinds)
    candidates = correlation_candidates(edges, kinds, settings.correlation_candidates)
    result = {}
    for device_type, rows in frame.groupby(label_column, sort=True):
        values = rows[names].to_numpy(dtype=np.float64)
        numerical = numerical_constraints(values, names, kinds, ranges, settings)
        result[str(device_type)] = {
            "numerical_constraints": numerical,
            "feature_correlations": feature_correlations(values, names, candidates, settings),
            "protocol_rules": protocol_rules(values, names, kinds, numerical, settings),
            "n_rows": len(rows),
        }
        LOGGER.info(
            "%s: %d rows, %d numerical constraints, %d correlations, %d protocol rules",
            device_type,
            len(rows),
            len(numerical),
            len(result[str(device_type)]["feature_correlations"]),
            len(result[str(device_type)]["protocol_rules"]),
        )
    return result


def _number(value: float, kind: str) -> float | int:
    """Return a JSON number: an int for integer-valued kinds."""
    return int(value) if kind != "continuous" else float(value)


def numerical_constraints(
    values: np.ndarray,
    names: Sequence[str],
    kinds: Mapping[str, str],
    ranges: Mapping[str, tuple[float, float]],
    settings: ConstraintSettings,
) -> dict[str, dict]:
    """Return the value range of every feature on one device type's rows."""
    low_q, high_q = np.quantile(values, settings.range_quantiles, axis=0)
    typical_low, typical_high = np.quantile(values, settings.typical_quantiles, axis=0)
    constraints = {}
    for position, name in enumerate(names):
        kind = kinds[name]
        if kind in SET_KINDS:
            allowed = _frequent_values(values[:, position], settings.category_min_share)
            low, high = min(allowed), max(allowed)
        else:
            margin = settings.range_margin * (high_q[position] - low_q[position])
            overall_low, overall_high = ranges[name]
            low = max(low_q[position] - margin, overall_low)
            high = min(high_q[position] + margin, overall_high)
            if kind == "discrete":
                low, high = math.floor(low), math.ceil(high)

        typical = np.clip([typical_low[position], typical_high[position]], low, high)
        if kind != "continuous":
            typical = [math.floor(typical[0]), math.ceil(typical[1])]
        entry = {
            "min": _number(low, kind),
            "max": _number(high, kind),
            "typical": [_number(typical[0], kind), _number(typical[1], kind)],
        }
        if kind in SET_KINDS:
            entry["allowed"] = [int(value) for value in allowed]
        constraints[name] = entry
    return constraints


def _frequent_values(column: np.ndarray, min_share: float) -> list[float]:
    """Return the values seen in at least ``min_share`` of the rows (the most frequent one at least)."""
    unique, counts = np.unique(column, return_counts=True)
    kept = unique[counts >= min_share * len(column)]
    if len(kept) == 0:
        kept = unique[[np.argmax(counts)]]
    return sorted(float(value) for value in kept)


def feature_correlations(
    values: np.ndarray, names: Sequence[str], candidates: Sequence[tuple[str, str]], settings: ConstraintSettings
) -> list[dict]:
    """Return the strong correlations of candidate pairs on one device type's rows."""
    position = {name: index for index, name in enumerate(names)}
    varying = {name: _varying_share(values[:, index]) >= settings.correlation_min_varying_share for name, index in position.items()}
    found = []
    for order, (first, second) in enumerate(candidates):
        if not (varying[first] and varying[second]):
            continue
        r = pearson(values[:, position[first]], values[:, position[second]])
        if abs(r) >= settings.correlation_min_strength and abs(r) > 0:
            found.append((-abs(r), order, first, second, r))
    found.sort()

    correlations = []
    for _, _, first, second, r in found[: settings.correlation_max_per_device_type]:
        correlations.append(
            {
                "features": [first, second],
                "direction": "positive" if r > 0 else "negative",
                # Rounded down, so the stated strength never exceeds the measured one.
                "strength": math.floor(abs(r) * 1000) / 1000,
            }
        )
    return correlations


def _varying_share(column: np.ndarray) -> float:
    """Return the share of rows whose value differs from the most common one."""
    _, counts = np.unique(column, return_counts=True)
    return 1.0 - counts.max() / len(column)


def _antecedents(
    values: np.ndarray, names: Sequence[str], kinds: Mapping[str, str], settings: ConstraintSettings
) -> list[tuple[int, float, np.ndarray]]:
    """Return candidate conditions ``names[f] == v`` with their row masks, without duplicate masks."""
    n_rows = len(values)
    found, seen = [], set()
    for position, name in enumerate(names):
        kind = kinds[name]
        if kind == "continuous":
            continue
        column = values[:, position]
        if kind == "discrete":
            candidates = [0.0]
        else:
            unique, counts = np.unique(column, return_counts=True)
            candidates = unique[counts >= settings.rule_min_support].tolist()
        for value in candidates:
            mask = column == value
            support = int(mask.sum())
            if support < settings.rule_min_support or support >= settings.rule_min_confidence * n_rows:
                continue
            key = np.packbits(mask).tobytes()
            if key in seen:
                continue
            seen.add(key)
            found.append((position, float(value), mask))
    return found


def _consequents(
    subset: np.ndarray,
    rows: np.ndarray,
    names: Sequence[str],
    kinds: Mapping[str, str],
    numerical: Mapping[str, dict],
    skip: int,
    settings: ConstraintSettings,
) -> list[tuple[Condition, np.ndarray]]:
    """Return conditions that hold on nearly all rows of ``subset`` but not of all the device type's ``rows``."""
    confidence = settings.rule_min_confidence
    median = np.median(subset, axis=0)
    equal_share = (subset == median).mean(axis=0)
    low_q, high_q = np.quantile(subset, settings.range_quantiles, axis=0)

    found = []
    for position, name in enumerate(names):
        constraint = numerical[name]
        if position == skip or constraint["min"] == constraint["max"] or len(constraint.get("allowed", [0, 1])) == 1:
            continue
        column = subset[:, position]
        kind = kinds[name]
        if equal_share[position] >= confidence:
            value = _number(median[position], kind)
            condition = Condition(name, "==", float(value))
        elif kind in SCALED_KINDS:
            condition = _narrow_interval(name, kind, low_q[position], high_q[position], constraint, settings)
        elif kind == "categorical":
            condition = _smaller_category_set(name, column, constraint, confidence)
        else:
            condition = None
        if condition is None:
            continue
        holds = condition_holds(column, condition, 0.0)
        if holds.mean() >= confidence and condition_holds(rows[:, position], condition, 0.0).mean() < confidence:
            found.append((condition, holds))
    return found


def _narrow_interval(name, kind, low, high, constraint, settings) -> Condition | None:
    margin = settings.range_margin * (high - low)
    low = max(low - margin, constraint["min"])
    high = min(high + margin, constraint["max"])
    if kind == "discrete":
        low, high = math.floor(low), math.ceil(high)
    if high - low > settings.rule_narrow_fraction * (constraint["max"] - constraint["min"]):
        return None
    return Condition(name, "between", (float(low), float(high)))


def _smaller_category_set(name, column, constraint, confidence) -> Condition | None:
    unique, counts = np.unique(column, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    covered = np.cumsum(counts[order]) / len(column)
    size = int(np.searchsorted(covered, confidence) + 1)
    chosen = sorted(float(value) for value in unique[order[:size]])
    if len(chosen) >= len(constraint["allowed"]):
        return None
    return Condition(name, "in", tuple(chosen))


def _drop_until_joint(found: list[tuple[Condition, np.ndarray]], confidence: float):
    """Drop the least reliable conditions until all hold together on ``confidence`` of the rows."""
    found = sorted(found, key=lambda item: -item[1].mean())
    while found:
        joint = np.logical_and.reduce([holds for _, holds in found])
        if joint.mean() >= confidence:
            return found, float(joint.mean())
        found = found[:-1]
    return [], 0.0


def _condition_json(condition: Condition, kind: str) -> dict:
    value = condition.value
    if isinstance(value, tuple):
        value = [_number(v, kind) for v in value]
    else:
        value = _number(value, kind)
    return {"feature": condition.feature, "op": condition.op, "value": value}


def protocol_rules(
    values: np.ndarray,
    names: Sequence[str],
    kinds: Mapping[str, str],
    numerical: Mapping[str, dict],
    settings: ConstraintSettings,
) -> list[dict]:
    """Return implications that hold on nearly all of one device type's rows."""
    rules = []
    for position, value, mask in _antecedents(values, names, kinds, settings):
        found = _consequents(values[mask], values, names, kinds, numerical, position, settings)
        kept, confidence = _drop_until_joint(found, settings.rule_min_confidence)
        if not kept:
            continue
        name = names[position]
        order = {feature: index for index, feature in enumerate(names)}
        kept.sort(key=lambda item: order[item[0].feature])
        rules.append(
            {
                "id": f"{name}_eq_{int(value)}",
                "if": [{"feature": name, "op": "==", "value": int(value)}],
                "then": [_condition_json(condition, kinds[condition.feature]) for condition, _ in kept],
                "support": int(mask.sum()),
                # Rounded down, so the stated confidence never exceeds the measured one.
                "confidence": math.floor(confidence * 10000) / 10000,
            }
        )
    rules.sort(key=lambda rule: (-rule["support"], rule["id"]))
    return rules[: settings.rule_max_per_device_type]
