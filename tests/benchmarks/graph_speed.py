"""Time the all-pairs measures of the feature graph.

Builds the graph on a synthetic frame of the given size, or on a real training
split, and prints the seconds of each step. Run from the repository root:

    python tests/benchmarks/graph_speed.py --rows 69000 --features 97
    python tests/benchmarks/graph_speed.py --train results/splits/train.parquet \
        --dictionary results/features/feature_dictionary.csv

``--knn-pairs N`` also times scikit-learn's k-NN mutual information on N
pairs and extrapolates to all pairs, for comparison with the binned
estimator.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.feature_selection import mutual_info_regression

from iotsynth.graph import GraphSettings, build_feature_graph

# Share of each kind in the synthetic frame, close to the extractor's feature
# dictionary (111 features: 45 discrete, 36 binary, 22 categorical, 8 continuous).
KIND_SHARES = {"continuous": 0.07, "discrete": 0.41, "binary": 0.32, "categorical": 0.2}


def synthetic_frame(rows: int, features: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Make a frame of mixed kinds with dependent columns, and its dictionary.

    Parameters
    ----------
    rows, features : int
        Shape of the frame.
    rng : numpy.random.Generator

    Returns
    -------
    frame : pandas.DataFrame of shape (rows, features)
    dictionary : pandas.DataFrame with ``name`` and ``kind``
    """
    kinds = rng.choice(list(KIND_SHARES), size=features, p=list(KIND_SHARES.values()))
    latent = rng.normal(size=(rows, 4))
    columns = {}
    for index, kind in enumerate(kinds):
        driver = latent[:, index % 4] + 0.5 * rng.normal(size=rows)
        if kind == "continuous":
            # Packet-size-like: zero when the layer is absent, skewed otherwise.
            values = np.where(driver > -0.5, np.exp(driver) * 100.0, 0.0)
        elif kind == "discrete":
            values = np.clip(np.round(driver * 10 + 64), 0, 255)
        elif kind == "binary":
            values = (driver > rng.normal()).astype(float)
        else:
            values = np.digitize(driver, [-1.0, 0.0, 0.5, 1.5]).astype(float) * 7
        columns[f"feature_{index:03d}"] = values
    columns[f"feature_{features - 1:03d}"] = np.zeros(rows)
    frame = pd.DataFrame(columns)
    dictionary = pd.DataFrame({"name": list(columns), "kind": list(kinds)})
    return frame, dictionary


def time_knn(frame: pd.DataFrame, pairs: int, rng: np.random.Generator) -> float:
    """Return the mean seconds of scikit-learn's k-NN mutual information per pair."""
    names = list(frame.columns)
    start = time.perf_counter()
    for _ in range(pairs):
        first, second = rng.choice(len(names), size=2, replace=False)
        mutual_info_regression(
            frame[[names[first]]].to_numpy(), frame[names[second]].to_numpy(), random_state=int(rng.integers(2**31))
        )
    return (time.perf_counter() - start) / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=69000, help="rows of the synthetic frame")
    parser.add_argument("--features", type=int, default=97, help="features of the synthetic frame")
    parser.add_argument("--train", help="training split (parquet) to use instead of a synthetic frame")
    parser.add_argument("--dictionary", help="feature dictionary (CSV) of --train")
    parser.add_argument("--repeats", type=int, default=3, help="builds to time; the minimum is reported")
    parser.add_argument("--knn-pairs", type=int, default=0, help="pairs to time with scikit-learn's k-NN estimator")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic frame")
    arguments = parser.parse_args()
    rng = np.random.default_rng(arguments.seed)

    if arguments.train:
        if not arguments.dictionary:
            parser.error("--train needs --dictionary")
        dictionary = pd.read_csv(arguments.dictionary)
        frame = pd.read_parquet(arguments.train, columns=list(dictionary["name"]))
    else:
        frame, dictionary = synthetic_frame(arguments.rows, arguments.features, rng)
    pairs = frame.shape[1] * (frame.shape[1] - 1) // 2
    print(f"frame: {frame.shape[0]} rows x {frame.shape[1]} features, {pairs} pairs")

    best = None
    for _ in range(arguments.repeats):
        start = time.perf_counter()
        graph = build_feature_graph(frame, dictionary, GraphSettings())
        seconds = time.perf_counter() - start
        if best is None or seconds < best[0]:
            best = (seconds, graph.timings)
    steps = ", ".join(f"{step} {value:.2f} s" for step, value in best[1].items())
    print(f"feature graph, all pairs: {best[0]:.2f} s ({steps})")

    if arguments.knn_pairs:
        per_pair = time_knn(frame, arguments.knn_pairs, rng)
        print(
            f"scikit-learn k-NN mutual information: {per_pair:.2f} s per pair, "
            f"about {per_pair * pairs / 60:.1f} min for all {pairs} pairs (extrapolated)"
        )


if __name__ == "__main__":
    main()
