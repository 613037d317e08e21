"""Fidelity report of one generator (rule fidelity) and the table over generators (rule fidelity_table).

Rows compared
    The real rows are the test split's. The synthetic rows are those drawn to
    top up the splits in ``fidelity.synthetic_splits`` (default ``train``).
    SMOTE draws each split's rows from that split's real rows, so scoring its
    test-split rows against the real test rows would compare the test rows
    with interpolations of themselves. Each device type contributes the same
    number of real and synthetic rows, the smaller of its two counts, drawn at
    random. The report lists every device type with fewer synthetic rows than
    real test rows; with ``balance.target: max`` the largest device type has
    none. Every metric then compares the same mix of device types on both sides.

Subsamples
    Detection, precision/recall and DCR run on proportional subsamples of
    that matched set (``max_rows`` per source), which keep the per-device-type
    match. Marginals and correlations use the whole matched set.

Train on synthetic, test on real
    A Random Forest is trained on the synthetic rows of the ``train`` split
    and another on the real training rows, at most
    ``utility.max_rows_per_device_type`` rows per device type each, and both
    are scored by macro-F1 on every real test row.

Constraints
    The violation rate is the share of rows that break at least one range or
    protocol rule of their device type
    (:meth:`iotsynth.constraints.ConstraintSet.row_violation_score` above 0).
    It is computed on the stored synthetic rows of every split and on the
    real test rows. The rate before rejection comes from the generator's
    rejection CSV; SMOTE has none, so its stored rows are its rows before
    any rejection.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from iotsynth import fidelity
from iotsynth.constraints import ConstraintSet
from iotsynth.graph import load_adjacency
from iotsynth.preprocess import Preprocessor
from iotsynth.tables import write_table

LOGGER = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
# Subsections of the fidelity config section. Their keys become the settings
# named <group>_<key>.
CONFIG_GROUPS = ("detection", "utility", "neighbours", "dcr")


@dataclass(frozen=True)
class FidelitySettings:
    """Settings of the fidelity report, read from the ``fidelity`` config section.

    Parameters
    ----------
    synthetic_splits : tuple of str, default ("train",)
        Splits whose synthetic rows are compared with the real test rows.
    detection_folds : int, default 5
        Cross-validation folds of the detection classifier.
    detection_max_rows : int, default 10000
        Maximum rows per source (real, synthetic) for detection.
    detection_max_iter : int, default 100
        Boosting iterations of the detection classifier.
    utility_n_estimators : int, default 100
        Trees of the train-on-synthetic and train-on-real forests.
    utility_max_rows_per_device_type : int, default 2000
        Maximum training rows per device type of both forests.
    neighbours_k : int, default 5
        Neighbours that set the radii of precision, recall, density and
        coverage (5 in Kynkaanniemi et al. and Naeem et al.).
    neighbours_max_rows : int, default 5000
        Maximum rows per source for those four metrics.
    dcr_max_rows : int, default 5000
        Maximum synthetic rows (and real test rows for the baseline) whose
        distance to the closest training row is measured.
    worst_features : int, default 5
        Features listed as the worst per distance.
    """

    synthetic_splits: tuple[str, ...] = ("train",)
    detection_folds: int = 5
    detection_max_rows: int = 10000
    detection_max_iter: int = 100
    utility_n_estimators: int = 100
    utility_max_rows_per_device_type: int = 2000
    neighbours_k: int = 5
    neighbours_max_rows: int = 5000
    dcr_max_rows: int = 5000
    worst_features: int = 5

    def __post_init__(self) -> None:
        if not self.synthetic_splits or set(self.synthetic_splits) - set(SPLIT_NAMES):
            raise ValueError(f"fidelity.synthetic_splits must be a non-empty list of {list(SPLIT_NAMES)}, "
                             f"got {list(self.synthetic_splits)}")
        minimums = {"detection_folds": 2, "detection_max_iter": 1, "utility_n_estimators": 1,
                    "utility_max_rows_per_device_type": 1, "neighbours_k": 1, "worst_features": 1,
                    "detection_max_rows": 2, "dcr_max_rows": 1}
        minimums["neighbours_max_rows"] = self.neighbours_k + 1
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                group, _, key = name.partition("_")
                key = f"fidelity.{group}.{key}" if group in CONFIG_GROUPS else f"fidelity.{name}"
                raise ValueError(f"{key} must be an integer of at least {minimum}, got {value!r}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> FidelitySettings:
        """Read the ``fidelity`` config section; missing keys keep their defaults."""
        flat, unknown = {}, []
        for key, value in section.items():
            if key in CONFIG_GROUPS:
                for inner, inner_value in value.items():
                    flat[f"{key}_{inner}"] = inner_value
                    if f"{key}_{inner}" not in cls.__dataclass_fields__:
                        unknown.append(f"fidelity.{key}.{inner}")
            else:
                flat[key] = value
                if key not in cls.__dataclass_fields__:
                    unknown.append(f"fidelity.{key}")
        if unknown:
            raise ValueError(f"invalid fidelity settings {unknown}; config/README.md lists the valid keys")
        flat.setdefault("synthetic_splits", None)
        if flat["synthetic_splits"] is not None:
            flat["synthetic_splits"] = tuple(flat["synthetic_splits"])
        return cls(**{key: value for key, value in flat.items() if value is not None})


# Matched rows ---------------------------------------------------------------


@dataclass
class MatchedRows:
    """Real and synthetic rows with equal counts per device type.

    Attributes
    ----------
    real, synthetic : pandas.DataFrame
        Rows sorted by device type, in random order within each device type,
        so the first ``n`` rows of a device type's block are a random sample.
    counts : pandas.DataFrame
        One row per device type of the real rows or of the synthetic pool:
        ``device_type``, ``real_rows``, ``synthetic_rows`` (available),
        ``rows_used`` and ``short`` (fewer synthetic than real rows).
    """

    real: pd.DataFrame
    synthetic: pd.DataFrame
    counts: pd.DataFrame

    def subsample(self, max_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return at most ``max_rows`` rows per source, scaled down alike for every device type.

        Each device type keeps ``floor(rows_used * max_rows / total)`` rows,
        at least 1, so the match between sources holds.
        """
        used = self.counts.set_index("device_type")["rows_used"]
        used = used[used > 0]
        total = int(used.sum())
        if total <= max_rows:
            return self.real, self.synthetic
        rows_per_type = np.maximum(1, np.floor(used * max_rows / total)).astype(int)
        return _first_rows(self.real, rows_per_type), _first_rows(self.synthetic, rows_per_type)


