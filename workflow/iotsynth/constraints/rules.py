"""Rules compiled from the sections of one device type, and their NumPy test.

Every section becomes rules of one of two shapes:

- a row rule (``range:<feature>`` from ``numerical_constraints``,
  ``protocol:<id>`` from ``protocol_rules``) is broken by a row where every
  ``when`` condition holds and some ``then`` condition does not. A range
  constraint is a row rule with no ``when``;
- a correlation rule (``correlation:<a>|<b>``) is broken by a set of rows
  whose Pearson correlation, times the sign of ``direction``, is below
  ``fraction * strength``. It has no meaning for a single row.

Numeric comparisons allow a tolerance per feature (:func:`feature_tolerances`)
so that float32 round-off in the generators' scaled space does not flip a
decision that the NumPy evaluator makes in original units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

CORRELATION_KINDS = ("continuous", "discrete", "binary")


@dataclass(frozen=True)
class Condition:
    """One comparison of a feature with a constant.

    Attributes
    ----------
    feature : str
        Feature name.
    op : str
        ``==``, ``!=``, ``<=``, ``>=``, ``between``, ``in`` or ``not_in``.
    value : float or tuple of float
        A number for the first four operators, ``(low, high)`` for
        ``between`` and the listed values for ``in`` and ``not_in``.
    """

    feature: str
    op: str
    value: float | tuple[float, ...]

    @classmethod
    def from_json(cls, item: Mapping) -> Condition:
        value = item["value"]
        if isinstance(value, list):
            value = tuple(float(v) for v in value)
        else:
            value = float(value)
        return cls(str(item["feature"]), str(item["op"]), value)

    def constants(self) -> tuple[float, ...]:
        """Return the constants the condition compares with."""
        return self.value if isinstance(self.value, tuple) else (self.value,)


@dataclass(frozen=True)
class RowRule:
    """A rule that each row keeps or breaks.

    Attributes
    ----------
    rule_id : str
        ``range:<feature>`` or ``protocol:<id>``.
    section : str
        ``range`` or ``protocol``.
    when : tuple of Condition
        All must hold for the rule to apply; empty applies to every row.
    then : tuple of Condition
        All must hold where the rule applies.
    """

    rule_id: str
    section: str
    when: tuple[Condition, ...]
    then: tuple[Condition, ...]


@dataclass(frozen=True)
class CorrelationRule:
    """A sign and minimum strength of the correlation of two features.

    Attributes
    ----------
    rule_id : str
        ``correlation:<first>|<second>``.
    first, second : str
        Feature names.
    sign : int
        +1 for ``positive``, -1 for ``negative``.
    strength : float
        Expected absolute correlation.
    threshold : float
        The rule holds when ``sign * r >= threshold``.
    """

    rule_id: str
    first: str
    second: str
    sign: int
    strength: float
    threshold: float


def range_conditions(feature: str, constraint: Mapping) -> tuple[Condition, ...]:
    """Return the conditions a value keeps under one numerical constraint."""
    conditions = [Condition(feature, "between", (float(constraint["min"]), float(constraint["max"])))]
    if "allowed" in constraint:
        conditions.append(Condition(feature, "in", tuple(float(v) for v in constraint["allowed"])))
    return tuple(conditions)


def row_rules(sections: Mapping) -> list[RowRule]:
    """Compile the range and protocol sections of one device type.

    Parameters
    ----------
    sections : mapping
        One device type's ``numerical_constraints`` and ``protocol_rules``,
        already validated.

    Returns
    -------
    list of RowRule
        Range rules in the order of ``numerical_constraints``, then protocol
        rules in file order.
    """
    rules = [
        RowRule(f"range:{feature}", "range", (), range_conditions(feature, constraint))
        for feature, constraint in sections["numerical_constraints"].items()
    ]
    for rule in sections["protocol_rules"]:
        rules.append(
            RowRule(
                f"protocol:{rule['id']}",
                "protocol",
                tuple(Condition.from_json(item) for item in rule["if"]),
                tuple(Condition.from_json(item) for item in rule["then"]),
            )
        )
    return rules


def correlation_rules(sections: Mapping, fraction: float) -> list[CorrelationRule]:
    """Compile the correlation section of one device type.

    Parameters
    ----------
    sections : mapping
        One device type's sections, already validated.
    fraction : float
        Share of the stated strength the correlation must reach.
    """
    rules = []
    for item in sections["feature_correlations"]:
        first, second = item["features"]
        strength = float(item["strength"])
        rules.append(
            CorrelationRule(
                rule_id=f"correlation:{first}|{second}",
                first=first,
                second=second,
                sign=1 if item["direction"] == "positive" else -1,
                strength=strength,
                threshold=fraction * strength,
            )
        )
    return rules


def feature_tolerances(document: Mapping, relative_tolerance: float) -> dict[str, float]:
    """Return the absolute tolerance of numeric comparisons on each feature.

    The tolerance is ``relative_tolerance`` times the largest of 1, the
    feature's training ``|minimum|`` and ``|maximum|`` and every constant a
    constraint compares it with. float32 has about 7 significant digits, so
    a tolerance of 1e-6 of that magnitude stays above the round-off of a
    scaled value mapped back to original units.
    """
    magnitude = {
        entry["name"]: max(1.0, abs(float(entry["minimum"])), abs(float(entry["maximum"])))
        for entry in document["features"]
    }
    for sections in document["device_types"].values():
        for rule in row_rules(sections):
            for condition in rule.when + rule.then:
                largest = max(abs(c) for c in condition.constants())
                magnitude[condition.feature] = max(magnitude[condition.feature], largest)
    return {name: relative_tolerance * value for name, value in magnitude.items()}


def condition_holds(values: np.ndarray, condition: Condition, tolerance: float) -> np.ndarray:
    """Test a condition on an array of values in original units.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_rows,)
        Feature values.
    condition : Condition
        The comparison.
    tolerance : float
        Absolute slack of every comparison (equal within ``tolerance``).

    Returns
    -------
    numpy.ndarray of shape (n_rows,), bool
    """
    values = np.asarray(values, dtype=np.float64)
    op, value = condition.op, condition.value

    if op == "==":
        return np.abs(values - value) <= tolerance
    if op == "!=":
        return np.abs(values - value) > tolerance
    if op == "<=":
        return values <= value + tolerance
    if op == ">=":
        return values >= value - tolerance
    if op == "between":
        low, high = value
        return (values >= low - tolerance) & (values <= high + tolerance)

    near = np.abs(values[:, None] - np.asarray(value, dtype=np.float64)[None, :]) <= tolerance
    if op == "in":
        return near.any(axis=1)
    if op == "not_in":
        return ~near.any(axis=1)
    raise ValueError(f"unknown condition operator {op!r}; use one of ==, !=, <=, >=, between, in, not_in")


def rule_outcome(
    columns: Mapping[str, np.ndarray], rule: RowRule, tolerances: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Return where a row rule applies and where it is broken.

    Parameters
    ----------
    columns : mapping of str to numpy.ndarray of shape (n_rows,)
        Feature values by name.
    rule : RowRule
        The rule.
    tolerances : mapping of str to float
        Absolute tolerance by feature, from :func:`feature_tolerances`.

    Returns
    -------
    applies, broken : numpy.ndarray of shape (n_rows,), bool
    """
    n_rows = len(next(iter(columns.values())))
    applies = np.ones(n_rows, dtype=bool)
    for condition in rule.when:
        applies &= condition_holds(columns[condition.feature], condition, tolerances[condition.feature])

    kept = np.ones(n_rows, dtype=bool)
    for condition in rule.then:
        kept &= condition_holds(columns[condition.feature], condition, tolerances[condition.feature])
    return applies, applies & ~kept


def pearson(first: np.ndarray, second: np.ndarray) -> float:
    """Return the Pearson correlation, or 0 when either column is constant."""
    first = np.asarray(first, dtype=np.float64) - np.mean(first)
    second = np.asarray(second, dtype=np.float64) - np.mean(second)
    denominator = np.sqrt(np.sum(first**2) * np.sum(second**2))
    if denominator == 0:
        return 0.0
    return float(np.sum(first * second) / denominator)
