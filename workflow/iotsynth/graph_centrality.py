"""Node centrality of the feature graph.

``degree`` is the weighted degree (strength), ``eigenvector`` the leading
eigenvector of the weighted adjacency matrix, ``pagerank`` weighted PageRank
(damping 0.85), and ``betweenness`` shortest-path betweenness with edge length
``1 / w``, so strong edges are short. Each measure is divided by its maximum
over the features, and the combined score is the mean of the chosen measures.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

CENTRALITY_MEASURES = ("degree", "eigenvector", "pagerank", "betweenness")
PAGERANK_DAMPING = 0.85


def centrality_table(
    names: list[str],
    kinds: list[str],
    adjacency: np.ndarray,
    measures: tuple[str, ...] = CENTRALITY_MEASURES,
) -> pd.DataFrame:
    """Score every feature by the chosen centrality measures (module docstring).

    Parameters
    ----------
    names, kinds : list of str
        Feature names and kinds, in adjacency order.
    adjacency : numpy.ndarray of shape (n_features, n_features)
        Sparsified symmetric weights.
    measures : tuple of str
        Measures from ``CENTRALITY_MEASURES`` to compute and average.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``kind``, one raw score column per measure, ``combined``
        (mean of the scores each divided by its maximum) and ``rank``, sorted
        by ``combined`` from most to least central.
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(len(names)))
    for first, second in zip(*np.nonzero(np.triu(adjacency, k=1)), strict=True):
        weight = float(adjacency[first, second])
        graph.add_edge(int(first), int(second), weight=weight, length=1.0 / weight)

    scores = {measure: _centrality(measure, graph, adjacency) for measure in measures}
    table = pd.DataFrame({"feature": names, "kind": kinds, **scores})
    scaled = [_scale_to_max(scores[measure]) for measure in measures]
    table["combined"] = np.mean(scaled, axis=0)

    table = table.sort_values("combined", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def _centrality(measure: str, graph: nx.Graph, adjacency: np.ndarray) -> np.ndarray:
    count = adjacency.shape[0]
    if measure == "degree":
        return adjacency.sum(axis=1)
    if measure == "eigenvector":
        # numpy's symmetric eigensolver is deterministic, unlike ARPACK's
        # random start. NOTE: on a disconnected graph the leading eigenvector
        # lives on the component with the largest eigenvalue; nodes of other
        # components score 0.
        if not adjacency.any():
            return np.zeros(count)
        _, vectors = np.linalg.eigh(adjacency)
        return np.abs(vectors[:, -1])
    if measure == "pagerank":
        ranks = nx.pagerank(graph, alpha=PAGERANK_DAMPING, weight="weight")
        return np.array([ranks[node] for node in range(count)])
    if measure == "betweenness":
        between = nx.betweenness_centrality(graph, weight="length", normalized=True)
        return np.array([between[node] for node in range(count)])
    raise ValueError(f"unknown centrality measure {measure!r}; expected one of {list(CENTRALITY_MEASURES)}")


def _scale_to_max(scores: np.ndarray) -> np.ndarray:
    largest = scores.max()
    return scores / largest if largest > 0 else np.zeros_like(scores)
