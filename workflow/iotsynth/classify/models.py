"""The three classifiers of the published comparison, built from the ``classifiers`` config section.

``rf``
    :class:`sklearn.ensemble.RandomForestClassifier`, trees grown in
    parallel on the rule's threads.
``nn``
    :class:`iotsynth.classify.mlp.MLPClassifier`, a PyTorch multilayer
    perceptron that stops early on the validation split.
``svm``
    :class:`iotsynth.classify.svm.RBFSVM`, an RBF-kernel SVM with an exact
    (libsvm) and a fast (least-squares SVM on a Nystroem map) solver.

All three take the preprocessed features (``Preprocessor.transform``) and
device type names as labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from iotsynth.classify.mlp import MLPClassifier
from iotsynth.classify.svm import RBFSVM

CLASSIFIERS = ("rf", "nn", "svm")
# Row labels of the published tables.
DISPLAY_NAMES = {"rf": "RF", "nn": "NN", "svm": "SVM"}


def check_names(names: list[str]) -> None:
    """Raise ValueError unless ``names`` is a non-empty list of known classifiers without repeats."""
    unknown = [name for name in names if name not in CLASSIFIERS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"classifiers.models must list some of {list(CLASSIFIERS)} once each, got {names!r}")


def make_classifier(name: str, section: Mapping[str, Any], seed: int, threads: int):
    """Build one unfitted classifier.

    Parameters
    ----------
    name : {"rf", "nn", "svm"}
    section : mapping
        The ``classifiers`` config section. ``section[name]`` contains the
        hyperparameters.
    seed : int
    threads : int
        CPU threads the classifier may use: the Random Forest's jobs and
        the MLP's torch threads (at most ``nn.threads``). The SVM solvers
        run on one thread, BLAS aside.

    Returns
    -------
    object
        With ``fit(X, y, X_val, y_val)`` through :func:`fit_classifier` and
        ``predict(X)``.
    """
    check_names([name])
    settings = dict(section.get(name, {}))
    if name == "rf":
        return RandomForestClassifier(
            n_estimators=settings.get("n_estimators", 100),
            max_depth=settings.get("max_depth"),
            min_samples_leaf=settings.get("min_samples_leaf", 1),
            max_features=settings.get("max_features", "sqrt"),
            class_weight=settings.get("class_weight"),
            n_jobs=threads,
            random_state=seed,
        )
    if name == "nn":
        # nn.threads caps the rule's threads; null leaves them as they are.
        nn_threads = threads if settings.get("threads") is None else min(threads, settings["threads"])
        return MLPClassifier(
            hidden_layers=tuple(settings.get("hidden_layers", (256, 128))),
            dropout=settings.get("dropout", 0.1),
            batch_size=settings.get("batch_size", 512),
            learning_rate=settings.get("learning_rate", 2e-3),
            weight_decay=settings.get("weight_decay", 0.0),
            max_epochs=settings.get("max_epochs", 50),
            patience=settings.get("patience", 5),
            seed=seed,
            threads=nn_threads,
        )
    return RBFSVM(
        solver=settings.get("solver", "fast"),
        C=settings.get("C", 1.0),
        gamma=settings.get("gamma", "scale"),
        n_components=settings.get("n_components", 1000),
        max_train_rows=settings.get("max_train_rows"),
        cache_mb=settings.get("cache_mb", 1000.0),
        seed=seed,
    )


def fit_classifier(model, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
                   y_val: np.ndarray | None = None):
    """Fit ``model``, passing the validation rows to the classifiers that use them (the MLP)."""
    if isinstance(model, MLPClassifier):
        return model.fit(X, y, X_val, y_val)
    return model.fit(X, y)


def class_scores(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(classes, scores)``: a score per row and class, higher for the more likely class.

    Probabilities for the Random Forest and the MLP, one-vs-rest decision
    values for the SVM (not probabilities, but comparable across rows of
    one model, which is what averaging over a window needs).
    """
    if hasattr(model, "predict_proba"):
        return np.asarray(model.classes_).astype(str), np.asarray(model.predict_proba(X), dtype=np.float64)
    return np.asarray(model.classes_).astype(str), np.asarray(model.decision_function(X), dtype=np.float64)


def describe(model) -> dict[str, Any]:
    """Return what a fitted model learned beyond its settings, for the metrics file."""
    if isinstance(model, MLPClassifier):
        return {"best_epoch": int(model.best_epoch_), "epochs_run": int(len(model.history_))}
    if isinstance(model, RBFSVM):
        return {"solver": model.solver, "gamma": model.gamma_, "train_rows": int(model.n_train_rows_)}
    if isinstance(model, RandomForestClassifier):
        depths = [estimator.get_depth() for estimator in model.estimators_]
        return {"mean_tree_depth": float(np.mean(depths))}
    return {}
