"""Offline backend: score synthetic rows from constraint violations and nearest-real-row distances.

No request leaves the machine. For one device type, S is the synthetic
sample and R the real reference rows (training rows of the same device
type). Both parts of the score are measured relative to R itself, so a
fresh sample of real rows of the device type scores close to 1.

Constraint score
    ``p`` is the share of rows that break at least one of the device type's
    range or protocol rules, and ``row_score = min(1, (1 - p_S) / (1 - p_R))``.
    ``correlation_score`` is the same ratio for the share of checked
    correlation rules that fail on the rows as a set. Both are 1 when every
    real row breaks the rules, because such rules tell nothing.
    ``constraint_score = row_score * correlation_score``.
Distance score
    Rows are mapped to the preprocessor's space (features scaled to [-1, 1],
    categoricals one-hot). ``d_i`` is the Euclidean distance of synthetic
    row i to its nearest reference row and ``e_j`` the distance of reference
    row j to its nearest other reference row. ``tau`` is the
    ``distance_quantile`` quantile of ``e``. A row's closeness is 1 when its
    distance is at most ``tau`` and ``tau / distance`` beyond, and
    ``distance_score = min(1, mean closeness of S / mean closeness of R)``.
Score
    ``score = sqrt(constraint_score * distance_score)``, the geometric mean:
    1 only when both parts are 1, and 0 when either is 0. With fewer than
    two reference rows the distance part is undefined and the score is the
    constraint score.

Doubted features, at most ``max_doubted_features``, come in this order.
First come features whose rule conditions fail on a share of S that exceeds
their share of R by at least ``min_excess_violation``, largest excess first.
A broken rule counts against the features of its consequences that fail.
Next come both features of each failed correlation rule. Last come features
whose mean deviation from the nearest reference row (L1 over the feature's
columns in the preprocessor's space, 0 to 2) exceeds that between reference
rows by at least ``min_excess_deviation``, largest excess first.

NOTE: an exact copy of a real row scores as fully plausible. Plausibility is
not privacy; the distance to the closest real record belongs in the
fidelity report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from iotsynth.constraints.evaluate import correlation_checks
from iotsynth.constraints.model import ConstraintSet
from iotsynth.constraints.rules import condition_holds, rule_outcome
from iotsynth.validation.sample import DeviceSample
from iotsynth.validation.settings import ValidationSettings


@dataclass
class RuleViolations:
    """Range and protocol rule failures of one set of rows.

    Attributes
    ----------
    n_rows : int
        Rows checked.
    row_share : float
        Share of rows that break at least one rule.
    feature_rows : dict of str to int
        Per feature, rows where a consequence on that feature fails.
    feature_rules : dict of str to collections.Counter
        Per feature, failing rows per rule id.
    """

    n_rows: int
    row_share: float
    feature_rows: dict[str, int] = field(default_factory=dict)
    feature_rules: dict[str, Counter] = field(default_factory=dict)

    def feature_share(self, feature: str) -> float:
        """Return the share of rows where a consequence on ``feature`` fails."""
        return self.feature_rows.get(feature, 0) / self.n_rows if self.n_rows else 0.0


@dataclass
class OfflineScore:
    """The offline score of one device type and what it was built from."""

    score: float
    constraint_score: float
    row_score: float
    correlation_score: float
    distance_score: float | None
    doubted_features: list[dict]
    diagnostics: dict

    def to_json(self) -> dict:
        """Return the score, its parts and diagnostics as a JSON-ready dict (doubted features excluded)."""
        parts = {
            "score": self.score,
            "constraint_score": self.constraint_score,
            "row_score": self.row_score,
            "correlation_score": self.correlation_score,
            "distance_score": self.distance_score,
        }
        return {**{key: _rounded(value) for key, value in parts.items()}, **self.diagnostics}


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def rule_violations(constraint_set: ConstraintSet, frame: pd.DataFrame, device_type: str) -> RuleViolations:
    """Find which rows break which range and protocol rules, and on which features.

    Parameters
    ----------
    constraint_set : ConstraintSet
        The constraint set.
    frame : pandas.DataFrame
        Rows of ``device_type`` with every feature column in original units.
    device_type : str
        The device type whose rules apply.
    """
    columns = {name: frame[name].to_numpy(dtype=np.float64) for name in constraint_set.kinds}
    broken_any = np.zeros(len(frame), dtype=bool)
    failed_by_feature: dict[str, np.ndarray] = {}
    rules_by_feature: dict[str, Counter] = {}

    for rule in constraint_set.row_rules(device_type):
        _, broken = rule_outcome(columns, rule, constraint_set.tolerances)
        if not broken.any():
            continue
        broken_any |= broken
        for condition in rule.then:
            name = condition.feature
            failed = broken & ~condition_holds(columns[name], condition, constraint_set.tolerances[name])
            if not failed.any():
                continue
            failed_by_feature[name] = failed_by_feature.get(name, np.zeros(len(frame), dtype=bool)) | failed
            rules_by_feature.setdefault(name, Counter())[rule.rule_id] += int(failed.sum())

    return RuleViolations(
        n_rows=len(frame),
        row_share=float(broken_any.mean()) if len(frame) else 0.0,
        feature_rows={name: int(mask.sum()) for name, mask in failed_by_feature.items()},
        feature_rules=rules_by_feature,
    )


def correlation_failures(constraint_set: ConstraintSet, frame: pd.DataFrame, device_type: str) -> tuple[int, list[dict]]:
    """Return the number of checked correlation rules and the failed ones with their measured correlation."""
    labels = np.full(len(frame), device_type, dtype=object)
    checks = correlation_checks(constraint_set, frame, labels)
    rules = {rule.rule_id: rule for rule in constraint_set.correlation_rules(device_type)}
    failed = [
        {"rule": rules[check.rule_id], "pearson": float(check.pearson)}
        for check in checks.itertuples(index=False)
        if check.violated
    ]
    return int(checks["checked"].sum()), failed


def relative_keep_score(share_synthetic: float, share_real: float) -> float:
    """Return ``min(1, (1 - share_synthetic) / (1 - share_real))``, or 1 when ``share_real`` is 1."""
    if share_real >= 1.0:
        return 1.0
    return float(min(1.0, (1.0 - share_synthetic) / (1.0 - share_real)))


def nearest_neighbours(
    query: np.ndarray, reference: np.ndarray, exclude_self: bool = False, chunk_rows: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Return each query row's Euclidean distance to its nearest reference row, and that row's index.

    The neighbour is the arg-min of ``|r|^2 - 2 q.r`` (the squared distance
    less ``|q|^2``, which is the same for every reference row), one matrix
    product per chunk of query rows, so memory stays at ``chunk_rows`` times
    the reference rows. The chosen neighbour's distance is then recomputed
    directly, so duplicates come out at exactly 0.

    Parameters
    ----------
    query : numpy.ndarray of shape (n_query, n_columns)
    reference : numpy.ndarray of shape (n_reference, n_columns)
    exclude_self : bool
        ``query`` is ``reference`` and a row may not be its own neighbour
        (an identical other row still is, at distance 0).
    chunk_rows : int
        Query rows per matrix product.

    Returns
    -------
    distances : numpy.ndarray of shape (n_query,)
    indices : numpy.ndarray of shape (n_query,), int
    """
    query = np.asarray(query, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    needed = 2 if exclude_self else 1
    if len(reference) < needed:
        raise ValueError(f"nearest neighbours need at least {needed} reference rows, got {len(reference)}")
    if exclude_self and query.shape != reference.shape:
        raise ValueError("exclude_self needs the query to be the reference itself")

    reference_norms = np.einsum("ij,ij->i", reference, reference)
    indices = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), chunk_rows):
        block = query[start : start + chunk_rows]
        squared = reference_norms[None, :] - 2.0 * block @ reference.T
        if exclude_self:
            rows = np.arange(len(block))
            squared[rows, start + rows] = np.inf
        indices[start : start + len(block)] = np.argmin(squared, axis=1)
    distances = np.linalg.norm(query - reference[indices], axis=1)
    return distances, indices


