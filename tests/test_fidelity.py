"""Tests of the fidelity metrics and stage on packet-like tables with known structure."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import ks_2samp, pearsonr

from iotsynth import fidelity
from iotsynth.fidelity_stage import (
    FidelitySettings,
    fidelity_report,
    match_rows,
    run_fidelity_stage,
    run_fidelity_table_stage,
)
from iotsynth.gan.toydata import build_inputs, make_packet_table, stratified_split
from iotsynth.preprocess import Preprocessor
from iotsynth.smote import smote_rows

REPO = Path(__file__).resolve().parents[1]
# Small models keep the file fast; the metrics do not depend on these sizes.
FAST = {"detection": {"folds": 3, "max_iter": 20}, "utility": {"n_estimators": 20}}


@pytest.fixture(scope="module")
def table():
    return make_packet_table(1500, n_device_types=4, seed=5, extra_continuous=2, extra_categorical=1)


@pytest.fixture(scope="module")
def splits(table):
    """Stratified 60/20/20 split of the toy table."""
    frame, _ = table
    return stratified_split(frame, seed=0)


@pytest.fixture(scope="module")
def inputs(table, splits):
    _, dictionary = table
    return build_inputs(splits["train"], dictionary)


def as_synthetic(rows: pd.DataFrame, split: str) -> pd.DataFrame:
    """Label real rows as synthetic rows of ``split``, in the synthetic file's layout."""
    frame = rows.copy()
    frame.insert(0, "split", split)
    frame["synthetic"] = True
    return frame


def shifted(rows: pd.DataFrame) -> pd.DataFrame:
    """Move packet sizes and TTLs away from the real rows, as a poor generator would."""
    frame = rows.copy()
    frame["packet_size"] = frame["packet_size"] + 400.0
    frame["payload_size"] = frame["payload_size"] * 3.0
    frame["ttl"] = 255
    return frame


def report_for(splits, inputs, synthetic, rejection=None, **overrides):
    settings = FidelitySettings.from_config({**FAST, **overrides})
    return fidelity_report(splits["train"], splits["test"], synthetic, inputs.preprocessor, inputs.constraints,
                           inputs.names, inputs.adjacency, rejection, settings, seed=0)


# Metrics on arrays ----------------------------------------------------------


def test_ks_statistic_matches_scipy():
    rng = np.random.default_rng(1)
    cases = [
        (rng.normal(size=300), rng.normal(0.2, 1.3, size=200)),
        (rng.integers(0, 5, size=300).astype(float), rng.integers(0, 7, size=250).astype(float)),
        (rng.integers(0, 2, size=100).astype(float), np.ones(40)),
    ]

    for first, second in cases:
        assert fidelity.ks_statistic(first, second) == pytest.approx(ks_2samp(first, second).statistic, abs=1e-12)


def test_ks_statistic_identical_samples_zero():
    values = np.random.default_rng(2).integers(0, 3, size=50).astype(float)

    assert fidelity.ks_statistic(values, values) == 0.0


def test_binary_wasserstein_twice_share_difference(inputs, splits):
    layout = inputs.preprocessor.layout_
    real = inputs.preprocessor.transform(splits["test"])
    other = inputs.preprocessor.transform(splits["val"])
    table = fidelity.marginal_table(real, other, layout).set_index("feature")
    column = next(entry["start"] for entry in layout if entry["name"] == "is_tcp")

    share_gap = abs(np.mean(real[:, column] > 0) - np.mean(other[:, column] > 0))
    assert table.loc["is_tcp", "wasserstein"] == pytest.approx(2 * share_gap)
    assert table.loc["is_tcp", "ks"] == pytest.approx(share_gap)


def test_total_variation_counts_unseen_categories():
    # Two categories seen in training; the last synthetic row has an unseen one (all zeros).
    real = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    synthetic = np.array([[1, 0], [1, 0], [1, 0], [0, 0]], dtype=float)

    shares = fidelity.category_shares(synthetic)
    assert shares.tolist() == [0.75, 0.0, 0.25]
    assert fidelity.total_variation(fidelity.category_shares(real), shares) == pytest.approx(0.5)


def test_pair_trend_matches_scipy_pearson():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(200, 3))
    real[:, 1] += real[:, 0]
    synthetic = rng.normal(size=(150, 3))
    synthetic[:, 2] -= synthetic[:, 0]

    pairs = fidelity.pair_trend_table(real, synthetic, ["a", "b", "c"]).set_index(["first", "second"])
    for first, second in [("a", "b"), ("a", "c"), ("b", "c")]:
        i, j = "abc".index(first), "abc".index(second)
        expected = 1 - abs(pearsonr(real[:, i], real[:, j])[0] - pearsonr(synthetic[:, i], synthetic[:, j])[0]) / 2
        assert pairs.loc[(first, second), "score"] == pytest.approx(expected, abs=1e-12)


