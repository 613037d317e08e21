"""Pairwise dependence measures between feature columns, vectorised with numpy.

Every function takes a float64 array of shape (n_samples, n_features) and
returns a symmetric array of shape (n_features, n_features).

Pearson and Spearman
    Pearson is the matrix product of the standardised columns divided by
    n_samples. Spearman is Pearson on the column ranks (average ranks for
    ties). A constant column has no defined correlation; it gets 0 with every
    other column so that no NaN reaches the graph weights.

Mutual information
    A plug-in estimate from a joint histogram of binned columns, in nats:
    ``I(X; Y) = H(X) + H(Y) - H(X, Y)``. A column with at most ``bins``
    distinct values keeps one bin per value, so binary, categorical and most
    discrete features are counted exactly. Other columns are cut into
    ``bins`` quantile bins (equal counts; tied values share a bin, so heavy
    ties give fewer bins) or ``bins`` equal-width bins. A categorical column
    with more than ``bins`` codes keeps its ``bins - 1`` most frequent codes
    and pools the rest in one bin.

    Bias: binning can only lose information, so for continuous features the
    binned value underestimates the mutual information of the underlying
    variables. The plug-in estimate from n_samples rows overestimates the
    mutual information of the binned variables by about
    ``(m_xy - m_x - m_y + 1) / (2 n_samples)`` nats, where m counts the
    non-empty bins or cells (Miller-Madow). With bias correction on, each
    entropy gets its Miller-Madow term ``(m - 1) / (2 n_samples)``, which
    removes that first-order term. For 32 bins and 69,000 rows the term is at
    most about 0.007 nats.

    Normalised mutual information (NMI) is in [0, 1] and 0 when either
    column is constant. ``sqrt`` divides by ``sqrt(H(X) H(Y))``, so it is 1
    when each binned column determines the other. ``min`` divides by
    ``min(H(X), H(Y))``, so it is 1 when one column determines the other.
    ``linfoot`` is Linfoot's informational coefficient of correlation
    ``sqrt(1 - exp(-2 I))``, which equals ``|rho|`` for a bivariate normal
    pair, so it is on the scale of the correlations. Entropy-normalised NMI
    is much smaller than ``|rho|`` for linear relations between continuous
    features (about 0.04 for rho = 0.5 with 32 bins per feature).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

BINNINGS = ("quantile", "uniform")
NORMALIZATIONS = ("sqrt", "min", "linfoot")


def pearson_matrix(values: np.ndarray) -> np.ndarray:
    """Compute the Pearson correlation between every pair of columns.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_samples, n_features)
        Finite float values.

    Returns
    -------
    numpy.ndarray of shape (n_features, n_features)
        Correlations in [-1, 1], 1 on the diagonal. A constant column has 0
        with every other column.
    """
    n_samples = values.shape[0]
    centred = values - values.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0) / n_samples)
    constant = scale == 0
    standardised = np.divide(centred, scale, out=np.zeros_like(centred), where=~constant)

    correlation = standardised.T @ standardised / n_samples
    np.clip(correlation, -1.0, 1.0, out=correlation)
    np.fill_diagonal(correlation, 1.0)
    return correlation


def spearman_matrix(values: np.ndarray) -> np.ndarray:
    """Compute the Spearman rank correlation between every pair of columns.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_samples, n_features)
        Finite float values.

    Returns
    -------
    numpy.ndarray of shape (n_features, n_features)
        Rank correlations in [-1, 1], 1 on the diagonal, 0 between a constant
        column and any other.
    """
    ranks = rankdata(values, axis=0, method="average")
    return pearson_matrix(ranks)


def bin_columns(
    values: np.ndarray,
    categorical: np.ndarray,
    bins: int,
    binning: str,
) -> np.ndarray:
    """Map every column to consecutive integer bin codes starting at 0.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_samples, n_features)
        Finite float values.
    categorical : numpy.ndarray of shape (n_features,)
        True where the column contains categorical codes.
    bins : int
        Maximum number of bins per column.
    binning : {"quantile", "uniform"}
        How columns with more than ``bins`` distinct values are cut.

    Returns
    -------
    numpy.ndarray of shape (n_features, n_samples), dtype int64
        Bin code of each value; row j is column j. Only codes that occur are
        used, so the number of bins of column j is ``codes[j].max() + 1``.
    """
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")

    codes = np.empty((values.shape[1], values.shape[0]), dtype=np.int64)
    for column in range(values.shape[1]):
        codes[column] = _bin_column(values[:, column], bool(categorical[column]), bins, binning)
    return codes


def _bin_column(column: np.ndarray, categorical: bool, bins: int, binning: str) -> np.ndarray:
    distinct, inverse = np.unique(column, return_inverse=True)
    if distinct.size <= bins:
        return inverse

    if categorical:
        # Keep the (bins - 1) most frequent codes, pool the rest in the last bin.
        counts = np.bincount(inverse)
        frequent = np.argsort(-counts, kind="stable")[: bins - 1]
        lookup = np.full(distinct.size, bins - 1, dtype=np.int64)
        lookup[frequent] = np.arange(bins - 1)
        return lookup[inverse]

    if binning == "quantile":
        edges = np.quantile(column, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    else:
        edges = np.linspace(distinct[0], distinct[-1], bins + 1)[1:-1]
    raw = np.searchsorted(np.unique(edges), column, side="right")

    # Renumber so that empty bins leave no gaps in the codes.
    _, compact = np.unique(raw, return_inverse=True)
    return compact


def _entropy(counts: np.ndarray, n_samples: int, bias_correction: bool) -> np.ndarray:
    """Compute the entropy in nats of each count table along the last axes."""
    axes = tuple(range(1, counts.ndim))
    probabilities = counts / n_samples
    terms = np.zeros_like(probabilities)
    np.multiply(probabilities, np.log(probabilities, where=counts > 0, out=terms), out=terms, where=counts > 0)
    entropy = -terms.sum(axis=axes)
    if bias_correction:
        occupied = (counts > 0).sum(axis=axes)
        entropy += (occupied - 1) / (2.0 * n_samples)
    return entropy


def mutual_information_matrix(
    codes: np.ndarray,
    bias_correction: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate the mutual information between every pair of binned columns.

    Parameters
    ----------
    codes : numpy.ndarray of shape (n_features, n_samples)
        Bin codes from :func:`bin_columns`.
    bias_correction : bool, default True
        Add the Miller-Madow term to every entropy (see the module docstring).

    Returns
    -------
    mutual_information : numpy.ndarray of shape (n_features, n_features)
        Mutual information in nats, at least 0. The diagonal contains each
        column's entropy.
    entropy : numpy.ndarray of shape (n_features,)
        Entropy of each binned column in nats.
    """
    n_features, n_samples = codes.shape
    n_bins = int(codes.max()) + 1 if codes.size else 1
    codes = codes.astype(np.int64, copy=False)

    marginal_counts = np.stack([np.bincount(row, minlength=n_bins) for row in codes])
    entropy = _entropy(marginal_counts, n_samples, bias_correction)

    mutual_information = np.zeros((n_features, n_features))
    cells = n_bins * n_bins
    for first in range(n_features - 1):
        # One bincount gives the joint tables of column `first` with every
        # later column, because each later column gets its own block of
        # `cells` slots.
        later = codes[first + 1 :]
        offsets = np.arange(later.shape[0], dtype=np.int64)[:, None] * cells
        joint_index = codes[first] * n_bins + later + offsets
        joint_counts = np.bincount(joint_index.ravel(), minlength=later.shape[0] * cells)
        joint_entropy = _entropy(joint_counts.reshape(later.shape[0], n_bins, n_bins), n_samples, bias_correction)

        values = entropy[first] + entropy[first + 1 :] - joint_entropy
        mutual_information[first, first + 1 :] = values
        mutual_information[first + 1 :, first] = values

    np.maximum(mutual_information, 0.0, out=mutual_information)
    np.fill_diagonal(mutual_information, entropy)
    return mutual_information, entropy