def _first_rows(frame: pd.DataFrame, rows_per_type: pd.Series) -> pd.DataFrame:
    position = frame.groupby("device_type", sort=False).cumcount().to_numpy()
    limit = frame["device_type"].map(rows_per_type).fillna(0).to_numpy()
    return frame[position < limit].reset_index(drop=True)


def match_rows(real: pd.DataFrame, synthetic: pd.DataFrame, rng: np.random.Generator) -> MatchedRows:
    """Draw the same number of real and synthetic rows of every device type.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Rows with ``device_type``.
    rng : numpy.random.Generator

    Returns
    -------
    MatchedRows
    """
    real_counts = real["device_type"].astype(str).value_counts()
    synthetic_counts = synthetic["device_type"].astype(str).value_counts()
    names = sorted(set(real_counts.index) | set(synthetic_counts.index))
    counts = pd.DataFrame({
        "device_type": names,
        "real_rows": [int(real_counts.get(name, 0)) for name in names],
        "synthetic_rows": [int(synthetic_counts.get(name, 0)) for name in names],
    })
    counts["rows_used"] = counts[["real_rows", "synthetic_rows"]].min(axis=1)
    counts["short"] = counts["synthetic_rows"] < counts["real_rows"]

    real_parts, synthetic_parts = [], []
    for name, used in zip(counts["device_type"], counts["rows_used"], strict=True):
        if used == 0:
            continue
        for source, parts in ((real, real_parts), (synthetic, synthetic_parts)):
            rows = np.flatnonzero(source["device_type"].astype(str).to_numpy() == name)
            parts.append(source.iloc[rng.choice(rows, size=int(used), replace=False)])
    if not real_parts:
        raise ValueError("no device type has both real test rows and synthetic rows; check that the synthetic "
                         "file belongs to these splits and that fidelity.synthetic_splits selects rows")
    return MatchedRows(pd.concat(real_parts, ignore_index=True), pd.concat(synthetic_parts, ignore_index=True),
                       counts)