def test_pair_trend_constant_column_undefined():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(50, 2))
    synthetic = np.column_stack([rng.normal(size=50), np.zeros(50)])

    pairs = fidelity.pair_trend_table(real, synthetic, ["a", "b"])
    assert pairs["score"].isna().all()


def test_correlation_distance_cases():
    rng = np.random.default_rng(5)
    latent = rng.normal(size=2000)
    real = np.column_stack([latent, latent + 0.3 * rng.normal(size=2000), rng.normal(size=2000)])
    independent = rng.normal(size=(2000, 3))
    only_first_pair = np.zeros((3, 3), dtype=bool)
    only_first_pair[0, 1] = only_first_pair[1, 0] = True

    assert fidelity.correlation_distance(real, real) == 0.0
    # The real rows correlate only in the first pair, so losing it costs the whole norm.
    assert fidelity.correlation_distance(real, independent) == pytest.approx(1.0, abs=0.05)
    assert fidelity.correlation_distance(real, independent, only_first_pair) == pytest.approx(1.0, abs=0.05)
    assert fidelity.correlation_distance(independent, real, np.zeros((3, 3), dtype=bool)) is None


def test_precision_recall_density_coverage_by_hand():
    # Real points 0..3 with k = 1 have radius 1. The synthetic point 0.5 lies in
    # the balls of 0 and 1; 10 and 10.2 lie in none, but the ball of 0.5
    # (radius 9.5, to its nearest synthetic neighbour) contains every real point.
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    synthetic = np.array([[0.5], [10.0], [10.2]])

    result = fidelity.precision_recall_density_coverage(real, synthetic, k=1)
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1.0)
    assert result["density"] == pytest.approx(2 / 3)
    assert result["coverage"] == pytest.approx(0.5)


def test_identical_rows_indistinguishable(inputs, splits):
    rows = inputs.preprocessor.transform(splits["train"])

    detection = fidelity.detection_auc(rows, rows.copy(), folds=3, max_iter=20, seed=0)
    marginals = fidelity.marginal_table(rows, rows, inputs.preprocessor.layout_)
    neighbours = fidelity.precision_recall_density_coverage(rows, rows, k=5)

    assert abs(detection["auc_mean"] - 0.5) < 0.1
    assert marginals["ks"].max() == 0.0
    assert marginals["total_variation"].max() == 0.0
    assert neighbours["precision"] == 1.0
    assert neighbours["recall"] == 1.0
    assert neighbours["coverage"] == 1.0


def test_exact_copy_share_ignores_integer_dtype():
    reference = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    rows = pd.DataFrame({"a": [1.0, 2.0, 9.0, 3.0], "b": [0.5, 1.0, 2.5, 2.5]})

    assert fidelity.exact_copy_share(rows, reference, ["a", "b"]) == pytest.approx(0.5)
    assert fidelity.exact_copy_share(rows.iloc[:0], reference, ["a", "b"]) is None


# Report on toy splits -------------------------------------------------------


def test_copied_training_rows_score_as_copies(splits, inputs):
    report = report_for(splits, inputs, as_synthetic(splits["train"], "train"))

    assert abs(report["detection"]["auc_mean"] - 0.5) < 0.1
    assert report["marginals"]["ks_mean"] < 0.1
    assert report["privacy"]["copy_share_synthetic"] == 1.0
    assert report["privacy"]["dcr_synthetic"]["median"] == pytest.approx(0.0, abs=1e-6)
    assert report["privacy"]["dcr_real_test"]["median"] > 0.0


def test_shifted_rows_score_worse(splits, inputs):
    close = report_for(splits, inputs, as_synthetic(splits["train"], "train"))
    far = report_for(splits, inputs, as_synthetic(shifted(splits["train"]), "train"))

    assert far["detection"]["auc_mean"] > 0.95
    assert far["marginals"]["ks_mean"] > close["marginals"]["ks_mean"] + 0.05
    assert far["marginals"]["worst_ks"][0]["feature"] in {"packet_size", "payload_size", "ttl"}
    assert far["precision_recall"]["precision"] < close["precision_recall"]["precision"] - 0.3
    assert far["privacy"]["copy_share_synthetic"] == 0.0
    assert far["constraints"]["violation_rate_stored"] > close["constraints"]["violation_rate_stored"]
    assert far["utility"]["train_synthetic"]["macro_f1"] < close["utility"]["train_synthetic"]["macro_f1"]


