"""Tests of the feature-relationship graph on data with known dependencies."""

from __future__ import annotations

import logging

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import mutual_info_score

from iotsynth.graph import (
    EDGE_COLUMNS,
    GraphSettings,
    build_feature_graph,
    load_adjacency,
    sparsify,
    write_graph_files,
)
from iotsynth.graph_centrality import centrality_table
from iotsynth.graph_stage import run_graph_stage
from iotsynth.graph_measures import (
    bin_columns,
    mutual_information_matrix,
    normalise_mutual_information,
    pearson_matrix,
    spearman_matrix,
)
from iotsynth.plots_graph import plot_feature_graph

ROWS = 5000
SECTION = {
    "mutual_information": {"bins": 32, "binning": "quantile", "normalization": "sqrt", "bias_correction": True},
    "weights": {"pearson": 1.0, "spearman": 1.0, "mutual_information": 1.0},
    "sparsify": {"method": "threshold", "threshold": 0.3, "top_k": 5},
    "centrality": {"measures": ["degree", "eigenvector", "pagerank", "betweenness"]},
    "figure": {"top_n": 20},
}


@pytest.fixture(scope="module")
def known() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a frame with known dependencies and its feature dictionary."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=ROWS)
    protocol = rng.choice([6, 17, 1], size=ROWS, p=[0.6, 0.3, 0.1])
    frame = pd.DataFrame(
        {
            "x": x,
            "x_squared": x**2,
            "linear": 2.0 * x + 0.1 * rng.normal(size=ROWS),
            "decreasing": -np.exp(x),
            "noise": rng.normal(size=ROWS),
            "constant": np.full(ROWS, 3.0),
            "protocol": protocol,
            "is_tcp": (protocol == 6).astype(np.int64),
            "ttl": rng.integers(30, 70, size=ROWS),
            "capture": "Aria/Setup-A-1-STA",
        }
    )
    dictionary = pd.DataFrame(
        {
            "name": ["x", "x_squared", "linear", "decreasing", "noise", "constant", "protocol", "is_tcp", "ttl"],
            "kind": [
                "continuous",
                "continuous",
                "continuous",
                "continuous",
                "continuous",
                "continuous",
                "categorical",
                "binary",
                "discrete",
            ],
            "layer": ["packet"] * 9,
        }
    )
    return frame, dictionary


@pytest.fixture(scope="module")
def graph(known):
    frame, dictionary = known
    return build_feature_graph(frame, dictionary, GraphSettings(threshold=0.3))


def measure(graph, first: str, second: str, matrix: str) -> float:
    return float(getattr(graph, matrix)[graph.names.index(first), graph.names.index(second)])


def test_pearson_matches_numpy():
    values = np.random.default_rng(1).normal(size=(300, 4))
    values[:, 1] += values[:, 0]
    np.testing.assert_allclose(pearson_matrix(values), np.corrcoef(values, rowvar=False), atol=1e-12)


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    values = np.column_stack([rng.integers(0, 5, 400), rng.normal(size=400), rng.integers(0, 3, 400)]).astype(float)
    values[:, 1] += values[:, 0]
    np.testing.assert_allclose(spearman_matrix(values), spearmanr(values).statistic, atol=1e-12)


def test_mutual_information_matches_sklearn():
    rng = np.random.default_rng(3)
    values = np.column_stack([rng.normal(size=2000), rng.integers(0, 7, 2000), rng.exponential(size=2000)])
    values[:, 2] += values[:, 0]
    codes = bin_columns(values, np.array([False, True, False]), bins=16, binning="quantile")
    information, _ = mutual_information_matrix(codes, bias_correction=False)

    for first, second in [(0, 1), (0, 2), (1, 2)]:
        expected = mutual_info_score(codes[first], codes[second])
        assert information[first, second] == pytest.approx(expected, abs=1e-10)
        assert information[second, first] == pytest.approx(expected, abs=1e-10)


def test_bias_correction_lowers_independent_mi():
    rng = np.random.default_rng(4)
    codes = bin_columns(rng.normal(size=(1000, 2)), np.array([False, False]), bins=16, binning="quantile")
    plain, _ = mutual_information_matrix(codes, bias_correction=False)
    corrected, _ = mutual_information_matrix(codes, bias_correction=True)
    assert plain[0, 1] > 0.05
    assert corrected[0, 1] < plain[0, 1] / 3


