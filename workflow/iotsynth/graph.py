"""Feature-relationship graph: one node per feature, one weighted edge per pair.

Measures (see :mod:`iotsynth.graph_measures` for the estimators)
    Pearson and Spearman correlation and normalised mutual information (NMI)
    between every pair of features, fitted on the rows given (the training
    split in the workflow).

Categorical features
    Their values are integer codes (EtherType, IP protocol, ...), so the order
    and distance that Pearson and Spearman rely on mean nothing. A pair with at
    least one categorical feature gets NaN for both correlations, sign 0, and
    its weight from NMI alone.

Combined weight
    With measure weights ``a_p``, ``a_s`` and ``a_m`` from the configuration::

        w = (a_p |pearson| + a_s |spearman| + a_m NMI) / (a_p + a_s + a_m)

    for a pair of non-categorical features, and ``w = NMI`` for a pair with a
    categorical feature. Every term is in [0, 1], so ``w`` is too. A constant
    feature has correlation 0 and NMI 0 with every other feature, so weight 0.

Sparsification
    ``threshold`` keeps the pairs with ``w >= threshold``. ``top_k`` keeps,
    for every feature, the ``k`` pairs with the largest positive weight, and an
    edge stays when either end keeps it.

Centrality
    Computed on the sparsified graph by :mod:`iotsynth.graph_centrality`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from iotsynth.graph_centrality import CENTRALITY_MEASURES, centrality_table
from iotsynth.graph_measures import (
    BINNINGS,
    NORMALIZATIONS,
    bin_columns,
    mutual_information_matrix,
    normalise_mutual_information,
    pearson_matrix,
    spearman_matrix,
)

LOGGER = logging.getLogger(__name__)

KINDS = ("continuous", "discrete", "binary", "categorical")
SPARSIFY_METHODS = ("threshold", "top_k")
EDGE_COLUMNS = (
    "source",
    "target",
    "source_kind",
    "target_kind",
    "pearson",
    "spearman",
    "mutual_information",
    "weight",
    "sign",
    "in_graph",
)


@dataclass(frozen=True)
class GraphSettings:
    """Settings of the feature graph, read from the ``graph`` section of the configuration.

    Parameters
    ----------
    bins : int, default 32
        Maximum bins per feature for mutual information. 32 bins keep the
        Miller-Madow bias below 0.01 nats at 69,000 rows.
    binning : {"quantile", "uniform"}, default "quantile"
        Cut of features with more than ``bins`` distinct values. Quantile bins
        follow skewed packet-size and timing distributions better.
    normalization : {"sqrt", "min", "linfoot"}, default "sqrt"
        Normalisation of mutual information to [0, 1]; see
        :mod:`iotsynth.graph_measures`.
    bias_correction : bool, default True
        Apply the Miller-Madow correction to every entropy.
    weight_pearson, weight_spearman, weight_mutual_information : float
        Relative weight of each measure in the combined edge weight. The
        mutual information weight must be positive because it is the only
        measure defined for categorical pairs.
    method : {"threshold", "top_k"}, default "threshold"
        Sparsification rule.
    threshold : float, default 0.3
        Minimum combined weight of an edge for ``method="threshold"``.
    top_k : int, default 5
        Edges kept per feature for ``method="top_k"``.
    centrality : tuple of str, default all four measures
        Measures averaged into the combined centrality; at least two.
    """

    bins: int = 32
    binning: str = "quantile"
    normalization: str = "sqrt"
    bias_correction: bool = True
    weight_pearson: float = 1.0
    weight_spearman: float = 1.0
    weight_mutual_information: float = 1.0
    method: str = "threshold"
    threshold: float = 0.3
    top_k: int = 5
    centrality: tuple[str, ...] = CENTRALITY_MEASURES

    def __post_init__(self) -> None:
        _check_choice("graph.mutual_information.binning", self.binning, BINNINGS)
        _check_choice("graph.mutual_information.normalization", self.normalization, NORMALIZATIONS)
        _check_choice("graph.sparsify.method", self.method, SPARSIFY_METHODS)
        if not isinstance(self.bins, int) or self.bins < 2:
            raise ValueError(f"graph.mutual_information.bins must be an integer >= 2, got {self.bins!r}")
        if self.weight_pearson < 0 or self.weight_spearman < 0:
            raise ValueError(
                "graph.weights.pearson and graph.weights.spearman must be >= 0, "
                f"got {self.weight_pearson!r} and {self.weight_spearman!r}"
            )
        if not self.weight_mutual_information > 0:
            raise ValueError(
                "graph.weights.mutual_information must be > 0 because it is the only measure "
                f"for categorical pairs, got {self.weight_mutual_information!r}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"graph.sparsify.threshold must be in [0, 1], got {self.threshold!r}")
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"graph.sparsify.top_k must be an integer >= 1, got {self.top_k!r}")
        if len(set(self.centrality)) < 2:
            raise ValueError(
                f"graph.centrality.measures needs at least two distinct measures, got {list(self.centrality)}"
            )
        for measure in self.centrality:
            _check_choice("graph.centrality.measures", measure, CENTRALITY_MEASURES)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> GraphSettings:
        """Build settings from the ``graph`` section of the configuration.

        Parameters
        ----------
        section : mapping
            The ``graph`` section, laid out as in ``config/config.yaml``.

        Returns
        -------
        GraphSettings
        """
        try:
            information = section["mutual_information"]
            weights = section["weights"]
            sparsify = section["sparsify"]
            return cls(
                bins=information["bins"],
                binning=information["binning"],
                normalization=information["normalization"],
                bias_correction=information["bias_correction"],
                weight_pearson=weights["pearson"],
                weight_spearman=weights["spearman"],
                weight_mutual_information=weights["mutual_information"],
                method=sparsify["method"],
                threshold=sparsify["threshold"],
                top_k=sparsify["top_k"],
                centrality=tuple(section["centrality"]["measures"]),
            )
        except KeyError as error:
            raise ValueError(
                f"graph configuration is missing the key {error.args[0]!r}; see the graph section of config/README.md"
            ) from error


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")


@dataclass
class FeatureGraph:
    """Pairwise measures, edge weights and centrality of the features.

    All matrices have shape (n_features, n_features), rows and columns in the
    order of ``names``, and are symmetric.

    Attributes
    ----------
    names : list of str
        Feature names, in dictionary order.
    kinds : list of str
        Kind of each feature (continuous, discrete, binary, categorical).
    pearson, spearman : numpy.ndarray
        Correlations; NaN for pairs with a categorical feature.
    mutual_information : numpy.ndarray
        Normalised mutual information in [0, 1].
    weight : numpy.ndarray
        Combined weight of every pair in [0, 1], zero diagonal.
    adjacency : numpy.ndarray
        ``weight`` after sparsification, zero diagonal.
    centrality : pandas.DataFrame
        One row per feature, sorted by combined score: ``feature``, ``kind``,
        one column per centrality measure, ``combined``, ``rank`` (1 = most
        central).
    timings : dict of str to float
        Seconds spent on each step.
    """

    names: list[str]
    kinds: list[str]
    pearson: np.ndarray
    spearman: np.ndarray
    mutual_information: np.ndarray
    weight: np.ndarray
    adjacency: np.ndarray
    centrality: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sign(self) -> np.ndarray:
        """Sign of the Spearman correlation: +1, -1, or 0 (zero or categorical)."""
        return np.sign(np.nan_to_num(self.spearman, nan=0.0)).astype(np.int64)

    def edges(self) -> pd.DataFrame:
        """Return every feature pair with its measures, sorted by weight.

        Returns
        -------
        pandas.DataFrame
            Columns ``source``, ``target``, ``source_kind``, ``target_kind``,
            ``pearson``, ``spearman`` (NaN for categorical pairs),
            ``mutual_information`` (normalised), ``weight``, ``sign`` (of
            Spearman) and ``in_graph`` (kept by sparsification).
        """
        first, second = np.triu_indices(len(self.names), k=1)
        names = np.asarray(self.names, dtype=object)
        kinds = np.asarray(self.kinds, dtype=object)
        table = pd.DataFrame(
            {
                "source": names[first],
                "target": names[second],
                "source_kind": kinds[first],
                "target_kind": kinds[second],
                "pearson": self.pearson[first, second],
                "spearman": self.spearman[first, second],
                "mutual_information": self.mutual_information[first, second],
                "weight": self.weight[first, second],
                "sign": self.sign[first, second],
                "in_graph": self.adjacency[first, second] > 0,
            },
            columns=list(EDGE_COLUMNS),
        )
        return table.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)

    def to_networkx(self, dictionary: pd.DataFrame | None = None) -> nx.Graph:
        """Build the sparsified graph with node and edge attributes.

        Parameters
        ----------
        dictionary : pandas.DataFrame, optional
            Feature dictionary; its ``layer`` column becomes a node attribute.

        Returns
        -------
        networkx.Graph
            Nodes carry ``kind``, the centrality scores and ``rank``; edges
            carry ``weight``, ``mutual_information``, ``sign`` and, for
            non-categorical pairs, ``pearson`` and ``spearman``.
        """
        graph = nx.Graph()
        scores = self.centrality.set_index("feature")
        layers = {}
        if dictionary is not None and "layer" in dictionary:
            layers = dict(zip(dictionary["name"], dictionary["layer"], strict=True))
        for name, kind in zip(self.names, self.kinds, strict=True):
            attributes = {"kind": kind}
            for key, value in scores.loc[name].drop("kind").items():
                attributes[key] = _plain(value)
            if name in layers:
                attributes["layer"] = str(layers[name])
            graph.add_node(name, **attributes)

        sign = self.sign
        for first, second in zip(*np.nonzero(np.triu(self.adjacency, k=1)), strict=True):
            attributes = {
                "weight": float(self.adjacency[first, second]),
                "mutual_information": float(self.mutual_information[first, second]),
                "sign": int(sign[first, second]),
            }
            if not np.isnan(self.pearson[first, second]):
                attributes["pearson"] = float(self.pearson[first, second])
                attributes["spearman"] = float(self.spearman[first, second])
            graph.add_edge(self.names[first], self.names[second], **attributes)
        return graph


def _plain(value: Any) -> Any:
    """Convert numpy scalars to Python scalars, which GraphML can write."""
    return value.item() if isinstance(value, np.generic) else value


def feature_matrix(frame: pd.DataFrame, dictionary: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """Select the dictionary's features from a frame as a float64 array.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows of the training split; columns that are not in the dictionary
        (capture, device, label, frame) are ignored.
    dictionary : pandas.DataFrame
        Feature dictionary with at least ``name`` and ``kind``.

    Returns
    -------
    names : list of str
    kinds : list of str
    values : numpy.ndarray of shape (n_samples, n_features)

    Raises
    ------
    ValueError
        If a dictionary column, a feature or a kind is missing or invalid, or
        a value is not finite.
    """
    for column in ("name", "kind"):
        if column not in dictionary.columns:
            raise ValueError(f"feature dictionary has no {column!r} column; columns are {list(dictionary.columns)}")
    names = [str(name) for name in dictionary["name"]]
    kinds = [str(kind) for kind in dictionary["kind"]]

    unknown = sorted({kind for kind in kinds if kind not in KINDS})
    if unknown:
        raise ValueError(f"feature dictionary has unknown kinds {unknown}; expected one of {list(KINDS)}")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{len(missing)} dictionary features are missing from the frame: {missing[:10]}; "
            "the split and the feature dictionary must come from the same feature extraction"
        )
    if frame.shape[0] < 2:
        raise ValueError(f"the feature graph needs at least 2 rows, got {frame.shape[0]}")
    if len(names) < 2:
        raise ValueError(f"the feature graph needs at least 2 features, got {len(names)}")

    values = frame[names].to_numpy(dtype=np.float64)
    finite = np.isfinite(values).all(axis=0)
    if not finite.all():
        bad = [name for name, ok in zip(names, finite, strict=True) if not ok]
        raise ValueError(f"features with missing or infinite values: {bad[:10]}; the packet table must be complete")
    return names, kinds, values


def build_feature_graph(
    frame: pd.DataFrame,
    dictionary: pd.DataFrame,
    config: GraphSettings | Mapping[str, Any] | None = None,
) -> FeatureGraph:
    """Compute the pairwise measures, weights, sparsified graph and centrality.

    Parameters
    ----------
    frame : pandas.DataFrame
        Training rows with one column per dictionary feature.
    dictionary : pandas.DataFrame
        Feature dictionary (``name``, ``kind``; ``layer`` is optional).
    config : GraphSettings or mapping, optional
        Settings, or the ``graph`` section of the configuration. Defaults to
        ``GraphSettings()``.

    Returns
    -------
    FeatureGraph
    """
    settings = _as_settings(config)
    names, kinds, values = feature_matrix(frame, dictionary)
    categorical = np.array([kind == "categorical" for kind in kinds])
    timings: dict[str, float] = {}

    constant = [name for name, spread in zip(names, np.ptp(values, axis=0), strict=True) if spread == 0]
    if constant:
        LOGGER.warning("%d constant features get weight 0 with every feature: %s", len(constant), constant)

    start = time.perf_counter()
    pearson = pearson_matrix(values)
    timings["pearson"] = time.perf_counter() - start

    start = time.perf_counter()
    spearman = spearman_matrix(values)
    timings["spearman"] = time.perf_counter() - start

    start = time.perf_counter()
    codes = bin_columns(values, categorical, settings.bins, settings.binning)
    information, entropy = mutual_information_matrix(codes, settings.bias_correction)
    information = normalise_mutual_information(information, entropy, settings.normalization)
    timings["mutual_information"] = time.perf_counter() - start

    categorical_pair = categorical[:, None] | categorical[None, :]
    pearson[categorical_pair] = np.nan
    spearman[categorical_pair] = np.nan

    start = time.perf_counter()
    weight = combine_weights(pearson, spearman, information, settings)
    adjacency = sparsify(weight, settings)
    centrality = centrality_table(names, kinds, adjacency, settings.centrality)
    timings["graph"] = time.perf_counter() - start

    return FeatureGraph(
        names=names,
        kinds=kinds,
        pearson=pearson,
        spearman=spearman,
        mutual_information=information,
        weight=weight,
        adjacency=adjacency,
        centrality=centrality,
        timings=timings,
    )


def _as_settings(config: GraphSettings | Mapping[str, Any] | None) -> GraphSettings:
    if config is None:
        return GraphSettings()
    if isinstance(config, GraphSettings):
        return config
    return GraphSettings.from_config(config)


def combine_weights(
    pearson: np.ndarray,
    spearman: np.ndarray,
    mutual_information: np.ndarray,
    settings: GraphSettings,
) -> np.ndarray:
    """Combine the three measures into one weight per pair (module docstring).

    Parameters
    ----------
    pearson, spearman : numpy.ndarray of shape (n_features, n_features)
        Correlations, NaN where undefined (categorical pairs).
    mutual_information : numpy.ndarray of shape (n_features, n_features)
        Normalised mutual information.
    settings : GraphSettings

    Returns
    -------
    numpy.ndarray of shape (n_features, n_features)
        Weights in [0, 1], zero diagonal, never NaN.
    """
    correlated = ~(np.isnan(pearson) | np.isnan(spearman))
    numerator = settings.weight_mutual_information * mutual_information
    denominator = np.full(mutual_information.shape, settings.weight_mutual_information)

    numerator = numerator + np.where(
        correlated,
        settings.weight_pearson * np.abs(np.nan_to_num(pearson)) + settings.weight_spearman * np.abs(np.nan_to_num(spearman)),
        0.0,
    )
    denominator = denominator + np.where(correlated, settings.weight_pearson + settings.weight_spearman, 0.0)

    weight = np.clip(numerator / denominator, 0.0, 1.0)
    np.fill_diagonal(weight, 0.0)
    return weight


def sparsify(weight: np.ndarray, settings: GraphSettings) -> np.ndarray:
    """Keep the strong edges of a weight matrix (module docstring).

    Parameters
    ----------
    weight : numpy.ndarray of shape (n_features, n_features)
        Symmetric weights with zero diagonal.
    settings : GraphSettings

    Returns
    -------
    numpy.ndarray of shape (n_features, n_features)
        Symmetric, zero diagonal, ``weight`` where kept and 0 elsewhere.
    """
    if settings.method == "threshold":
        keep = weight >= settings.threshold
    else:
        keep = np.zeros(weight.shape, dtype=bool)
        candidates = weight.copy()
        np.fill_diagonal(candidates, -np.inf)
        k = min(settings.top_k, weight.shape[0] - 1)
        strongest = np.argsort(-candidates, axis=1, kind="stable")[:, :k]
        keep[np.arange(weight.shape[0])[:, None], strongest] = True
        keep |= keep.T

    adjacency = np.where(keep & (weight > 0), weight, 0.0)
    np.fill_diagonal(adjacency, 0.0)
    return adjacency


def write_graph_files(
    graph: FeatureGraph,
    dictionary: pd.DataFrame,
    adjacency_path: str | Path,
    edges_path: str | Path,
    centrality_path: str | Path,
    graphml_path: str | Path,
) -> None:
    """Write the adjacency, edge, centrality and GraphML files.

    Parameters
    ----------
    graph : FeatureGraph
    dictionary : pandas.DataFrame
        Feature dictionary; adds the ``layer`` node attribute to the GraphML.
    adjacency_path : str or Path
        Square CSV, features x features, first column ``feature``.
    edges_path : str or Path
        Every pair, see :meth:`FeatureGraph.edges`.
    centrality_path : str or Path
        See :attr:`FeatureGraph.centrality`.
    graphml_path : str or Path
        The sparsified graph, see :meth:`FeatureGraph.to_networkx`.
    """
    for path in (adjacency_path, edges_path, centrality_path, graphml_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    adjacency = pd.DataFrame(graph.adjacency, index=pd.Index(graph.names, name="feature"), columns=graph.names)
    adjacency.to_csv(adjacency_path, float_format="%.6g")
    graph.edges().to_csv(edges_path, index=False, float_format="%.6g")
    graph.centrality.to_csv(centrality_path, index=False, float_format="%.6g")
    nx.write_graphml(graph.to_networkx(dictionary), graphml_path)


def load_adjacency(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read an adjacency CSV written by :func:`write_graph_files`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    names : list of str
        Feature names, in row and column order.
    adjacency : numpy.ndarray of shape (n_features, n_features)
        Symmetric non-negative weights with zero diagonal.

    Raises
    ------
    ValueError
        If the file is not a labelled, square, symmetric, finite, non-negative
        matrix with zero diagonal.
    """
    table = pd.read_csv(path, index_col=0)
    rows = [str(name) for name in table.index]
    columns = [str(name) for name in table.columns]
    if rows != columns:
        raise ValueError(f"{path}: row labels and column labels differ; expected the same features in the same order")

    try:
        adjacency = table.to_numpy(dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: adjacency contains non-numeric values") from error
    if not np.isfinite(adjacency).all() or (adjacency < 0).any():
        raise ValueError(f"{path}: adjacency must contain finite non-negative weights")
    if not np.allclose(adjacency, adjacency.T, rtol=0.0, atol=1e-6):
        raise ValueError(f"{path}: adjacency is not symmetric")
    if np.diag(adjacency).any():
        raise ValueError(f"{path}: adjacency diagonal must be zero")
    return rows, adjacency

