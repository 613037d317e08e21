"""Compare the exact and the fast SVM solver on one stratified training sample.

Run from the repository root after the workflow has written the splits and the
balanced splits, e.g.::

    python -m iotsynth.classify.svm_check --train results/balanced/smote/paper/train.parquet \\
        --test results/splits/test.parquet --rows 20000 --threads 2

Both solvers train on the same sample with the same ``gamma`` and ``C`` and
are scored on the same test split. The output has one CSV row per solver:
the scores of :func:`iotsynth.classify.metrics.score_predictions` and the
training time and memory of :func:`iotsynth.classify.measure.measure_call`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from iotsynth.classify.measure import measure_call
from iotsynth.classify.metrics import SCORE_NAMES, score_predictions
from iotsynth.classify.svm import RBFSVM, SOLVERS, stratified_subsample
from iotsynth.preprocess import Preprocessor

LOGGER = logging.getLogger(__name__)


def compare_solvers(train: pd.DataFrame, test: pd.DataFrame, preprocessor: Preprocessor, rows: int,
                    settings: Mapping[str, Any], seed: int = 0) -> pd.DataFrame:
    """Train both solvers on one stratified sample of ``train`` and score them on ``test``.

    Parameters
    ----------
    train, test : pandas.DataFrame
        Rows with ``device_type`` and the features.
    preprocessor : Preprocessor
    rows : int
        Training rows in the sample (stratified by device type).
    settings : mapping
        ``classifiers.svm`` settings; ``solver`` and ``max_train_rows`` are
        ignored.
    seed : int, default 0

    Returns
    -------
    pandas.DataFrame
        One row per solver: ``solver``, ``train_rows``, ``test_rows``, the
        scores, ``train_seconds``, ``predict_seconds`` and ``memory_mb``.
    """
    labels_train = train["device_type"].astype(str).to_numpy()
    sample = stratified_subsample(labels_train, rows, np.random.default_rng(seed))
    X_train = preprocessor.transform(train.iloc[sample])
    y_train = labels_train[sample]
    X_test = preprocessor.transform(test)
    y_test = test["device_type"].astype(str).to_numpy()
    labels = sorted(set(y_train) | set(y_test))

    records = []
    for solver in SOLVERS:
        model = RBFSVM(solver=solver, C=settings.get("C", 1.0), gamma=settings.get("gamma", "scale"),
                       n_components=settings.get("n_components", 1000), cache_mb=settings.get("cache_mb", 1000.0),
                       seed=seed)
        _, cost = measure_call(lambda: model.fit(X_train, y_train))
        started = time.perf_counter()
        scores = score_predictions(y_test, model.predict(X_test), labels)
        record = {"solver": solver, "train_rows": len(sample), "test_rows": len(y_test),
                  **{name: scores[name] for name in SCORE_NAMES},
                  "train_seconds": cost.seconds, "predict_seconds": time.perf_counter() - started,
                  "memory_mb": cost.peak_memory_mb}
        LOGGER.info("%s", record)
        records.append(record)
    return pd.DataFrame(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="training split or balanced training split (parquet)")
    parser.add_argument("--test", required=True, help="test split (parquet)")
    parser.add_argument("--preprocessor", default="results/preprocess/preprocessor.json",
                        help="preprocessor JSON (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=20000, help="training rows in the sample (default: %(default)s)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength (default: %(default)s)")
    parser.add_argument("--components", type=int, default=1000,
                        help="Nystroem landmarks of the fast solver (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the landmarks")
    parser.add_argument("--output", help="CSV file for the results (default: print them)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    train = pd.read_parquet(arguments.train)
    test = pd.read_parquet(arguments.test)
    preprocessor = Preprocessor.load(arguments.preprocessor)
    settings = {"C": arguments.C, "gamma": "scale", "n_components": arguments.components}
    with threadpool_limits(limits=arguments.threads):
        table = compare_solvers(train, test, preprocessor, arguments.rows, settings, arguments.seed)

    if arguments.output:
        table.to_csv(arguments.output, index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