def test_smote_rows_report(splits, inputs):
    synthetic = smote_rows(splits, inputs.preprocessor, "max", seed=0)

    report = report_for(splits, inputs, synthetic)
    sample = report["sample"]
    largest = splits["test"]["device_type"].value_counts().idxmax()

    assert sample["synthetic_splits"] == ["train"]
    assert largest in sample["missing_device_types"]
    assert report["utility"]["device_types_without_synthetic_rows"] == [splits["train"]["device_type"].value_counts().idxmax()]
    assert report["utility"]["train_synthetic"]["f1"][largest] == 0.0
    assert report["constraints"]["rejection_rate"] is None
    assert report["constraints"]["violation_rate_before_rejection"] == report["constraints"]["violation_rate_stored"]
    assert 0.5 <= report["detection"]["auc_mean"] <= 1.0
    compared = {entry["device_type"] for entry in sample["device_types"] if entry["rows_used"] > 0}
    assert set(report["detection"]["per_device_type"]) == compared


def test_match_rows_uses_smaller_count():
    real = pd.DataFrame({"device_type": ["a"] * 10 + ["b"] * 4 + ["c"] * 3, "x": np.arange(17.0)})
    synthetic = pd.DataFrame({"device_type": ["a"] * 6 + ["b"] * 9, "x": np.arange(15.0)})

    matched = match_rows(real, synthetic, np.random.default_rng(0))
    counts = matched.counts.set_index("device_type")
    real_sub, synthetic_sub = matched.subsample(5)

    assert counts["rows_used"].to_dict() == {"a": 6, "b": 4, "c": 0}
    assert counts["short"].to_dict() == {"a": True, "b": False, "c": True}
    assert matched.real["device_type"].value_counts().to_dict() == {"a": 6, "b": 4}
    assert matched.synthetic["device_type"].value_counts().to_dict() == {"a": 6, "b": 4}
    assert real_sub["device_type"].value_counts().to_dict() == {"a": 3, "b": 2}
    assert synthetic_sub["device_type"].value_counts().to_dict() == {"a": 3, "b": 2}


def test_settings_reject_invalid_values():
    with pytest.raises(ValueError, match="fidelity.detection.folds"):
        FidelitySettings.from_config({"detection": {"folds": 1}})
    with pytest.raises(ValueError, match="synthetic_splits"):
        FidelitySettings.from_config({"synthetic_splits": ["training"]})
    with pytest.raises(ValueError, match=r"fidelity\.detection\.depth"):
        FidelitySettings.from_config({"detection": {"depth": 3}})
    with pytest.raises(ValueError, match=r"fidelity\.seeds"):
        FidelitySettings.from_config({"seeds": 3})
    with pytest.raises(ValueError, match="fidelity.worst_features"):
        FidelitySettings.from_config({"worst_features": 0})
    with pytest.raises(ValueError, match="fidelity.neighbours.max_rows must be an integer of at least 6"):
        FidelitySettings.from_config({"neighbours": {"k": 5, "max_rows": 5}})


def test_config_defaults_match_settings():
    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["fidelity"]

    assert FidelitySettings.from_config(section) == FidelitySettings()


def test_stage_writes_report_and_table(tmp_path, splits, inputs):
    paths = {name: tmp_path / f"{name}.parquet" for name in ("train", "test")}
    splits["train"].to_parquet(paths["train"])
    splits["test"].to_parquet(paths["test"])
    inputs.preprocessor.save(tmp_path / "preprocessor.json")
    inputs.constraints.save(tmp_path / "constraints.json")
    pd.DataFrame(inputs.adjacency, index=inputs.names, columns=inputs.names).to_csv(tmp_path / "adjacency.csv")
    smote_rows(splits, inputs.preprocessor, "max", seed=0).to_parquet(tmp_path / "smote.parquet")
    as_synthetic(shifted(splits["val"]), "train").to_parquet(tmp_path / "poor.parquet")
    # 100 rows drawn with half violating and 300 with a tenth: 80 of 400 before rejection.
    rejection = pd.DataFrame({"split": ["train", "val"], "device_type": ["device01", "device02"],
                              "requested": [60, 250], "generated": [100, 300], "rejected": [40, 50],
                              "rejection_rate": [0.4, 1 / 6], "violation_rate": [0.5, 0.1],
                              "mean_violation_score": [0.1, 0.01], "rounds": [2, 1], "filled_from_rejected": [0, 0]})
    rejection.to_csv(tmp_path / "poor_rejection.csv", index=False)

    reports = {}
    for generator, rejection_path in (("smote", None), ("poor", tmp_path / "poor_rejection.csv")):
        reports[generator] = run_fidelity_stage(
            paths["train"], paths["test"], tmp_path / f"{generator}.parquet", tmp_path / "preprocessor.json",
            tmp_path / "constraints.json", tmp_path / "adjacency.csv", rejection_path,
            tmp_path / "fidelity" / f"{generator}.json", generator, FAST, seed=0)
    table = run_fidelity_table_stage({name: tmp_path / "fidelity" / f"{name}.json" for name in reports},
                                     tmp_path / "tables" / "fidelity")

    written = json.loads((tmp_path / "fidelity" / "poor.json").read_text())
    assert written["constraints"]["violation_rate_before_rejection"] == pytest.approx(0.2)
    assert written["constraints"]["rejection_rate"] == pytest.approx(90 / 400)
    assert written["constraints"]["stored_rows"].startswith("after rejection")
    assert table["generator"].tolist() == ["smote", "poor"]
    assert table.set_index("generator").loc["poor", "detection_auc"] > table.set_index("generator").loc["smote", "detection_auc"]
    assert list(pd.read_csv(tmp_path / "tables" / "fidelity.csv").columns) == list(table.columns)
    assert "| generator" in (tmp_path / "tables" / "fidelity.md").read_text()


