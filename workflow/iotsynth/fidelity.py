"""Fidelity metrics: how closely synthetic rows follow real rows, and how close they come to copies.

Every function here compares two arrays of rows in the preprocessor's space
(:class:`iotsynth.preprocess.Preprocessor`): continuous and discrete features
scaled so the training range maps to [-1, 1], binary features at -1 and 1,
categorical features one-hot. In that space a distance of 1 means the same
share of a feature's training range for every feature, so per-feature
distances can be averaged and nearest-neighbour distances weigh all features
alike. :mod:`iotsynth.fidelity_stage` draws the rows and writes the report;
``docs/fidelity.md`` explains how to read each number.

Metrics and their sources
    - Detection AUC: the ROC AUC of a classifier trained to distinguish real
      from synthetic rows, as in SDMetrics' detection metrics. 0.5 means the
      rows cannot be distinguished.
    - Per-feature Kolmogorov-Smirnov statistic and Wasserstein-1 distance,
      total variation distance for categorical features, and the column-shape
      score ``1 - KS`` or ``1 - TV`` of SDMetrics' quality report.
    - Pair trends ``1 - |r_real - r_synthetic| / 2`` (SDMetrics'
      ``CorrelationSimilarity``) and the relative Frobenius distance of the
      correlation matrices.
    - Precision and recall (Kynkaanniemi et al., "Improved Precision and
      Recall Metric for Assessing Generative Models", NeurIPS 2019) and
      density and coverage (Naeem et al., "Reliable Fidelity and Diversity
      Metrics for Generative Models", ICML 2020), all from k-nearest-neighbour
      balls.
    - Distance to the closest record (DCR) and the share of exact copies of
      training rows.
    - Train on synthetic, test on real (TSTR) beside train on real, test on
      real (TRTR): macro-F1 of Random Forests on the real test rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neighbors import NearestNeighbors

from iotsynth.graph_measures import pearson_matrix

LOGGER = logging.getLogger(__name__)

NUMERIC_KINDS = ("continuous", "discrete", "binary")
# Two rows closer than this in the preprocessor's space count as equal, because
# packet tables contain many duplicates whose k-NN radius is 0. scikit-learn's
# euclidean_distances expands |x - y|^2 = |x|^2 - 2 x.y + |y|^2 and left up to
# 3.8e-7 between identical float64 rows (2000 random rows of 133 columns in
# [-1, 1]). NOTE: the rounding error grows with the row norm, so duplicates far
# outside [-1, 1] may miss this tolerance.
DISTANCE_TOLERANCE = 1e-6
# Rows of the second array per distance block (block memory is rows x rows of
# the first array x 8 bytes).
CHUNK_ROWS = 1024


def _check_pair(real: np.ndarray, synthetic: np.ndarray, what: str, min_rows: int = 1) -> None:
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"{what}: real and synthetic rows must be 2-D arrays of the same width, "
                         f"got shapes {real.shape} and {synthetic.shape}")
    if len(real) < min_rows or len(synthetic) < min_rows:
        raise ValueError(f"{what} needs at least {min_rows} real and {min_rows} synthetic rows, "
                         f"got {len(real)} and {len(synthetic)}")


# Marginal distributions ----------------------------------------------------


def ks_statistic(first: np.ndarray, second: np.ndarray) -> float:
    """Compute the two-sample Kolmogorov-Smirnov statistic.

    The statistic is the largest absolute difference between the two
    empirical distribution functions, evaluated at every observed value, so
    ties (discrete and binary features) are handled exactly. It lies in
    [0, 1]: 0 for identical samples, 1 for samples with disjoint ranges.

    Parameters
    ----------
    first, second : numpy.ndarray of shape (n,) and (m,)
        Finite values; ``n`` and ``m`` may differ.

    Returns
    -------
    float
    """
    first = np.sort(np.asarray(first, dtype=np.float64))
    second = np.sort(np.asarray(second, dtype=np.float64))
    if len(first) == 0 or len(second) == 0:
        raise ValueError(f"the KS statistic needs values in both samples, got {len(first)} and {len(second)}")
    points = np.concatenate([first, second])
    cdf_first = np.searchsorted(first, points, side="right") / len(first)
    cdf_second = np.searchsorted(second, points, side="right") / len(second)
    return float(np.max(np.abs(cdf_first - cdf_second)))


def category_shares(block: np.ndarray) -> np.ndarray:
    """Return the share of rows in each category of one one-hot group.

    Parameters
    ----------
    block : numpy.ndarray of shape (n_rows, n_categories)
        One categorical feature's columns of the transformed array.

    Returns
    -------
    numpy.ndarray of shape (n_categories + 1,)
        Shares of the training categories, then the share of all-zero rows
        (categories unseen in training). The shares add up to 1.
    """
    unseen = float(np.mean(~block.any(axis=1))) if len(block) else 0.0
    return np.append(block.mean(axis=0), unseen)


def total_variation(first_shares: np.ndarray, second_shares: np.ndarray) -> float:
    """Return the total variation distance ``0.5 * sum |p - q|`` of two category distributions, in [0, 1]."""
    return float(0.5 * np.abs(np.asarray(first_shares) - np.asarray(second_shares)).sum())


def marginal_table(real: np.ndarray, synthetic: np.ndarray, layout: Sequence[dict]) -> pd.DataFrame:
    """Compare the distribution of every feature on its own.

    Continuous, discrete and binary features get the Kolmogorov-Smirnov
    statistic and the Wasserstein-1 distance of their scaled column.
    Wasserstein-1 is the mean distance each value has to move to turn one
    sample into the other, in scaled units. A distance of 2 is the whole
    training range of a continuous or discrete feature. For a binary feature
    it is twice the difference of the shares of 1. Categorical features get the total
    variation distance of their category shares. The column-shape score is
    ``1 - KS`` or ``1 - TV`` (SDMetrics' ``KSComplement`` and
    ``TVComplement``): 1 for identical marginals.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n_rows, n_columns)
        Rows in the preprocessor's space; the row counts may differ.
    layout : sequence of dict
        ``Preprocessor.layout_``: ``name``, ``kind``, ``start``, ``stop``.

    Returns
    -------
    pandas.DataFrame
        One row per feature in layout order: ``feature``, ``kind``, ``ks``,
        ``wasserstein`` (both NaN for categorical features),
        ``total_variation`` (NaN for the others) and ``shape_score``.
    """
    _check_pair(real, synthetic, "the marginal comparison")
    rows = []
    for entry in layout:
        start, stop = entry["start"], entry["stop"]
        row = {"feature": entry["name"], "kind": entry["kind"], "ks": np.nan, "wasserstein": np.nan,
               "total_variation": np.nan}
        if entry["kind"] == "categorical":
            distance = total_variation(category_shares(real[:, start:stop]), category_shares(synthetic[:, start:stop]))
            row["total_variation"] = distance
        else:
            distance = ks_statistic(real[:, start], synthetic[:, start])
            row["ks"] = distance
            row["wasserstein"] = float(wasserstein_distance(real[:, start], synthetic[:, start]))
        row["shape_score"] = 1.0 - distance
        rows.append(row)
    return pd.DataFrame(rows, columns=["feature", "kind", "ks", "wasserstein", "total_variation", "shape_score"])


def summarize_marginals(table: pd.DataFrame, worst: int = 5) -> dict:
    """Summarize :func:`marginal_table`: means and the features that differ most.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`marginal_table`.
    worst : int, default 5
        Features listed per distance, largest first.

    Returns
    -------
    dict
        ``ks_mean`` and ``wasserstein_mean`` over non-categorical features,
        ``total_variation_mean`` over categorical ones (None without any),
        ``column_shape_score`` (mean ``shape_score`` over all features), and
        ``worst_ks``, ``worst_wasserstein``, ``worst_total_variation``: lists
        of ``{"feature", "value"}``.
    """
    summary = {
        "ks_mean": _mean_or_none(table["ks"]),
        "wasserstein_mean": _mean_or_none(table["wasserstein"]),
        "total_variation_mean": _mean_or_none(table["total_variation"]),
        "column_shape_score": _mean_or_none(table["shape_score"]),
    }
    for column in ("ks", "wasserstein", "total_variation"):
        largest = table.dropna(subset=[column]).nlargest(worst, column, keep="first")
        summary[f"worst_{column}"] = [{"feature": name, "value": float(value)}
                                      for name, value in zip(largest["feature"], largest[column], strict=True)]
    return summary


def _mean_or_none(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None


# Correlations --------------------------------------------------------------


def numeric_columns(layout: Sequence[dict]) -> tuple[list[str], list[int]]:
    """Return the names and transformed-array columns of the non-categorical features.

    Pearson correlation needs ordered values, which category codes are not,
    so correlations leave categorical features out (as the feature graph does).
    """
    names = [entry["name"] for entry in layout if entry["kind"] in NUMERIC_KINDS]
    columns = [entry["start"] for entry in layout if entry["kind"] in NUMERIC_KINDS]
    return names, columns


def pearson_or_nan(values: np.ndarray) -> np.ndarray:
    """Compute the Pearson correlation of every column pair, NaN where a column is constant.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_rows, n_columns)

    Returns
    -------
    numpy.ndarray of shape (n_columns, n_columns)
        Correlations in [-1, 1]; rows and columns of constant columns are NaN,
        as for :func:`scipy.stats.pearsonr`.
    """
    correlation = pearson_matrix(values)
    constant = np.ptp(values, axis=0) == 0 if len(values) else np.ones(values.shape[1], dtype=bool)
    correlation[constant, :] = np.nan
    correlation[:, constant] = np.nan
    return correlation


def pair_trend_table(real: np.ndarray, synthetic: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Score how well the synthetic rows keep the correlation of every feature pair.

    The score of a pair is ``1 - |r_real - r_synthetic| / 2`` with Pearson's
    ``r`` (SDMetrics' ``CorrelationSimilarity``): 1 when the correlations
    agree, 0 when they are +1 and -1. A pair with a constant column in either
    source has no correlation there and gets NaN.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n_rows, n_features)
        Non-categorical feature columns (:func:`numeric_columns`).
    names : sequence of str
        Feature names of the columns.

    Returns
    -------
    pandas.DataFrame
        One row per pair (``first`` before ``second`` in column order):
        ``real_correlation``, ``synthetic_correlation`` and ``score``.
    """
    _check_pair(real, synthetic, "the pair-trend comparison", min_rows=2)
    if real.shape[1] != len(names):
        raise ValueError(f"got {len(names)} names for {real.shape[1]} columns")
    first, second = np.triu_indices(len(names), k=1)
    real_r = pearson_or_nan(real)[first, second]
    synthetic_r = pearson_or_nan(synthetic)[first, second]
    names = np.asarray(names, dtype=object)
    return pd.DataFrame({
        "first": names[first],
        "second": names[second],
        "real_correlation": real_r,
        "synthetic_correlation": synthetic_r,
        "score": 1.0 - np.abs(real_r - synthetic_r) / 2.0,
    })