def test_binning_keeps_discrete_values():
    values = np.array([[0.0, 5.0], [1.0, 5.0], [0.0, 5.0], [2.0, 5.0]])
    codes = bin_columns(values, np.array([False, False]), bins=4, binning="uniform")
    assert codes[0].tolist() == [0, 1, 0, 2]
    assert codes[1].tolist() == [0, 0, 0, 0]


def test_binning_pools_rare_categories():
    column = np.repeat(np.arange(10.0), np.arange(10, 0, -1))[:, None]
    codes = bin_columns(column, np.array([True]), bins=4, binning="quantile")
    assert codes.max() == 3
    assert (codes[0] == 3).sum() == 7 + 6 + 5 + 4 + 3 + 2 + 1


@pytest.mark.parametrize("binning", ["quantile", "uniform"])
def test_binning_limits_bins(binning):
    column = np.random.default_rng(5).exponential(size=(3000, 1))
    codes = bin_columns(column, np.array([False]), bins=8, binning=binning)
    assert codes.max() + 1 <= 8
    assert set(np.unique(codes)) == set(range(codes.max() + 1))


@pytest.mark.parametrize("normalization", ["sqrt", "min", "linfoot"])
def test_normalised_mi_in_unit_interval(normalization):
    rng = np.random.default_rng(6)
    values = np.column_stack([rng.normal(size=500), np.zeros(500), rng.integers(0, 2, 500)])
    values[:, 2] += values[:, 0] > 0
    codes = bin_columns(values, np.array([False, False, False]), bins=8, binning="quantile")
    information, entropy = mutual_information_matrix(codes)
    normalised = normalise_mutual_information(information, entropy, normalization)

    assert np.isfinite(normalised).all()
    assert normalised.min() >= 0.0
    assert normalised.max() <= 1.0
    assert normalised[1].tolist() == [0.0, 0.0, 0.0]
    assert normalised[0, 2] > 0.1


def test_identical_columns_have_nmi_one():
    column = np.random.default_rng(8).integers(0, 5, 1000).astype(float)
    codes = bin_columns(np.column_stack([column, column]), np.array([False, False]), bins=8, binning="quantile")
    information, entropy = mutual_information_matrix(codes)
    assert normalise_mutual_information(information, entropy, "sqrt")[0, 1] == pytest.approx(1.0)


def test_square_relation_found_by_mi_only(graph):
    assert abs(measure(graph, "x", "x_squared", "pearson")) < 0.1
    assert abs(measure(graph, "x", "x_squared", "spearman")) < 0.1
    assert measure(graph, "x", "x_squared", "mutual_information") > 0.5


def test_linear_relation_is_strong_and_signed(graph):
    assert measure(graph, "x", "linear", "pearson") > 0.99
    assert measure(graph, "x", "linear", "weight") > 0.8
    assert graph.sign[graph.names.index("x"), graph.names.index("decreasing")] == -1
    assert measure(graph, "x", "decreasing", "spearman") == pytest.approx(-1.0)


def test_independent_features_have_low_weight(graph):
    assert measure(graph, "x", "noise", "mutual_information") < 0.02
    assert measure(graph, "x", "noise", "weight") < 0.05
    assert measure(graph, "x", "noise", "adjacency") == 0.0


def test_constant_feature_has_zero_weights(graph):
    row = graph.names.index("constant")
    for matrix in (graph.weight, graph.mutual_information, graph.adjacency):
        assert np.isfinite(matrix).all()
    assert not graph.weight[row].any()
    assert not graph.adjacency[row].any()


def test_categorical_pairs_use_mi_only(graph):
    assert np.isnan(measure(graph, "protocol", "is_tcp", "pearson"))
    assert np.isnan(measure(graph, "protocol", "x", "spearman"))
    assert graph.sign[graph.names.index("protocol"), graph.names.index("is_tcp")] == 0
    nmi = measure(graph, "protocol", "is_tcp", "mutual_information")
    assert measure(graph, "protocol", "is_tcp", "weight") == pytest.approx(nmi)
    assert nmi > 0.5


