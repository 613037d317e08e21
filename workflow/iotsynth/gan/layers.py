"""Graph conditioning of the generator: message passing and the correlation loss.

The feature graph (``results/graph/adjacency.csv``) has one node per feature,
while the generator emits one column per scaled or binary feature and one
column per category of a categorical feature. The preprocessor layout maps
columns to features, and both parts below use that map.

Message passing (:class:`FeatureGraphLayer`)
    The generator's MLP emits pre-activations ``y`` of shape
    (batch, n_columns). Every column is a node, and two columns are linked
    when their features are, with weight ``A_hat[f, g]`` from the
    normalised adjacency ``A_hat = D^-1/2 (A + I) D^-1/2`` of the weighted
    feature graph (the propagation rule of Kipf and Welling's graph
    convolutional network, ICLR 2017). Each of ``steps`` residual updates
    adds to every column a gated, learned combination of its neighbours'
    values; see the class for the formula. The layer starts as the identity,
    so training starts from the plain MLP and learns how far the graph
    should move each column. Keeping one value per column (instead of a
    vector state per feature) limits the cost to one (batch x columns x
    columns) product per step.

Correlation loss (:class:`GraphCorrelationLoss`)
    For every pair of graph-connected features, the Pearson correlation of
    their columns in a generated batch should equal the correlation in the
    real batch with the same device types. A categorical feature contributes
    its one-hot columns; the weight of an edge ``w_fg`` is split evenly over
    the column pairs of ``f`` and ``g``, so a feature with many categories
    does not outweigh a scaled one. The loss is the weighted mean of the
    squared differences over pairs whose columns vary in the real batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

CORRELATION_EPSILON = 1e-6
# A column whose standard deviation in the real batch is below this (in
# scaled units, where a feature spans [-1, 1]) has no defined correlation.
MIN_REAL_STD = 1e-4


def align_adjacency(names: Sequence[str], adjacency: np.ndarray, layout: Sequence[Mapping]) -> np.ndarray:
    """Reorder a feature adjacency to the preprocessor's feature order.

    Parameters
    ----------
    names : sequence of str
        Feature names in the order of the adjacency rows.
    adjacency : numpy.ndarray of shape (n_features, n_features)
        Symmetric non-negative edge weights.
    layout : sequence of dict
        ``Preprocessor.layout_``.

    Returns
    -------
    numpy.ndarray of shape (n_features, n_features)
        Rows and columns in layout order.

    Raises
    ------
    ValueError
        If the adjacency and the layout list different features.
    """
    expected = [entry["name"] for entry in layout]
    position = {name: index for index, name in enumerate(names)}
    missing = [name for name in expected if name not in position]
    extra = sorted(set(names) - set(expected))
    if missing or extra:
        raise ValueError(
            f"the feature graph and the preprocessor list different features (missing from the graph "
            f"{missing[:5]}, only in the graph {extra[:5]}); rebuild both from the same feature dictionary"
        )
    order = np.array([position[name] for name in expected])
    return np.asarray(adjacency, dtype=np.float64)[np.ix_(order, order)]


def normalized_adjacency(adjacency: np.ndarray) -> np.ndarray:
    """Return ``D^-1/2 (A + I) D^-1/2`` for a weighted adjacency ``A``.

    The self-loop keeps a feature without edges (e.g. a constant one) at
    its own state.
    """
    with_loops = np.asarray(adjacency, dtype=np.float64) + np.eye(len(adjacency))
    inverse_root = 1.0 / np.sqrt(with_loops.sum(axis=1))
    return inverse_root[:, None] * with_loops * inverse_root[None, :]


def column_features(layout: Sequence[Mapping]) -> np.ndarray:
    """Return the feature index of every transformed column, of shape (n_columns,)."""
    n_columns = max(entry["stop"] for entry in layout)
    owner = np.empty(n_columns, dtype=np.int64)
    for index, entry in enumerate(layout):
        owner[entry["start"] : entry["stop"]] = index
    return owner


def column_pair_weights(adjacency: np.ndarray, layout: Sequence[Mapping]) -> np.ndarray:
    """Spread feature edge weights over column pairs, for the correlation loss.

    Parameters
    ----------
    adjacency : numpy.ndarray of shape (n_features, n_features)
        Edge weights in layout order (see :func:`align_adjacency`).
    layout : sequence of dict
        ``Preprocessor.layout_``.

    Returns
    -------
    numpy.ndarray of shape (n_columns, n_columns)
        Upper triangular: ``w_fg / (width_f * width_g)`` for columns of two
        different connected features, 0 elsewhere.
    """
    owner = column_features(layout)
    widths = np.array([entry["stop"] - entry["start"] for entry in layout], dtype=np.float64)
    weights = np.asarray(adjacency, dtype=np.float64)[np.ix_(owner, owner)]
    weights = weights / (widths[owner][:, None] * widths[owner][None, :])
    weights[owner[:, None] == owner[None, :]] = 0.0
    return np.triu(weights, k=1)


def batch_correlation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the Pearson correlation matrix of a batch and each column's standard deviation.

    Parameters
    ----------
    x : torch.Tensor of shape (batch, n_columns)

    Returns
    -------
    correlation : torch.Tensor of shape (n_columns, n_columns)
        Near 0 for a column that does not vary.
    std : torch.Tensor of shape (n_columns,)
    """
    centered = x - x.mean(dim=0, keepdim=True)
    variance = centered.pow(2).mean(dim=0)
    # A column that does not vary in the batch would get a NaN gradient (0
    # times the infinite slope of sqrt at 0), so its std is a constant 0.
    varies = variance > 0
    std = torch.where(varies, torch.where(varies, variance, 1.0).sqrt(), 0.0)
    standardized = centered / (std + CORRELATION_EPSILON)
    return standardized.T @ standardized / x.shape[0], std


