"""Tests of the classifiers, their scores and the training cost measurement (iotsynth.classify)."""

import time

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import RidgeClassifier
from sklearn.svm import SVC

from iotsynth.classify.measure import measure_call
from iotsynth.classify.metrics import SCORE_NAMES, score_predictions
from iotsynth.classify.mlp import MLPClassifier
from iotsynth.classify.models import describe, fit_classifier, make_classifier
from iotsynth.classify.svm import RBFSVM, NystroemLSSVM, resolve_gamma, stratified_subsample


def blobs(n_rows=600, n_classes=3, n_columns=6, spread=0.4, seed=0):
    """Well separated Gaussian blobs with string labels."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1, 1, size=(n_classes, n_columns)) * 2
    labels = rng.integers(0, n_classes, n_rows)
    X = centres[labels] + rng.normal(0, spread, size=(n_rows, n_columns))
    return X, np.array([f"type{label}" for label in labels])


# Scores

def test_scores_of_known_predictions():
    y_true = np.array(["a", "a", "a", "a", "b", "b", "c", "c"])
    y_pred = np.array(["a", "a", "a", "b", "b", "b", "c", "a"])
    scores = score_predictions(y_true, y_pred, ["a", "b", "c"])

    # Per class: a precision 3/4 recall 3/4; b 2/3, 1; c 1, 1/2.
    f1 = {"a": 0.75, "b": 0.8, "c": 2 / 3}
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["precision"] == pytest.approx((4 * 0.75 + 2 * 2 / 3 + 2 * 1.0) / 8)
    assert scores["recall"] == pytest.approx(scores["accuracy"])
    assert scores["f1"] == pytest.approx((4 * f1["a"] + 2 * f1["b"] + 2 * f1["c"]) / 8)
    assert scores["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert scores["balanced_accuracy"] == pytest.approx((0.75 + 1.0 + 0.5) / 3)
    assert scores["per_class_recall"] == pytest.approx({"a": 0.75, "b": 1.0, "c": 0.5})
    assert scores["confusion"] == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert set(SCORE_NAMES) <= set(scores)


def test_absent_label_has_no_recall():
    scores = score_predictions(np.array(["a", "b"]), np.array(["a", "a"]), ["a", "b", "z"])
    assert scores["per_class_recall"]["z"] is None
    assert scores["support"]["z"] == 0
    # Means run over the device types present in the test split.
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_unknown_test_label_raises():
    with pytest.raises(ValueError, match="missing from the label list"):
        score_predictions(np.array(["a", "q"]), np.array(["a", "a"]), ["a"])


def test_empty_test_split_raises():
    with pytest.raises(ValueError, match="empty"):
        score_predictions(np.array([]), np.array([]), ["a"])


# Measurement

def test_measure_counts_native_allocation():
    def allocate():
        block = np.ones(200_000_000 // 8)  # 200 MB written, so resident
        time.sleep(0.2)
        return float(block.sum())

    result, cost = measure_call(allocate, interval=0.01)
    assert result == 25_000_000.0
    assert cost.peak_memory_mb > 150
    assert cost.peak_rss_mb >= cost.rss_before_mb + cost.peak_memory_mb - 1e-6


def test_measure_times_the_call():
    _, cost = measure_call(lambda: time.sleep(0.3), interval=0.01)
    assert 0.3 <= cost.seconds < 2.0
    assert cost.peak_memory_mb < 50


def test_measure_passes_errors_on():
    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        measure_call(fail)


# Neural network

def test_mlp_learns_blobs():
    X, y = blobs()
    model = MLPClassifier(hidden_layers=(32,), max_epochs=15, batch_size=64, seed=0).fit(X[:400], y[:400],
                                                                                      X[400:500], y[400:500])
    assert (model.predict(X[500:]) == y[500:]).mean() > 0.95
    assert list(model.classes_) == ["type0", "type1", "type2"]
    assert 1 <= model.best_epoch_ <= len(model.history_) <= 15


def test_mlp_same_seed_same_model():
    X, y = blobs(spread=1.5)
    first = MLPClassifier(hidden_layers=(16,), max_epochs=3, seed=4).fit(X, y, X, y)
    again = MLPClassifier(hidden_layers=(16,), max_epochs=3, seed=4).fit(X, y, X, y)
    other = MLPClassifier(hidden_layers=(16,), max_epochs=3, seed=5).fit(X, y, X, y)
    assert first.history_["train_loss"].tolist() == again.history_["train_loss"].tolist()
    assert first.history_["train_loss"].tolist() != other.history_["train_loss"].tolist()


def test_mlp_stops_early_and_keeps_best_epoch():
    # Labels unrelated to the features: validation loss soon rises.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 8))
    y = rng.choice(["a", "b"], 400)
    model = MLPClassifier(hidden_layers=(128,), max_epochs=60, patience=2, batch_size=16, learning_rate=1e-2,
                          seed=0).fit(X[:200], y[:200], X[200:], y[200:])
    assert len(model.history_) < 60
    losses = model.history_["val_loss"]
    assert model.best_epoch_ == int(model.history_.loc[losses.idxmin(), "epoch"])


def test_mlp_ignores_unseen_validation_type():
    X, y = blobs()
    y_val = y[400:].copy()
    y_val[:5] = "never_trained"
    model = MLPClassifier(hidden_layers=(8,), max_epochs=2).fit(X[:400], y[:400], X[400:], y_val)
    assert np.isfinite(model.history_["val_loss"]).all()


def test_mlp_without_validation_runs_all_epochs():
    X, y = blobs()
    model = MLPClassifier(hidden_layers=(8,), max_epochs=4, patience=1).fit(X, y)
    assert len(model.history_) == 4
    assert model.best_epoch_ == 4


@pytest.mark.parametrize("field, value", [("dropout", 1.0), ("batch_size", 0), ("hidden_layers", ())])
def test_mlp_invalid_settings_raise(field, value):
    X, y = blobs(60)
    with pytest.raises(ValueError, match=f"classifiers.nn.{field}"):
        MLPClassifier(**{field: value}).fit(X, y)


# SVM

@pytest.mark.parametrize("solver", ["fast", "exact"])
def test_svm_solvers_learn_blobs(solver):
    X, y = blobs()
    model = RBFSVM(solver=solver, n_components=100).fit(X[:400], y[:400])
    assert (model.predict(X[400:]) == y[400:]).mean() > 0.95


def test_least_squares_svm_matches_ridge_classifier():
    X, y = blobs(spread=1.2)
    ours = NystroemLSSVM(gamma=0.2, n_components=80, C=4.0, seed=3, chunk_rows=70).fit(X[:400], y[:400])

    mapped = Nystroem(kernel="rbf", gamma=0.2, n_components=80, random_state=3).fit(X[:400])
    ridge = RidgeClassifier(alpha=1 / 4.0).fit(mapped.transform(X[:400]), y[:400])
    np.testing.assert_allclose(ours.decision_function(X[400:]), ridge.decision_function(mapped.transform(X[400:])),
                               rtol=1e-6, atol=1e-8)
    assert (ours.predict(X[400:]) == ridge.predict(mapped.transform(X[400:]))).all()


def test_least_squares_svm_chunks_agree():
    X, y = blobs(spread=1.2)
    whole = NystroemLSSVM(gamma=0.2, n_components=50, C=1.0, seed=0, chunk_rows=10_000).fit(X, y)
    chunked = NystroemLSSVM(gamma=0.2, n_components=50, C=1.0, seed=0, chunk_rows=33).fit(X, y)
    np.testing.assert_allclose(whole.coef_, chunked.coef_, rtol=1e-8, atol=1e-10)


def test_scale_gamma_matches_scikit_learn():
    X, y = blobs()
    exact = RBFSVM(solver="exact").fit(X, y)
    reference = SVC(kernel="rbf", gamma="scale").fit(X, y)
    assert exact.gamma_ == pytest.approx(reference._gamma)
    assert resolve_gamma(0.5, X) == 0.5


def test_exact_svm_matches_plain_svc():
    X, y = blobs(spread=1.2)
    ours = RBFSVM(solver="exact", C=2.0).fit(X[:400], y[:400]).predict(X[400:])
    plain = SVC(kernel="rbf", C=2.0, gamma="scale").fit(X[:400], y[:400]).predict(X[400:])
    assert (ours == plain).all()


def test_subsample_keeps_every_class():
    labels = np.array(["a"] * 900 + ["b"] * 95 + ["c"] * 5)
    rows = stratified_subsample(labels, 100, np.random.default_rng(0))
    chosen = labels[rows]
    assert len(rows) <= 100
    assert np.all(np.diff(rows) > 0)
    assert (chosen == "a").sum() == 90
    assert (chosen == "b").sum() == 9
    assert (chosen == "c").sum() == 1
    assert len(stratified_subsample(labels, None, np.random.default_rng(0))) == 1000


def test_svm_subsample_sets_train_rows():
    X, y = blobs()
    model = RBFSVM(solver="exact", max_train_rows=120).fit(X, y)
    assert model.n_train_rows_ <= 120


@pytest.mark.parametrize("field, value", [("solver", "liblinear"), ("C", 0.0), ("gamma", -1.0),
                                          ("max_train_rows", 1)])
def test_svm_invalid_settings_raise(field, value):
    X, y = blobs(60)
    with pytest.raises(ValueError, match=f"classifiers.svm.{field}"):
        RBFSVM(**{field: value}).fit(X, y)


# Registry

SECTION = {
    "rf": {"n_estimators": 5, "max_depth": None, "min_samples_leaf": 1, "max_features": "sqrt",
           "class_weight": None},
    "nn": {"hidden_layers": [16], "dropout": 0.0, "batch_size": 64, "learning_rate": 1e-2, "weight_decay": 0.0,
           "max_epochs": 10, "patience": 3, "threads": 1},
    "svm": {"solver": "fast", "C": 1.0, "gamma": "scale", "n_components": 30,
            "max_train_rows": None, "cache_mb": 100},
}


@pytest.mark.parametrize("name, kind", [("rf", RandomForestClassifier), ("nn", MLPClassifier), ("svm", RBFSVM)])
def test_registry_builds_and_fits(name, kind):
    X, y = blobs()
    model = make_classifier(name, SECTION, seed=0, threads=2)
    assert isinstance(model, kind)
    fit_classifier(model, X[:400], y[:400], X[400:500], y[400:500])
    assert (model.predict(X[500:]) == y[500:]).mean() > 0.9
    assert describe(model)


def test_registry_caps_mlp_threads():
    assert make_classifier("nn", SECTION, 0, threads=4).threads == 1
    unset = {**SECTION, "nn": {**SECTION["nn"], "threads": None}}
    assert make_classifier("nn", unset, 0, threads=4).threads == 4


def test_registry_unknown_name_raises():
    with pytest.raises(ValueError, match="classifiers.models"):
        make_classifier("xgboost", SECTION, 0, 1)


def test_mlp_standardizes_inputs():
    X, y = blobs()
    X = np.column_stack([X * 1e6, np.full(len(X), 7.0)])
    model = MLPClassifier(hidden_layers=(32,), max_epochs=15, batch_size=64, seed=0).fit(X[:400], y[:400])
    np.testing.assert_allclose(model.mean_, X[:400].mean(axis=0))
    assert model.scale_[-1] == 1.0
    assert (model.predict(X[500:]) == y[500:]).mean() > 0.95