def test_binary_pairs_keep_correlations(graph):
    assert np.isfinite(measure(graph, "is_tcp", "ttl", "pearson"))
    assert np.isfinite(measure(graph, "is_tcp", "x", "spearman"))


def test_weight_formula_is_weighted_mean(known):
    frame, dictionary = known
    settings = GraphSettings(weight_pearson=2.0, weight_spearman=0.0, weight_mutual_information=1.0)
    result = build_feature_graph(frame, dictionary, settings)
    first, second = result.names.index("x"), result.names.index("x_squared")
    expected = (2.0 * abs(result.pearson[first, second]) + result.mutual_information[first, second]) / 3.0
    assert result.weight[first, second] == pytest.approx(expected)


def test_adjacency_symmetric_zero_diagonal(graph):
    np.testing.assert_array_equal(graph.adjacency, graph.adjacency.T)
    np.testing.assert_array_equal(graph.weight, graph.weight.T)
    assert not np.diag(graph.adjacency).any()
    assert not np.diag(graph.weight).any()


def test_threshold_sparsification(graph):
    in_graph = graph.adjacency > 0
    assert (graph.weight[in_graph] >= 0.3).all()
    assert not ((graph.weight >= 0.3) & ~in_graph).any()


def test_top_k_keeps_each_feature_strongest():
    weight = np.array(
        [
            [0.0, 0.9, 0.1, 0.2],
            [0.9, 0.0, 0.3, 0.05],
            [0.1, 0.3, 0.0, 0.0],
            [0.2, 0.05, 0.0, 0.0],
        ]
    )
    adjacency = sparsify(weight, GraphSettings(method="top_k", top_k=1))
    expected = np.array(
        [
            [0.0, 0.9, 0.0, 0.2],
            [0.9, 0.0, 0.3, 0.0],
            [0.0, 0.3, 0.0, 0.0],
            [0.2, 0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(adjacency, expected)


def test_top_k_skips_zero_weights():
    adjacency = sparsify(np.zeros((3, 3)), GraphSettings(method="top_k", top_k=2))
    assert not adjacency.any()


def test_centrality_ranks_hub_first():
    adjacency = np.zeros((5, 5))
    for leaf in range(1, 5):
        adjacency[0, leaf] = adjacency[leaf, 0] = 0.5
    adjacency[3, 4] = adjacency[4, 3] = 0.4
    table = centrality_table(list("abcde"), ["continuous"] * 5, adjacency)

    assert table.loc[0, "feature"] == "a"
    assert table.loc[0, "rank"] == 1
    assert table.loc[0, "combined"] == pytest.approx(1.0)
    assert list(table.columns) == ["feature", "kind", "degree", "eigenvector", "pagerank", "betweenness", "combined", "rank"]


def test_centrality_of_empty_graph():
    table = centrality_table(["a", "b", "c"], ["binary"] * 3, np.zeros((3, 3)), ("degree", "eigenvector"))
    assert np.isfinite(table[["degree", "eigenvector", "combined"]].to_numpy()).all()
    assert (table["combined"] == 0.0).all()


def test_written_files_round_trip(graph, known, tmp_path):
    _, dictionary = known
    paths = {name: tmp_path / name for name in ("adjacency.csv", "edges.csv", "centrality.csv", "graph.graphml")}
    write_graph_files(graph, dictionary, *paths.values())

    names, adjacency = load_adjacency(paths["adjacency.csv"])
    assert names == graph.names
    np.testing.assert_allclose(adjacency, graph.adjacency, atol=1e-6)

    edges = pd.read_csv(paths["edges.csv"])
    assert list(edges.columns) == list(EDGE_COLUMNS)
    assert len(edges) == len(names) * (len(names) - 1) // 2
    assert edges["weight"].is_monotonic_decreasing
    assert edges["in_graph"].sum() == np.count_nonzero(np.triu(graph.adjacency, k=1))

    centrality = pd.read_csv(paths["centrality.csv"])
    assert sorted(centrality["feature"]) == sorted(names)

    network = nx.read_graphml(paths["graph.graphml"])
    assert set(network.nodes) == set(names)
    assert network.number_of_edges() == edges["in_graph"].sum()
    assert network.nodes["x"]["layer"] == "packet"
    assert network.edges["x", "decreasing"]["sign"] == -1


def test_load_adjacency_rejects_asymmetric(tmp_path):
    path = tmp_path / "adjacency.csv"
    pd.DataFrame([[0.0, 0.5], [0.4, 0.0]], index=pd.Index(["a", "b"], name="feature"), columns=["a", "b"]).to_csv(path)
    with pytest.raises(ValueError, match="not symmetric"):
        load_adjacency(path)


def test_load_adjacency_rejects_mismatched_labels(tmp_path):
    path = tmp_path / "adjacency.csv"
    pd.DataFrame([[0.0, 0.5], [0.5, 0.0]], index=pd.Index(["a", "b"], name="feature"), columns=["a", "c"]).to_csv(path)
    with pytest.raises(ValueError, match="labels differ"):
        load_adjacency(path)


def test_missing_feature_raises(known):
    frame, dictionary = known
    with pytest.raises(ValueError, match="missing from the frame"):
        build_feature_graph(frame.drop(columns=["ttl"]), dictionary)


def test_non_finite_value_raises(known):
    frame, dictionary = known
    broken = frame.copy()
    broken.loc[3, "noise"] = np.nan
    with pytest.raises(ValueError, match="noise"):
        build_feature_graph(broken, dictionary)


def test_unknown_kind_raises(known):
    frame, dictionary = known
    broken = dictionary.copy()
    broken.loc[0, "kind"] = "ordinal"
    with pytest.raises(ValueError, match="ordinal"):
        build_feature_graph(frame, broken)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bins": 1}, "bins"),
        ({"binning": "kmeans"}, "binning"),
        ({"weight_mutual_information": 0.0}, "mutual_information"),
        ({"threshold": 1.5}, "threshold"),
        ({"top_k": 0}, "top_k"),
        ({"centrality": ("degree",)}, "at least two"),
        ({"centrality": ("degree", "closeness")}, "closeness"),
    ],
)
def test_settings_reject_invalid(changes, message):
    with pytest.raises(ValueError, match=message):
        GraphSettings(**changes)


def test_settings_from_config_section():
    section = {
        "mutual_information": {"bins": 16, "binning": "uniform", "normalization": "min", "bias_correction": False},
        "weights": {"pearson": 0.5, "spearman": 1.0, "mutual_information": 2.0},
        "sparsify": {"method": "top_k", "threshold": 0.2, "top_k": 3},
        "centrality": {"measures": ["pagerank", "betweenness"]},
        "figure": {"top_n": 20},
    }
    settings = GraphSettings.from_config(section)
    assert settings.bins == 16
    assert settings.method == "top_k"
    assert settings.centrality == ("pagerank", "betweenness")

    del section["weights"]
    with pytest.raises(ValueError, match="weights"):
        GraphSettings.from_config(section)


def test_figure_written(graph, tmp_path):
    path = tmp_path / "figures" / "figure06_feature_graph.png"
    plot_feature_graph(graph, path, top_n=5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_writes_every_output(known, tmp_path, caplog):
    frame, dictionary = known
    frame.to_parquet(tmp_path / "train.parquet")
    dictionary.to_csv(tmp_path / "feature_dictionary.csv", index=False)
    outputs = {
        "adjacency": tmp_path / "graph" / "adjacency.csv",
        "edges": tmp_path / "graph" / "edges.csv",
        "centrality": tmp_path / "graph" / "centrality.csv",
        "graphml": tmp_path / "graph" / "feature_graph.graphml",
        "figure": tmp_path / "figures" / "figure06_feature_graph.png",
    }

    with caplog.at_level(logging.INFO, logger="iotsynth"):
        result = run_graph_stage(
            train=tmp_path / "train.parquet",
            dictionary=tmp_path / "feature_dictionary.csv",
            section=SECTION,
            **outputs,
        )

    assert result.names == list(dictionary["name"])
    for path in outputs.values():
        assert path.stat().st_size > 0, path
    assert "built the feature graph of 36 pairs in" in caplog.text
    assert "10 most central features" in caplog.text
