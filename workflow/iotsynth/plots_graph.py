"""Figure 6: the most central features of the feature-relationship graph."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from iotsynth.graph import FeatureGraph  # noqa: E402

# Edge colours by the sign of the Spearman correlation; grey for pairs with a
# categorical feature, whose weight comes from mutual information alone.
SIGN_COLOURS = {1: "#c0392b", -1: "#2471a3", 0: "#7f8c8d"}


def plot_feature_graph(graph: FeatureGraph, path: str | Path, top_n: int = 20) -> None:
    """Draw the ``top_n`` most central features and the kept edges among them.

    Node size and colour show the combined centrality, edge width the
    combined weight, edge colour the sign of the Spearman correlation. Nodes
    sit on a circle with their labels outside it, so labels never overlap;
    connected features are placed next to each other, most central first.

    Parameters
    ----------
    graph : FeatureGraph
    path : str or Path
        PNG file to write; parent folders are created.
    top_n : int, default 20
        Number of features to draw, taken from the top of the centrality
        ranking.
    """
    if top_n < 2:
        raise ValueError(f"top_n must be at least 2, got {top_n}")
    top = graph.centrality.head(top_n)
    index = {name: position for position, name in enumerate(graph.names)}
    subgraph = _top_subgraph(graph, list(top["feature"]), index)
    centrality = dict(zip(top["feature"], top["combined"], strict=True))
    layout = _circle_layout(subgraph, list(top["feature"]))

    figure, axes = plt.subplots(figsize=(12, 10), layout="constrained")
    nodes = _draw(subgraph, layout, centrality, axes)
    _draw_labels(layout, axes)

    colorbar = figure.colorbar(nodes, ax=axes, shrink=0.6)
    colorbar.set_label("combined centrality")
    axes.legend(handles=_legend_handles(), loc="lower left", fontsize=9, frameon=True)
    axes.set_title(f"Feature-relationship graph: the {len(subgraph)} most central features")
    axes.set_xlim(-1.7, 1.7)
    axes.set_ylim(-1.35, 1.35)
    axes.set_aspect("equal")
    axes.set_axis_off()

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=200)
    plt.close(figure)


def _circle_layout(subgraph: nx.Graph, ranked: list[str]) -> dict[str, np.ndarray]:
    """Place nodes clockwise from the top, grouped by connected component.

    Larger components come first; within a component, nodes keep their
    centrality order.
    """
    rank = {name: position for position, name in enumerate(ranked)}
    components = sorted(
        nx.connected_components(subgraph), key=lambda component: (-len(component), min(rank[n] for n in component))
    )
    order = [name for component in components for name in sorted(component, key=rank.__getitem__)]
    angles = np.pi / 2 - 2 * np.pi * np.arange(len(order)) / len(order)
    return {name: np.array([np.cos(angle), np.sin(angle)]) for name, angle in zip(order, angles, strict=True)}


def _top_subgraph(graph: FeatureGraph, names: list[str], index: dict[str, int]) -> nx.Graph:
    subgraph = nx.Graph()
    subgraph.add_nodes_from(names)
    sign = graph.sign
    for position, first in enumerate(names):
        for second in names[position + 1 :]:
            weight = graph.adjacency[index[first], index[second]]
            if weight > 0:
                subgraph.add_edge(first, second, weight=float(weight), sign=int(sign[index[first], index[second]]))
    return subgraph


def _draw(subgraph: nx.Graph, layout: dict, centrality: dict[str, float], axes: plt.Axes):
    names = list(subgraph.nodes)
    scores = np.array([centrality[name] for name in names])
    edges = list(subgraph.edges(data=True))

    nx.draw_networkx_edges(
        subgraph,
        layout,
        edgelist=[(first, second) for first, second, _ in edges],
        width=[0.5 + 6.0 * data["weight"] for _, _, data in edges],
        edge_color=[SIGN_COLOURS[data["sign"]] for _, _, data in edges],
        alpha=0.6,
        ax=axes,
    )
    nodes = nx.draw_networkx_nodes(
        subgraph,
        layout,
        nodelist=names,
        node_size=300 + 1700 * scores,
        node_color=scores,
        cmap="viridis",
        vmin=0.0,
        vmax=max(float(scores.max()), 1e-12),
        edgecolors="black",
        linewidths=0.5,
        ax=axes,
    )
    return nodes


def _draw_labels(layout: dict[str, np.ndarray], axes: plt.Axes) -> None:
    for name, (x, y) in layout.items():
        # Labels sit outside the circle and point away from it.
        horizontal = "center"
        if x > 0.05:
            horizontal = "left"
        elif x < -0.05:
            horizontal = "right"
        vertical = "center"
        if y > 0.95:
            vertical = "bottom"
        elif y < -0.95:
            vertical = "top"
        axes.text(1.15 * x, 1.15 * y, name, fontsize=10, ha=horizontal, va=vertical)


def _legend_handles() -> list[Line2D]:
    labels = {1: "positive Spearman", -1: "negative Spearman", 0: "categorical pair (MI only)"}
    return [Line2D([0], [0], color=SIGN_COLOURS[sign], linewidth=3, label=label) for sign, label in labels.items()]