def feature_deviations(query: np.ndarray, neighbours: np.ndarray, layout: Sequence[dict]) -> np.ndarray:
    """Return each feature's mean L1 deviation between rows and their neighbours in the preprocessor's space.

    Returns
    -------
    numpy.ndarray of shape (n_features,)
        In layout order; 0 to 2 per feature (a categorical mismatch gives 2).
    """
    return np.array(
        [np.abs(query[:, e["start"] : e["stop"]] - neighbours[:, e["start"] : e["stop"]]).sum(axis=1).mean() for e in layout]
    )


def closeness(distances: np.ndarray, threshold: float) -> np.ndarray:
    """Return 1 for distances up to ``threshold`` and ``threshold / distance`` beyond."""
    distances = np.asarray(distances, dtype=np.float64)
    safe = np.where(distances > threshold, distances, 1.0)
    return np.where(distances > threshold, threshold / safe, 1.0)


def distance_part(sample: DeviceSample, preprocessor, quantile: float) -> tuple[float | None, dict, np.ndarray | None]:
    """Compute the distance score, its diagnostics and the per-feature deviations.

    The deviations are an array of shape (2, n_features): synthetic rows
    from their nearest reference row, then reference rows from their
    nearest other reference row. The score and the deviations are None when
    the device type has fewer than two reference rows.
    """
    if len(sample.reference) < 2:
        return None, {"distance_threshold": None, "median_distance": None, "real_median_distance": None}, None

    synthetic = preprocessor.transform(sample.synthetic)
    reference = preprocessor.transform(sample.reference)
    synthetic_distances, synthetic_index = nearest_neighbours(synthetic, reference)
    real_distances, real_index = nearest_neighbours(reference, reference, exclude_self=True)

    threshold = float(np.quantile(real_distances, quantile))
    real_closeness = closeness(real_distances, threshold).mean()
    score = float(min(1.0, closeness(synthetic_distances, threshold).mean() / real_closeness))

    synthetic_deviation = feature_deviations(synthetic, reference[synthetic_index], preprocessor.layout_)
    real_deviation = feature_deviations(reference, reference[real_index], preprocessor.layout_)
    diagnostics = {
        "distance_threshold": _rounded(threshold),
        "median_distance": _rounded(np.median(synthetic_distances)),
        "real_median_distance": _rounded(np.median(real_distances)),
    }
    return score, diagnostics, np.stack([synthetic_deviation, real_deviation])


