"""The graph stage: read the training split, build the feature graph, write its files."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotsynth.graph import FeatureGraph, build_feature_graph, write_graph_files
from iotsynth.plots_graph import plot_feature_graph

LOGGER = logging.getLogger(__name__)


def run_graph_stage(
    train: str | Path,
    dictionary: str | Path,
    adjacency: str | Path,
    edges: str | Path,
    centrality: str | Path,
    graphml: str | Path,
    figure: str | Path,
    section: Mapping[str, Any],
) -> FeatureGraph:
    """Build the feature graph from the training split and write every output.

    Parameters
    ----------
    train : str or Path
        Training split (parquet); no other split is read.
    dictionary : str or Path
        Feature dictionary (CSV).
    adjacency, edges, centrality, graphml, figure : str or Path
        Output files, see :func:`write_graph_files` and
        :func:`iotsynth.plots_graph.plot_feature_graph`.
    section : mapping
        The ``graph`` section of the configuration.

    Returns
    -------
    FeatureGraph
    """
    feature_dictionary = pd.read_csv(dictionary)
    if "name" not in feature_dictionary.columns:
        raise ValueError(f"{dictionary}: no 'name' column; is this a feature dictionary?")
    frame = pd.read_parquet(train, columns=[str(name) for name in feature_dictionary["name"]])
    LOGGER.info("read %d rows and %d features from %s", frame.shape[0], frame.shape[1], train)

    start = time.perf_counter()
    graph = build_feature_graph(frame, feature_dictionary, section)
    seconds = time.perf_counter() - start
    steps = ", ".join(f"{step} {value:.2f} s" for step, value in graph.timings.items())
    pairs = len(graph.names) * (len(graph.names) - 1) // 2
    LOGGER.info("built the feature graph of %d pairs in %.2f s (%s)", pairs, seconds, steps)

    edge_count = int(np.count_nonzero(np.triu(graph.adjacency, k=1)))
    LOGGER.info("kept %d of %d edges (%s)", edge_count, pairs, _describe_sparsification(section))
    top = graph.centrality.head(10)
    LOGGER.info(
        "10 most central features: %s",
        ", ".join(f"{row.feature} ({row.combined:.3f})" for row in top.itertuples()),
    )

    write_graph_files(graph, feature_dictionary, adjacency, edges, centrality, graphml)
    LOGGER.info("wrote %s, %s, %s and %s", adjacency, edges, centrality, graphml)
    plot_feature_graph(graph, figure, top_n=section["figure"]["top_n"])
    LOGGER.info("wrote %s", figure)
    return graph


def _describe_sparsification(section: Mapping[str, Any]) -> str:
    sparsify_section = section["sparsify"]
    if sparsify_section["method"] == "threshold":
        return f"weight >= {sparsify_section['threshold']}"
    return f"top {sparsify_section['top_k']} per feature"