def cap_per_device_type(frame: pd.DataFrame, max_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Return at most ``max_rows`` random rows of each device type of ``frame``."""
    parts = []
    for _, rows in frame.groupby("device_type", sort=True):
        if len(rows) > max_rows:
            rows = rows.iloc[np.sort(rng.choice(len(rows), size=max_rows, replace=False))]
        parts.append(rows)
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]


# Report sections ------------------------------------------------------------


def sample_section(matched: MatchedRows, settings: FidelitySettings) -> dict:
    """Describe the matched rows, naming the device types with too few synthetic rows."""
    counts = matched.counts
    short = counts[counts["short"] & (counts["real_rows"] > 0)]
    for row in short.itertuples(index=False):
        if row.rows_used == 0:
            LOGGER.warning("%s: no synthetic rows in splits %s, so its %d real test rows are left out",
                           row.device_type, list(settings.synthetic_splits), row.real_rows)
        else:
            LOGGER.warning("%s: %d synthetic rows for %d real test rows; %d of each are compared", row.device_type,
                           row.synthetic_rows, row.real_rows, row.rows_used)
    return {
        "real_split": "test",
        "synthetic_splits": list(settings.synthetic_splits),
        "rows_per_source": int(counts["rows_used"].sum()),
        "device_types": counts.to_dict(orient="records"),
        "short_device_types": short["device_type"].tolist(),
        "missing_device_types": counts.loc[(counts["synthetic_rows"] == 0) & (counts["real_rows"] > 0),
                                           "device_type"].tolist(),
        "note": "each device type contributes min(real test rows, synthetic rows) rows per source",
    }


def detection_section(matched: MatchedRows, preprocessor: Preprocessor, settings: FidelitySettings,
                      seed: int) -> dict:
    """Run the real-versus-synthetic classifier on a subsample of the matched rows."""
    real, synthetic = matched.subsample(settings.detection_max_rows)
    result = fidelity.detection_auc(preprocessor.transform(real), preprocessor.transform(synthetic),
                                    settings.detection_folds, settings.detection_max_iter, seed)
    groups = np.concatenate([real["device_type"].astype(str), synthetic["device_type"].astype(str)])
    is_synthetic = np.arange(len(groups)) >= len(real)
    per_device_type = fidelity.grouped_auc(is_synthetic, result.pop("scores"), groups)
    return {
        **result,
        "per_device_type": per_device_type,
        "rows_per_source": len(real),
        "folds": settings.detection_folds,
        "classifier": f"HistGradientBoostingClassifier(max_iter={settings.detection_max_iter}, "
                      "early_stopping=False), folds stratified by source, identical rows in one fold",
    }


def marginal_section(real_array: np.ndarray, synthetic_array: np.ndarray, preprocessor: Preprocessor,
                     settings: FidelitySettings) -> dict:
    """Compare every feature's distribution and every numeric pair's correlation."""
    table = fidelity.marginal_table(real_array, synthetic_array, preprocessor.layout_)
    summary = fidelity.summarize_marginals(table, settings.worst_features)
    names, columns = fidelity.numeric_columns(preprocessor.layout_)
    pairs = fidelity.pair_trend_table(real_array[:, columns], synthetic_array[:, columns], names)
    scored = pairs["score"].dropna()
    return {
        **summary,
        "pair_trend_score": float(scored.mean()) if len(scored) else None,
        "pair_trend_pairs": int(len(scored)),
        "pair_trend_pairs_undefined": int(pairs["score"].isna().sum()),
        "per_feature": table.to_dict(orient="records"),
    }


def correlation_section(real_array: np.ndarray, synthetic_array: np.ndarray, preprocessor: Preprocessor,
                        graph_names: Sequence[str], adjacency: np.ndarray) -> dict:
    """Compute the correlation-matrix distance overall and on the feature graph's edges."""
    names, columns = fidelity.numeric_columns(preprocessor.layout_)
    index = {name: position for position, name in enumerate(graph_names)}
    missing = [name for name in names if name not in index]
    if missing:
        raise ValueError(f"the feature graph is missing features of the preprocessor, e.g. {missing[:5]}; "
                         "rerun the graph rule on the same training split")
    order = [index[name] for name in names]
    edges = adjacency[np.ix_(order, order)] > 0
    real_numeric, synthetic_numeric = real_array[:, columns], synthetic_array[:, columns]
    all_edges = int((np.triu(adjacency, k=1) > 0).sum())
    return {
        "features": len(names),
        "distance": fidelity.correlation_distance(real_numeric, synthetic_numeric),
        "distance_graph_edges": fidelity.correlation_distance(real_numeric, synthetic_numeric, edges),
        "graph_edges_used": int(np.triu(edges, k=1).sum()),
        "graph_edges_with_categorical_features": all_edges - int(np.triu(edges, k=1).sum()),
        "correlation": "Pearson on the scaled non-categorical features; 0 for a constant feature",
    }


def neighbour_section(matched: MatchedRows, preprocessor: Preprocessor, settings: FidelitySettings,
                      threads: int) -> dict:
    """Compute precision, recall, density and coverage on a subsample of the matched rows."""
    real, synthetic = matched.subsample(settings.neighbours_max_rows)
    if min(len(real), len(synthetic)) <= settings.neighbours_k:
        LOGGER.warning("precision and recall skipped: %d rows per source, k is %d", len(real), settings.neighbours_k)
        return {"skipped": f"{len(real)} rows per source, at most k = {settings.neighbours_k}"}
    return fidelity.precision_recall_density_coverage(preprocessor.transform(real), preprocessor.transform(synthetic),
                                                      settings.neighbours_k, threads)


def privacy_section(matched: MatchedRows, synthetic_pool: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame,
                    train_array: np.ndarray, preprocessor: Preprocessor, settings: FidelitySettings,
                    threads: int) -> dict:
    """Measure how close synthetic rows come to training rows, beside real test rows as the baseline."""
    real, synthetic = matched.subsample(settings.dcr_max_rows)
    names = [entry["name"] for entry in preprocessor.layout_]
    synthetic_distances = fidelity.closest_record_distances(preprocessor.transform(synthetic), train_array, threads)
    real_distances = fidelity.closest_record_distances(preprocessor.transform(real), train_array, threads)
    return {
        "dcr_synthetic": fidelity.summarize_distances(synthetic_distances),
        "dcr_real_test": fidelity.summarize_distances(real_distances),
        "copy_share_synthetic": fidelity.exact_copy_share(synthetic_pool, train, names),
        "copy_share_real_test": fidelity.exact_copy_share(test, train, names),
        "synthetic_rows_checked_for_copies": int(len(synthetic_pool)),
        "distance": "Euclidean in the preprocessor's space, to the nearest real training row",
    }


def utility_section(synthetic_train: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame,
                    preprocessor: Preprocessor, settings: FidelitySettings, rng: np.random.Generator, seed: int,
                    threads: int) -> dict:
    """Score a forest trained on synthetic rows and one trained on real rows on the real test rows."""
    labels = sorted(test["device_type"].astype(str).unique())
    covered = sorted(set(synthetic_train["device_type"].astype(str)) & set(labels))
    uncovered = sorted(set(labels) - set(covered))
    if uncovered:
        LOGGER.warning("the synthetic training rows lack device types %s; train-on-synthetic never predicts them",
                       uncovered)
    if not covered:
        return {"skipped": "no synthetic rows of the train split share a device type with the test split",
                "device_types_without_synthetic_rows": uncovered}

    cap = settings.utility_max_rows_per_device_type
    sources = {"synthetic": cap_per_device_type(synthetic_train, cap, rng), "real": cap_per_device_type(train, cap, rng)}
    X_test = preprocessor.transform(test)
    y_test = test["device_type"].astype(str).to_numpy()
    on_covered = np.isin(y_test, covered)
    result = {}
    for name, rows in sources.items():
        X_train = preprocessor.transform(rows)
        y_train = rows["device_type"].astype(str).to_numpy()
        predicted = fidelity.forest_predictions(X_train, y_train, X_test, settings.utility_n_estimators, seed,
                                                threads)
        every = fidelity.macro_f1(y_test, predicted, labels)
        covered_only = fidelity.macro_f1(y_test[on_covered], predicted[on_covered], covered)
        result[f"train_{name}"] = {"macro_f1": every["macro_f1"], "macro_f1_covered": covered_only["macro_f1"],
                                   "training_rows": int(len(rows)), "f1": every["f1"]}
        LOGGER.info("train on %s rows (%d), test on real: macro-F1 %.4f, on covered device types %.4f", name,
                    len(rows), every["macro_f1"], covered_only["macro_f1"])
    return {
        **result,
        "device_types": labels,
        "device_types_without_synthetic_rows": uncovered,
        "test_rows": int(len(test)),
        "model": f"RandomForestClassifier(n_estimators={settings.utility_n_estimators}), at most "
                 f"{cap} training rows per device type",
        "note": "macro_f1 averages F1 over every test device type (0 for one the training rows lack); "
                "macro_f1_covered averages over the device types with synthetic training rows, scored on "
                "their test rows only",
    }


def constraint_section(constraints: ConstraintSet, synthetic: pd.DataFrame, test: pd.DataFrame,
                       rejection: pd.DataFrame | None) -> dict:
    """Report violation rates of stored synthetic rows and real test rows, and the rejection statistics."""
    section = {
        "violation_rate_stored": _violation_rate(constraints, synthetic, "synthetic rows"),
        "violation_rate_real_test": _violation_rate(constraints, test, "real test rows"),
        "rule": "share of rows that break at least one range or protocol rule of their device type",
    }
    if rejection is None:
        section.update({"violation_rate_before_rejection": section["violation_rate_stored"], "rejection_rate": None,
                        "stored_rows": "no rejection step (no rejection CSV): the stored rows are all generated rows"})
        return section

    generated = float(rejection["generated"].sum())
    rejected = float(rejection["rejected"].sum())
    before = float((rejection["violation_rate"] * rejection["generated"]).sum() / generated) if generated else None
    section.update({
        "violation_rate_before_rejection": before,
        "rejection_rate": rejected / generated if generated else None,
        "generated_rows": int(generated),
        "rejected_rows": int(rejected),
        "filled_from_rejected": int(rejection["filled_from_rejected"].sum()),
        "stored_rows": ("after rejection: violation_rate_before_rejection comes from the rejection CSV"
                        if rejected > 0 else "no row was rejected: the stored rows are all generated rows"),
    })
    return section


def _violation_rate(constraints: ConstraintSet, frame: pd.DataFrame, what: str) -> float | None:
    labels = frame["device_type"].astype(str).to_numpy(dtype=object)
    known = np.isin(labels, constraints.device_types)
    if not known.all():
        LOGGER.warning("%s: %d rows of device types without constraints (%s) are left out of the violation rate",
                       what, int((~known).sum()), sorted(set(labels[~known]))[:10])
    if not known.any():
        return None
    scores = constraints.row_violation_score(frame[known], labels[known])
    return float(np.mean(scores > 0))


# Stage ----------------------------------------------------------------------


def fidelity_report(train: pd.DataFrame, test: pd.DataFrame, synthetic: pd.DataFrame, preprocessor: Preprocessor,
                    constraints: ConstraintSet, graph_names: Sequence[str], adjacency: np.ndarray,
                    rejection: pd.DataFrame | None, settings: FidelitySettings, seed: int,
                    threads: int = 1) -> dict:
    """Compute every fidelity metric of one generator's synthetic rows.

    Parameters
    ----------
    train, test : pandas.DataFrame
        Real training and test rows with ``device_type`` and every feature.
    synthetic : pandas.DataFrame
        ``results/synthetic/<generator>.parquet``: ``split``, ``device_type``
        and every feature in original units.
    preprocessor : Preprocessor
        Fitted on the training split.
    constraints : ConstraintSet
    graph_names : sequence of str
        Feature names of ``adjacency``.
    adjacency : numpy.ndarray of shape (n_features, n_features)
        The sparsified feature graph; entries above 0 are edges.
    rejection : pandas.DataFrame or None
        The generator's rejection CSV; None for a generator without one.
    settings : FidelitySettings
    seed : int
        Seeds every random choice: one NumPy Generator for the samples, the
        integer for the scikit-learn models.
    threads : int, default 1

    Returns
    -------
    dict
        Sections ``sample``, ``detection``, ``marginals``, ``correlation``,
        ``precision_recall``, ``privacy``, ``utility``, ``constraints`` and
        ``seconds`` (time per section).
    """
    if "split" not in synthetic.columns:
        raise ValueError("the synthetic rows have no 'split' column; expected the layout of "
                         "results/synthetic/<generator>.parquet")
    rng = np.random.default_rng(seed)
    pool = synthetic[synthetic["split"].isin(settings.synthetic_splits)].reset_index(drop=True)
    matched = match_rows(test, pool, rng)
    report, seconds = {"sample": sample_section(matched, settings)}, {}
    LOGGER.info("matched %d real test and %d synthetic rows over %d device types", len(matched.real),
                len(matched.synthetic), int((matched.counts["rows_used"] > 0).sum()))

    with threadpool_limits(limits=threads):
        real_array, synthetic_array = preprocessor.transform(matched.real), preprocessor.transform(matched.synthetic)
        train_array = preprocessor.transform(train)
        steps = {
            "detection": lambda: detection_section(matched, preprocessor, settings, seed),
            "marginals": lambda: marginal_section(real_array, synthetic_array, preprocessor, settings),
            "correlation": lambda: correlation_section(real_array, synthetic_array, preprocessor, graph_names,
                                                       adjacency),
            "precision_recall": lambda: neighbour_section(matched, preprocessor, settings, threads),
            "privacy": lambda: privacy_section(matched, pool, train, test, train_array, preprocessor, settings,
                                               threads),
            "utility": lambda: utility_section(synthetic[synthetic["split"] == "train"], train, test, preprocessor,
                                               settings, rng, seed, threads),
            "constraints": lambda: constraint_section(constraints, synthetic, test, rejection),
        }
        for name, step in steps.items():
            started = time.perf_counter()
            report[name] = step()
            seconds[name] = round(time.perf_counter() - started, 3)
            LOGGER.info("%s took %.1f s", name, seconds[name])
    report["seconds"] = seconds
    return report


def run_fidelity_stage(train_path: str | Path, test_path: str | Path, synthetic_path: str | Path,
                       preprocessor_path: str | Path, constraints_path: str | Path, adjacency_path: str | Path,
                       rejection_path: str | Path | None, output_path: str | Path, generator: str,
                       section: Mapping[str, Any], seed: int, threads: int = 1) -> dict:
    """Run the ``fidelity`` rule: write ``results/fidelity/<generator>.json``.

    Parameters
    ----------
    train_path, test_path : str or pathlib.Path
        Real splits.
    synthetic_path : str or pathlib.Path
        ``results/synthetic/<generator>.parquet``.
    preprocessor_path, constraints_path, adjacency_path : str or pathlib.Path
    rejection_path : str or pathlib.Path or None
        ``results/synthetic/<generator>_rejection.csv``; None for SMOTE.
    output_path : str or pathlib.Path
    generator : str
    section : mapping
        The ``fidelity`` config section.
    seed, threads : int

    Returns
    -------
    dict
        The content of the JSON file.
    """
    started = time.perf_counter()
    settings = FidelitySettings.from_config(section)
    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    synthetic = pd.read_parquet(synthetic_path)
    preprocessor = Preprocessor.load(preprocessor_path)
    constraints = ConstraintSet.load(constraints_path)
    graph_names, adjacency = load_adjacency(adjacency_path)
    rejection = pd.read_csv(rejection_path) if rejection_path else None
    LOGGER.info("%s: read %d train, %d test and %d synthetic rows (%s); rejection CSV %s; settings %s", generator,
                len(train), len(test), len(synthetic), synthetic_path, rejection_path or "none", settings)

    report = fidelity_report(train, test, synthetic, preprocessor, constraints, graph_names, adjacency, rejection,
                             settings, seed, threads)
    document = {
        "generator": generator,
        "seed": seed,
        "threads": threads,
        "inputs": {"train": str(train_path), "test": str(test_path), "synthetic": str(synthetic_path),
                   "rejection": str(rejection_path) if rejection_path else None},
        "settings": {**asdict(settings), "synthetic_splits": list(settings.synthetic_splits)},
        **report,
    }
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(_plain(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    LOGGER.info("wrote %s; detection AUC %.4f; took %.1f s", output_path, report["detection"]["auc_mean"],
                time.perf_counter() - started)
    return document


def _plain(value: Any) -> Any:
    """Turn NumPy scalars into Python numbers and NaN into None, recursively, for JSON."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# Table ----------------------------------------------------------------------

# Table column, then the path of its value in the report.
TABLE_COLUMNS = {
    "detection_auc": ("detection", "auc_mean"),
    "detection_auc_std": ("detection", "auc_std"),
    "tstr_macro_f1": ("utility", "train_synthetic", "macro_f1"),
    "trtr_macro_f1": ("utility", "train_real", "macro_f1"),
    "tstr_macro_f1_covered": ("utility", "train_synthetic", "macro_f1_covered"),
    "trtr_macro_f1_covered": ("utility", "train_real", "macro_f1_covered"),
    "ks_mean": ("marginals", "ks_mean"),
    "wasserstein_mean": ("marginals", "wasserstein_mean"),
    "tv_mean": ("marginals", "total_variation_mean"),
    "column_shape": ("marginals", "column_shape_score"),
    "pair_trend": ("marginals", "pair_trend_score"),
    "correlation_distance": ("correlation", "distance"),
    "correlation_distance_edges": ("correlation", "distance_graph_edges"),
    "precision": ("precision_recall", "precision"),
    "recall": ("precision_recall", "recall"),
    "density": ("precision_recall", "density"),
    "coverage": ("precision_recall", "coverage"),
    "violation_rate_before_rejection": ("constraints", "violation_rate_before_rejection"),
    "violation_rate_stored": ("constraints", "violation_rate_stored"),
    "violation_rate_real_test": ("constraints", "violation_rate_real_test"),
    "rejection_rate": ("constraints", "rejection_rate"),
    "dcr_median": ("privacy", "dcr_synthetic", "median"),
    "dcr_p05": ("privacy", "dcr_synthetic", "p05"),
    "dcr_real_median": ("privacy", "dcr_real_test", "median"),
    "dcr_real_p05": ("privacy", "dcr_real_test", "p05"),
    "copy_share": ("privacy", "copy_share_synthetic"),
    "copy_share_real": ("privacy", "copy_share_real_test"),
}


def fidelity_table(reports: Mapping[str, Mapping]) -> pd.DataFrame:
    """Return one row per generator with the headline numbers of its report.

    Parameters
    ----------
    reports : mapping of str to dict
        Fidelity reports (the JSON content) by generator name, in table order.

    Returns
    -------
    pandas.DataFrame
        ``generator``, the columns of ``TABLE_COLUMNS`` (NaN where a section
        was skipped) and ``short_device_types`` (device types compared on
        fewer rows than the real test split has, ``;``-separated).
    """
    rows = []
    for generator, report in reports.items():
        row = {"generator": generator}
        for column, path in TABLE_COLUMNS.items():
            value: Any = report
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            row[column] = np.nan if value is None else float(value)
        row["short_device_types"] = ";".join(report["sample"]["short_device_types"])
        rows.append(row)
    return pd.DataFrame(rows, columns=["generator", *TABLE_COLUMNS, "short_device_types"])


def run_fidelity_table_stage(report_paths: Mapping[str, str | Path], stem: str | Path) -> pd.DataFrame:
    """Run the ``fidelity_table`` rule: write ``<stem>.csv`` and ``<stem>.md``.

    Parameters
    ----------
    report_paths : mapping of str to path
        ``results/fidelity/<generator>.json`` by generator, in table order.
    stem : str or pathlib.Path
        ``results/tables/fidelity``.
    """
    reports = {}
    for generator, path in report_paths.items():
        reports[generator] = json.loads(Path(path).read_text(encoding="utf-8"))
    table = fidelity_table(reports)
    write_table(table.round(4), stem)
    LOGGER.info("fidelity table of %s written to %s.csv and .md", list(reports), stem)
    return table