def correlation_distance(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Return the relative Frobenius distance ``||C_real - C_syn||_F / ||C_real||_F`` of two correlation matrices.

    ``C`` contains Pearson correlations, with 0 for a constant column, so a
    column that is constant in one source and varies in the other counts as
    a difference. 0 means the same correlations; 1 is what synthetic rows
    with no correlation at all would score.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n_rows, n_features)
        Non-categorical feature columns.
    mask : numpy.ndarray of bool of shape (n_features, n_features), optional
        Entries to compare, e.g. the edges of the feature graph. By default
        every off-diagonal entry (the diagonal is 1 in both).

    Returns
    -------
    float or None
        None when the masked real correlations are all 0 (nothing to divide
        by), for example with an empty mask.
    """
    _check_pair(real, synthetic, "the correlation distance", min_rows=2)
    if mask is None:
        mask = ~np.eye(real.shape[1], dtype=bool)
    if mask.shape != (real.shape[1], real.shape[1]):
        raise ValueError(f"mask has shape {mask.shape}; expected {(real.shape[1], real.shape[1])}")
    real_c = pearson_matrix(real)[mask]
    synthetic_c = pearson_matrix(synthetic)[mask]
    norm = float(np.linalg.norm(real_c))
    if norm == 0.0:
        return None
    return float(np.linalg.norm(real_c - synthetic_c) / norm)


# Detection -----------------------------------------------------------------


def detection_auc(real: np.ndarray, synthetic: np.ndarray, folds: int = 5, max_iter: int = 100,
                  seed: int = 0) -> dict:
    """Cross-validate a classifier that distinguishes real from synthetic rows.

    A histogram gradient-boosting classifier (scikit-learn's
    ``HistGradientBoostingClassifier``, ``max_iter`` trees, no early stopping,
    at least 20 rows per leaf) is trained on ``folds - 1`` folds and scored by
    ROC AUC on the held-out fold. An AUC of 0.5 means the classifier does no
    better than chance; 1 means every synthetic row is recognised.

    The folds are stratified by source, and identical rows always share a
    fold. Otherwise a model that trained on a real row labelled real would
    score its synthetic copy. That pushes the AUC of copied rows well below
    0.5 (to about 0.1 on the toy tables of the tests). Copies are measured by
    :func:`exact_copy_share` instead.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n_rows, n_columns)
        Rows in the preprocessor's space.
    folds : int, default 5
    max_iter : int, default 100
        Boosting iterations.
    seed : int, default 0
        Seeds the fold assignment and the classifier.

    Returns
    -------
    dict
        ``auc_mean``, ``auc_std`` (over folds, ddof 0), ``auc_folds``, and
        ``scores``: the out-of-fold probability of being synthetic, real rows
        first, for :func:`grouped_auc`.
    """
    _check_pair(real, synthetic, "the detection classifier", min_rows=folds)
    X = np.concatenate([real, synthetic])
    y = np.concatenate([np.zeros(len(real), dtype=np.int64), np.ones(len(synthetic), dtype=np.int64)])
    identical = pd.factorize(pd.util.hash_pandas_object(pd.DataFrame(X), index=False))[0]
    scores = np.empty(len(y), dtype=np.float64)
    aucs = []
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train_index, test_index) in enumerate(splitter.split(X, y, groups=identical)):
        if len(np.unique(y[test_index])) < 2:
            raise ValueError(f"detection fold {fold + 1} contains rows of one source only, because identical rows "
                             "share a fold; lower fidelity.detection.folds")
        model = HistGradientBoostingClassifier(max_iter=max_iter, early_stopping=False, random_state=seed)
        model.fit(X[train_index], y[train_index])
        scores[test_index] = model.predict_proba(X[test_index])[:, 1]
        aucs.append(float(roc_auc_score(y[test_index], scores[test_index])))
        LOGGER.info("detection fold %d of %d: %d rows, AUC %.4f", fold + 1, folds, len(test_index), aucs[-1])
    return {"auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "auc_folds": aucs, "scores": scores}


def grouped_auc(is_synthetic: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> dict[str, float | None]:
    """Return the ROC AUC of the out-of-fold detection scores within each group (device type).

    Parameters
    ----------
    is_synthetic : numpy.ndarray of bool of shape (n_rows,)
    scores : numpy.ndarray of shape (n_rows,)
        Out-of-fold scores from :func:`detection_auc`.
    groups : numpy.ndarray of shape (n_rows,)

    Returns
    -------
    dict of str to float or None
        None for a group with rows of one source only.
    """
    result = {}
    for group in sorted(set(groups)):
        selected = groups == group
        labels = is_synthetic[selected]
        result[str(group)] = float(roc_auc_score(labels, scores[selected])) if 0 < labels.sum() < len(labels) else None
    return result


# Utility -------------------------------------------------------------------


def forest_predictions(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, n_estimators: int = 100,
                       seed: int = 0, threads: int = 1) -> np.ndarray:
    """Train a Random Forest on ``X_train`` and return its predicted device types for ``X_test``.

    Parameters
    ----------
    X_train : numpy.ndarray of shape (n_train, n_columns)
        Training rows in the preprocessor's space.
    y_train : numpy.ndarray of shape (n_train,)
        Their device types.
    X_test : numpy.ndarray of shape (n_test, n_columns)
    n_estimators : int, default 100
    seed : int, default 0
    threads : int, default 1

    Returns
    -------
    numpy.ndarray of shape (n_test,)
    """
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=threads)
    model.fit(X_train, y_train)
    return model.predict(X_test)


def macro_f1(y_true: np.ndarray, y_predicted: np.ndarray, labels: Sequence[str]) -> dict:
    """Return the macro-F1 over ``labels`` and the F1 of each.

    A label never predicted, for example a device type absent from the
    training rows, scores 0.

    Returns
    -------
    dict
        ``macro_f1`` (None without labels) and ``f1`` (by label).
    """
    per_label = f1_score(y_true, y_predicted, labels=list(labels), average=None, zero_division=0)
    return {"macro_f1": float(np.mean(per_label)) if len(per_label) else None,
            "f1": {str(label): float(value) for label, value in zip(labels, per_label, strict=True)}}


# Nearest neighbours --------------------------------------------------------


def kth_neighbour_distance(points: np.ndarray, k: int, threads: int = 1) -> np.ndarray:
    """Return each row's distance to its ``k``-th nearest other row of the same array.

    The row itself is not counted, but its duplicates are (at distance 0).
    """
    if len(points) <= k:
        raise ValueError(f"k-nearest-neighbour radii with k={k} need more than {k} rows, got {len(points)}")
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", n_jobs=threads).fit(points)
    distances, _ = search.kneighbors(points)
    return distances[:, k]


def precision_recall_density_coverage(real: np.ndarray, synthetic: np.ndarray, k: int = 5,
                                      threads: int = 1) -> dict:
    """Compute k-NN precision and recall (Kynkaanniemi 2019) and density and coverage (Naeem 2020).

    Every real row gets a ball whose radius is the distance to its ``k``-th
    nearest real neighbour, and every synthetic row likewise among the
    synthetic rows. Then:

    - precision: share of synthetic rows inside at least one real ball
      (synthetic rows that look real);
    - recall: share of real rows inside at least one synthetic ball (how
      much of the real data the synthetic rows reach);
    - density: mean number of real balls around a synthetic row, divided by
      ``k``. It is about 1 when the synthetic rows follow the real density
      and above 1 when they crowd into dense real regions, with no upper
      bound;
    - coverage: share of real rows whose own ball contains a synthetic row. It
      is less sensitive than recall to synthetic outliers, whose large balls
      inflate recall.

    Distances are Euclidean; a distance within ``DISTANCE_TOLERANCE`` of a
    radius counts as inside.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n_rows, n_columns)
        Rows in the preprocessor's space, more than ``k`` of each.
    k : int, default 5
        Neighbours that set the ball radii (5 in both papers).
    threads : int, default 1

    Returns
    -------
    dict
        ``precision``, ``recall``, ``density``, ``coverage``, ``k``,
        ``real_rows``, ``synthetic_rows``.
    """
    _check_pair(real, synthetic, "precision, recall, density and coverage", min_rows=k + 1)
    real_radius = kth_neighbour_distance(real, k, threads)
    synthetic_radius = kth_neighbour_distance(synthetic, k, threads)

    in_real_ball = np.zeros(len(synthetic), dtype=bool)
    real_balls_around = np.zeros(len(synthetic), dtype=np.int64)
    in_synthetic_ball = np.zeros(len(real), dtype=bool)
    nearest_synthetic = np.full(len(real), np.inf)
    for start in range(0, len(synthetic), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(synthetic))
        distances = euclidean_distances(synthetic[start:stop], real)
        inside_real = distances <= real_radius[None, :] + DISTANCE_TOLERANCE
        in_real_ball[start:stop] = inside_real.any(axis=1)
        real_balls_around[start:stop] = inside_real.sum(axis=1)
        in_synthetic_ball |= (distances <= synthetic_radius[start:stop, None] + DISTANCE_TOLERANCE).any(axis=0)
        nearest_synthetic = np.minimum(nearest_synthetic, distances.min(axis=0))

    return {
        "precision": float(in_real_ball.mean()),
        "recall": float(in_synthetic_ball.mean()),
        "density": float(real_balls_around.mean() / k),
        "coverage": float(np.mean(nearest_synthetic <= real_radius + DISTANCE_TOLERANCE)),
        "k": int(k),
        "real_rows": int(len(real)),
        "synthetic_rows": int(len(synthetic)),
    }


def closest_record_distances(query: np.ndarray, reference: np.ndarray, threads: int = 1) -> np.ndarray:
    """Return each query row's Euclidean distance to its nearest reference row (DCR).

    Parameters
    ----------
    query : numpy.ndarray of shape (n_rows, n_columns)
    reference : numpy.ndarray of shape (n_reference, n_columns)
        The real training rows.
    threads : int, default 1

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
    """
    _check_pair(query, reference, "the distance to the closest record")
    search = NearestNeighbors(n_neighbors=1, algorithm="brute", n_jobs=threads).fit(reference)
    distances, _ = search.kneighbors(query)
    return distances[:, 0]


def summarize_distances(distances: np.ndarray) -> dict:
    """Summarize DCR values: ``median``, ``p05`` (5th percentile), ``mean`` and ``zero_share`` (within tolerance)."""
    if len(distances) == 0:
        return {"median": None, "p05": None, "mean": None, "zero_share": None, "rows": 0}
    return {
        "median": float(np.median(distances)),
        "p05": float(np.percentile(distances, 5)),
        "mean": float(np.mean(distances)),
        "zero_share": float(np.mean(distances <= DISTANCE_TOLERANCE)),
        "rows": int(len(distances)),
    }


def exact_copy_share(rows: pd.DataFrame, reference: pd.DataFrame, names: Sequence[str]) -> float | None:
    """Return the share of ``rows`` whose features equal those of some ``reference`` row.

    Rows are compared on the feature columns in original units through a
    64-bit hash of each row (:func:`pandas.util.hash_pandas_object`), so two
    different rows are taken as equal only on a hash collision, with
    probability about ``len(reference) / 2**64`` per row.

    Parameters
    ----------
    rows, reference : pandas.DataFrame
        With every column in ``names``.
    names : sequence of str
        Feature columns.

    Returns
    -------
    float or None
        None when ``rows`` is empty.
    """
    if len(rows) == 0:
        return None
    names = list(names)
    # Cast both to float64 so that an integer column and a float column with
    # the same values hash alike.
    reference_hashes = pd.util.hash_pandas_object(reference[names].astype(np.float64), index=False)
    row_hashes = pd.util.hash_pandas_object(rows[names].astype(np.float64), index=False)
    return float(np.isin(row_hashes.to_numpy(), reference_hashes.to_numpy()).mean())