class GraphCorrelationLoss(nn.Module):
    """Weighted squared difference of graph-connected column correlations.

    Parameters
    ----------
    pair_weights : numpy.ndarray of shape (n_columns, n_columns)
        From :func:`column_pair_weights`.
    """

    def __init__(self, pair_weights: np.ndarray):
        super().__init__()
        pairs = np.nonzero(pair_weights)
        used = np.unique(np.concatenate(pairs)) if len(pairs[0]) else np.zeros(0, dtype=np.int64)
        # Only columns that belong to an edge enter the correlation matrices.
        local = np.searchsorted(used, pairs[0]), np.searchsorted(used, pairs[1])
        self.register_buffer("columns", torch.as_tensor(used, dtype=torch.int64))
        self.register_buffer("first", torch.as_tensor(local[0], dtype=torch.int64))
        self.register_buffer("second", torch.as_tensor(local[1], dtype=torch.int64))
        self.register_buffer("weights", torch.as_tensor(pair_weights[pairs], dtype=torch.float32))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Return the loss of a generated batch against a real batch of the same device types."""
        if len(self.weights) == 0:
            return fake.sum() * 0.0
        fake_correlation, _ = batch_correlation(fake.index_select(1, self.columns))
        with torch.no_grad():
            real_correlation, real_std = batch_correlation(real.index_select(1, self.columns))
            defined = (real_std[self.first] > MIN_REAL_STD) & (real_std[self.second] > MIN_REAL_STD)
            weights = self.weights * defined.to(self.weights.dtype)
        difference = fake_correlation[self.first, self.second] - real_correlation[self.first, self.second]
        return (weights * difference.pow(2)).sum() / weights.sum().clamp(min=CORRELATION_EPSILON)


class FeatureGraphLayer(nn.Module):
    """Message passing over the feature graph that refines generator pre-activations.

    Each transformed column is a node. Two columns are linked when their
    features are linked in the graph, with the normalised weight
    ``A_hat[f, g]`` of their features. Each step is a residual update::

        y <- y + gate * LeakyReLU(y @ (P * W) + b)

    with ``P`` the column-level propagation matrix, ``W`` a learned weight
    per linked column pair (starting at 1, so the first messages are the
    graph convolution ``y @ P``), and ``gate`` and ``b`` per column starting
    at 0, so training starts from the plain MLP's output. Messages only flow
    along graph edges because ``W`` is multiplied by ``P``.

    Parameters
    ----------
    layout : sequence of dict
        ``Preprocessor.layout_``; gives the columns of each feature.
    adjacency : numpy.ndarray of shape (n_features, n_features)
        Normalised adjacency in layout order (:func:`normalized_adjacency`).
        Saved with the model as a buffer.
    steps : int
        Message-passing steps.
    """

    def __init__(self, layout: Sequence[Mapping], adjacency: np.ndarray, steps: int):
        super().__init__()
        n_features = len(layout)
        if adjacency.shape != (n_features, n_features):
            raise ValueError(f"the adjacency has shape {adjacency.shape}; expected ({n_features}, {n_features}) for this layout")
        owner = column_features(layout)
        propagation = np.asarray(adjacency, dtype=np.float64)[np.ix_(owner, owner)]
        # Columns of one feature (a one-hot group) exchange no messages; the
        # residual connection carries each column's own value.
        propagation[owner[:, None] == owner[None, :]] = 0.0
        n_columns = len(owner)

        self.register_buffer("propagation", torch.as_tensor(propagation, dtype=torch.float32))
        self.edge_weights = nn.ParameterList([nn.Parameter(torch.empty(n_columns, n_columns)) for _ in range(steps)])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(n_columns)) for _ in range(steps)])
        self.gates = nn.ParameterList([nn.Parameter(torch.empty(n_columns)) for _ in range(steps)])

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        """Set edge weights to 1 and gates and biases to 0; no randomness is needed."""
        with torch.no_grad():
            for weight, bias, gate in zip(self.edge_weights, self.biases, self.gates, strict=True):
                weight.fill_(1.0)
                bias.zero_()
                gate.zero_()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Return refined pre-activations of shape (batch, n_columns)."""
        for weight, bias, gate in zip(self.edge_weights, self.biases, self.gates, strict=True):
            messages = y @ (self.propagation * weight)
            y = y + gate * nn.functional.leaky_relu(messages + bias, 0.2)
        return y
