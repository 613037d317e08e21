"""Support vector machine with an RBF kernel: an exact solver and a fast approximation.

``exact``
    :class:`sklearn.svm.SVC` (libsvm, hinge loss, one-vs-one). Its training
    time grows roughly with the square of the training rows, and it runs on
    one thread. The published run spent 26,513 s on it.
``fast``
    A least-squares SVM (LS-SVM, Suykens and Vandewalle) on a Nystroem map
    of the same RBF kernel.
    ``n_components`` training rows serve as landmarks. A ridge regression
    onto one-vs-rest targets of +1 and -1, with penalty ``1 / C`` and an
    unpenalised intercept, is solved in closed form. The map is
    applied in chunks, so memory stays at ``n_components`` squared whatever
    the rows, and time is linear in the rows.

Both solvers use the same ``gamma`` and ``C``. The fast one replaces the
hinge loss by the squared error, so the two are close, not equal.
docs/evaluation.md reports their accuracy on a shared sample. Nystroem plus
LinearSVC was tried first, but liblinear needed 148 s or more on 20,000
rows, against 5 s for the least-squares solve, and its time grows with the
rows.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg
from sklearn.kernel_approximation import Nystroem
from sklearn.svm import SVC

LOGGER = logging.getLogger(__name__)

SOLVERS = ("fast", "exact")


def resolve_gamma(gamma: str | float, X: np.ndarray) -> float:
    """Return the RBF gamma; ``scale`` is ``1 / (n_columns * X.var())`` as in scikit-learn."""
    if gamma == "scale":
        variance = float(X.var())
        return 1.0 / (X.shape[1] * variance) if variance > 0 else 1.0
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma <= 0:
        raise ValueError(f"classifiers.svm.gamma must be 'scale' or a positive number, got {gamma!r}")
    return float(gamma)


def stratified_subsample(labels: np.ndarray, max_rows: int | None, rng: np.random.Generator) -> np.ndarray:
    """Return sorted row indices of at most ``max_rows`` rows, each class keeping its share (at least one row)."""
    n_rows = len(labels)
    if max_rows is None or n_rows <= max_rows:
        return np.arange(n_rows)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quotas = np.maximum(1, np.floor(counts * max_rows / n_rows)).astype(int)
    chosen = [rng.choice(np.flatnonzero(inverse == index), size=quota, replace=False)
              for index, quota in enumerate(quotas)]
    return np.sort(np.concatenate(chosen))


class NystroemLSSVM:
    """Least-squares SVM on a Nystroem map of the RBF kernel, fitted in chunks of rows.

    Parameters
    ----------
    gamma : float
        RBF kernel width.
    n_components : int
        Landmarks of the Nystroem map (at most the training rows).
    C : float
        Inverse ridge penalty: the solved system is ``(Z'Z + I / C) W = Z'T``
        with ``Z`` the mapped rows plus a column of ones (not penalised) and
        ``T`` the one-vs-rest targets.
    seed : int
        Chooses the landmarks.
    chunk_rows : int, default 16384
        Rows mapped at once.
    """

    def __init__(self, gamma, n_components, C, seed, chunk_rows=16384):
        self.gamma = gamma
        self.n_components = n_components
        self.C = C
        self.seed = seed
        self.chunk_rows = chunk_rows

    def fit(self, X: np.ndarray, y: np.ndarray) -> NystroemLSSVM:
        """Choose the landmarks and solve the ridge system on ``X`` of shape (n_rows, n_columns)."""
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        components = min(self.n_components, len(X))
        self.map_ = Nystroem(kernel="rbf", gamma=self.gamma, n_components=components, random_state=self.seed).fit(X)

        width = components + 1
        gram = np.zeros((width, width))
        projection = np.zeros((width, len(self.classes_)))
        for start in range(0, len(X), self.chunk_rows):
            mapped = self._mapped(X[start : start + self.chunk_rows])
            targets = -np.ones((len(mapped), len(self.classes_)))
            targets[np.arange(len(mapped)), codes[start : start + self.chunk_rows]] = 1.0
            gram += mapped.T @ mapped
            projection += mapped.T @ targets

        penalty = np.full(width, 1.0 / self.C)
        penalty[-1] = 0.0  # the intercept
        gram[np.diag_indices(width)] += penalty
        self.coef_ = scipy.linalg.solve(gram, projection, assume_a="sym")
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Return the one-vs-rest scores, of shape (n_rows, n_classes)."""
        parts = [self._mapped(X[start : start + self.chunk_rows]) @ self.coef_
                 for start in range(0, len(X), self.chunk_rows)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes_)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return the class of the highest score of each row."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def _mapped(self, X: np.ndarray) -> np.ndarray:
        mapped = self.map_.transform(X)
        return np.hstack([mapped, np.ones((len(mapped), 1))])


class RBFSVM:
    """RBF-kernel SVM trained by the exact or the fast solver.

    Parameters
    ----------
    solver : {"fast", "exact"}, default "fast"
    C : float, default 1.0
        Inverse regularisation strength (scikit-learn's default).
    gamma : "scale" or float, default "scale"
        RBF kernel width ``exp(-gamma * ||x - x'||^2)``.
    n_components : int, default 1000
        Nystroem landmarks (``fast``); more approximate the kernel better.
        Time grows linearly and memory with the square of their number.
    max_train_rows : int or None, default None
        Train on a stratified sample of at most this many rows; None uses
        all. Meant for ``exact``, whose cost grows with the square of the
        rows.
    cache_mb : float, default 1000
        libsvm kernel cache (``exact``).
    seed : int, default 0
        Seeds the landmarks and the subsample.
    """

    def __init__(self, solver="fast", C=1.0, gamma="scale", n_components=1000, max_train_rows=None,
                 cache_mb=1000.0, seed=0):
        self.solver = solver
        self.C = C
        self.gamma = gamma
        self.n_components = n_components
        self.max_train_rows = max_train_rows
        self.cache_mb = cache_mb
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, X_val=None, y_val=None) -> RBFSVM:
        """Train on ``X`` of shape (n_rows, n_columns); the validation rows are not used."""
        self._check_params()
        rows = stratified_subsample(np.asarray(y), self.max_train_rows, np.random.default_rng(self.seed))
        X, y = X[rows], np.asarray(y)[rows]
        self.gamma_ = resolve_gamma(self.gamma, X)
        self.n_train_rows_ = len(rows)
        LOGGER.info("SVM solver %s on %d rows, gamma %.4g, C %g", self.solver, len(rows), self.gamma_, self.C)

        if self.solver == "exact":
            self.model_ = SVC(kernel="rbf", C=self.C, gamma=self.gamma_, cache_size=self.cache_mb)
        else:
            self.model_ = NystroemLSSVM(self.gamma_, self.n_components, self.C, self.seed)
        self.model_.fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return the predicted device type of each row."""
        if not hasattr(self, "model_"):
            raise RuntimeError("this RBFSVM is not fitted; call fit first")
        return self.model_.predict(X)

    @property
    def classes_(self) -> np.ndarray:
        """Device types in the column order of :meth:`decision_function`."""
        if not hasattr(self, "model_"):
            raise RuntimeError("this RBFSVM is not fitted; call fit first")
        return self.model_.classes_

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Return one-vs-rest scores of shape (n_rows, n_classes); higher means more likely."""
        if not hasattr(self, "model_"):
            raise RuntimeError("this RBFSVM is not fitted; call fit first")
        scores = np.asarray(self.model_.decision_function(X))
        if scores.ndim == 1:
            # libsvm gives one column for two classes: the second class's margin.
            scores = np.stack([-scores, scores], axis=1)
        return scores

    def _check_params(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"classifiers.svm.solver must be one of {list(SOLVERS)}, got {self.solver!r}")
        if not self.C > 0:
            raise ValueError(f"classifiers.svm.C must be positive, got {self.C!r}")
        components = self.n_components
        if isinstance(components, bool) or not isinstance(components, int) or components < 1:
            raise ValueError(f"classifiers.svm.n_components must be an integer of at least 1, got {components!r}")
        rows = self.max_train_rows
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 2):
            raise ValueError(f"classifiers.svm.max_train_rows must be null or an integer of at least 2, got {rows!r}")