def normalise_mutual_information(
    mutual_information: np.ndarray,
    entropy: np.ndarray,
    normalization: str,
) -> np.ndarray:
    """Map mutual information in nats to [0, 1].

    Parameters
    ----------
    mutual_information : numpy.ndarray of shape (n_features, n_features)
        Mutual information in nats.
    entropy : numpy.ndarray of shape (n_features,)
        Entropy of each column in nats.
    normalization : {"sqrt", "min", "linfoot"}
        Divide by ``sqrt(H(X) H(Y))`` or by ``min(H(X), H(Y))``, or map to
        ``sqrt(1 - exp(-2 I))`` (see the module docstring).

    Returns
    -------
    numpy.ndarray of shape (n_features, n_features)
        Normalised mutual information in [0, 1]; 0 where either entropy is 0.
        The diagonal is 1 for non-constant columns.
    """
    if normalization == "linfoot":
        normalised = np.sqrt(1.0 - np.exp(-2.0 * mutual_information))
    elif normalization in ("sqrt", "min"):
        if normalization == "sqrt":
            scale = np.sqrt(np.outer(entropy, entropy))
        else:
            scale = np.minimum.outer(entropy, entropy)
        normalised = np.divide(mutual_information, scale, out=np.zeros_like(mutual_information), where=scale > 0)
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")

    varying = entropy > 0
    normalised = np.where(np.outer(varying, varying), normalised, 0.0)
    np.fill_diagonal(normalised, varying.astype(np.float64))
    return np.clip(normalised, 0.0, 1.0)