# Cross-check with SDMetrics -------------------------------------------------


def sdmetrics_quality(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]):
    """Run SDMetrics' quality report on one table; binary and categorical features are categorical there."""
    reports = pytest.importorskip("sdmetrics.reports", reason="sdmetrics is a test-only extra")
    metadata = {"columns": {name: {"sdtype": "numerical" if kind in ("continuous", "discrete") else "categorical"}
                            for name, kind in kinds.items()}}
    report = reports.QualityReport()
    report.generate({"packets": real[list(kinds)]}, {"packets": synthetic[list(kinds)]},
                    {"tables": {"packets": metadata}}, verbose=False)
    return report


def test_scores_agree_with_sdmetrics(table):
    # Two draws of the toy table with different seeds differ in their class
    # mix and feature values, so the scores are well below 1.
    real, dictionary = table
    synthetic, _ = make_packet_table(1200, n_device_types=4, seed=9, extra_continuous=2, extra_categorical=1)
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    # Fit on both so that every category is a training category: SDMetrics compares raw codes.
    preprocessor = Preprocessor().fit(pd.concat([real, synthetic]), dictionary)
    real_array, synthetic_array = preprocessor.transform(real), preprocessor.transform(synthetic)

    ours = fidelity.marginal_table(real_array, synthetic_array, preprocessor.layout_).set_index("feature")
    names, columns = fidelity.numeric_columns(preprocessor.layout_)
    pairs = fidelity.pair_trend_table(real_array[:, columns], synthetic_array[:, columns], names)
    report = sdmetrics_quality(real, synthetic, kinds)
    shapes = report.get_details("Column Shapes").set_index("Column")
    trends = report.get_details("Column Pair Trends")
    trends = trends[trends["Metric"] == "CorrelationSimilarity"].dropna(subset=["Score"])

    # Scores are equal up to floating-point rounding: the same statistics, computed twice.
    tolerance = 1e-9
    assert len(shapes) == len(kinds)
    for name in kinds:
        assert ours.loc[name, "shape_score"] == pytest.approx(shapes.loc[name, "Score"], abs=tolerance), name
    properties = report.get_properties().set_index("Property")["Score"]
    assert ours["shape_score"].mean() == pytest.approx(properties["Column Shapes"], abs=tolerance)
    assert len(trends) >= 3
    by_pair = pairs.set_index(["first", "second"])["score"]
    for row in trends.itertuples(index=False):
        key = (row[1], row[2]) if (row[1], row[2]) in by_pair.index else (row[2], row[1])
        assert by_pair[key] == pytest.approx(row.Score, abs=tolerance), key


def test_pair_scores_agree_with_correlation_similarity(table):
    column_pairs = pytest.importorskip("sdmetrics.column_pairs", reason="sdmetrics is a test-only extra")
    real, _ = table
    synthetic = shifted(real.sample(frac=0.7, random_state=1))
    names = ["packet_size", "payload_size", "payload_entropy", "tcp_window", "extra_continuous_0"]

    pairs = fidelity.pair_trend_table(real[names].to_numpy(float), synthetic[names].to_numpy(float), names)
    for row in pairs.itertuples(index=False):
        expected = column_pairs.CorrelationSimilarity.compute(real[[row.first, row.second]],
                                                              synthetic[[row.first, row.second]],
                                                              coefficient="Pearson")
        assert row.score == pytest.approx(expected, abs=1e-9), (row.first, row.second)