def _violation_reason(feature: str, synthetic: RuleViolations, real: RuleViolations) -> str:
    rules = synthetic.feature_rules[feature].most_common()
    named = rules[0][0] if len(rules) == 1 else f"{rules[0][0]} and {len(rules) - 1} more rules"
    return (
        f"breaks {named} on {synthetic.feature_rows[feature]} of {synthetic.n_rows} sampled rows "
        f"({synthetic.feature_share(feature):.1%}; real rows {real.feature_share(feature):.1%})"
    )


def _correlation_reason(feature: str, other: str, failure: dict) -> str:
    rule = failure["rule"]
    direction = "positive" if rule.sign > 0 else "negative"
    return (
        f"Pearson correlation with {other} is {failure['pearson']:.2f} on the sample; the constraint expects "
        f"a {direction} correlation of at least {rule.threshold:.2f} in absolute value"
    )


def doubted_features(
    synthetic: RuleViolations,
    real: RuleViolations,
    failed_correlations: list[dict],
    deviations: np.ndarray | None,
    names: Sequence[str],
    settings: ValidationSettings,
) -> list[dict]:
    """List the doubted features with a reason each, in the order the module docstring gives."""
    candidates: list[tuple[str, str]] = []

    excess = {name: synthetic.feature_share(name) - real.feature_share(name) for name in synthetic.feature_rows}
    flagged = [name for name in excess if excess[name] > 0 and excess[name] >= settings.min_excess_violation]
    for name in sorted(flagged, key=lambda n: (-excess[n], n)):
        candidates.append((name, _violation_reason(name, synthetic, real)))

    for failure in failed_correlations:
        rule = failure["rule"]
        candidates.append((rule.first, _correlation_reason(rule.first, rule.second, failure)))
        candidates.append((rule.second, _correlation_reason(rule.second, rule.first, failure)))

    if deviations is not None:
        extra = deviations[0] - deviations[1]
        for index in np.argsort(-extra, kind="stable"):
            if extra[index] < settings.min_excess_deviation:
                break
            reason = (
                f"mean deviation from the nearest real row is {deviations[0][index]:.2f} in scaled units, "
                f"against {deviations[1][index]:.2f} between real rows"
            )
            candidates.append((names[index], reason))

    doubted, seen = [], set()
    for name, reason in candidates:
        if name in seen:
            continue
        seen.add(name)
        doubted.append({"feature": name, "reason": reason})
        if len(doubted) == settings.max_doubted_features:
            break
    return doubted


def score_device_type(
    sample: DeviceSample, constraint_set: ConstraintSet, preprocessor, settings: ValidationSettings
) -> OfflineScore:
    """Score one device type's synthetic sample against its real reference rows.

    Parameters
    ----------
    sample : DeviceSample
        Synthetic sample and real reference rows.
    constraint_set : ConstraintSet
        Constraints that contain ``sample.device_type``.
    preprocessor : iotsynth.preprocess.Preprocessor
        Fitted on the training split.
    settings : ValidationSettings
        ``distance_quantile``, ``max_doubted_features`` and
        ``min_excess_deviation``.
    """
    device_type = sample.device_type
    synthetic_violations = rule_violations(constraint_set, sample.synthetic, device_type)
    real_violations = rule_violations(constraint_set, sample.reference, device_type)
    row_score = relative_keep_score(synthetic_violations.row_share, real_violations.row_share)

    checked, failed = correlation_failures(constraint_set, sample.synthetic, device_type)
    real_checked, real_failed = correlation_failures(constraint_set, sample.reference, device_type)
    correlation_score = relative_keep_score(
        len(failed) / checked if checked else 0.0, len(real_failed) / real_checked if real_checked else 0.0
    )
    constraint_score = row_score * correlation_score

    distance_score, distance_diagnostics, deviations = distance_part(sample, preprocessor, settings.distance_quantile)
    score = constraint_score if distance_score is None else float(np.sqrt(constraint_score * distance_score))

    names = [entry["name"] for entry in preprocessor.layout_]
    doubted = doubted_features(synthetic_violations, real_violations, failed, deviations, names, settings)
    diagnostics = {
        "rows_breaking_rules": _rounded(synthetic_violations.row_share),
        "real_rows_breaking_rules": _rounded(real_violations.row_share),
        "correlations_checked": checked,
        "correlations_failed": len(failed),
        "real_correlations_failed": len(real_failed),
        **distance_diagnostics,
    }
    return OfflineScore(score, constraint_score, row_score, correlation_score, distance_score, doubted, diagnostics)
