"""CTGAN's data transformer on the packet features: fit, save, load, transform, describe.

The transformer is the library's :class:`ctgan.data_transformer.DataTransformer`
(mode-specific normalisation). Each continuous column gets a Bayesian
Gaussian mixture and becomes a scalar in [-1, 1] plus a one-hot mixture
component; each discrete column becomes one-hot. The columns passed to it as
discrete are

- every ``binary`` and ``categorical`` feature, because their values are
  labels, not magnitudes;
- every ``discrete`` feature with at most ``discrete_max_values`` distinct
  training values (IP header length, TTL, TCP option counts, DNS counts).
  One-hot reproduces such a feature exactly, where a mixture of Gaussians
  spreads probability between the few integers it takes.

Every other feature (``continuous`` ones and ``discrete`` ones with many
values, such as ports, sizes and sequence numbers) gets a mixture model.

Fitting the mixtures is the slow part. The 35 mixtures of the ~69,000
IoT Sentinel training rows took 417 s of CPU time, one core, in one
measurement (ctgan 0.12.1, rdt 1.18.2, scikit-learn 1.9.1), so the workflow
fits the transformer in its own rule and keeps it as a pickle.

The transformer's own randomness (mixture initialisation, the mixture
component drawn for each value) is seeded by rdt from each column's name
and first rows, so it is deterministic but does not follow the config seed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ctgan.data_transformer import DataTransformer

from iotsynth.ctgan_guided.settings import TransformerSettings

LOGGER = logging.getLogger(__name__)

TRANSFORMER_FORMAT = "iotsynth-ctgan-transformer"
TRANSFORMER_FORMAT_VERSION = 1
CONTINUOUS, DISCRETE = "continuous", "discrete"
ALWAYS_DISCRETE_KINDS = ("binary", "categorical")
PACKAGES = ("ctgan", "rdt", "scikit-learn")


def discrete_columns(frame: pd.DataFrame, dictionary: pd.DataFrame, max_values: int) -> list[str]:
    """Return the features that CTGAN's transformer one-hot encodes.

    Parameters
    ----------
    frame : pandas.DataFrame
        Training rows with every feature of ``dictionary``.
    dictionary : pandas.DataFrame
        Feature dictionary with ``name`` and ``kind``.
    max_values : int
        A ``discrete`` feature with at most this many distinct values in
        ``frame`` is one-hot encoded.

    Returns
    -------
    list of str
        In dictionary order.
    """
    chosen = []
    for name, kind in zip(dictionary["name"], dictionary["kind"], strict=True):
        if kind in ALWAYS_DISCRETE_KINDS or (kind == "discrete" and frame[name].nunique() <= max_values):
            chosen.append(str(name))
    return chosen


def fit_transformer(frame: pd.DataFrame, dictionary: pd.DataFrame,
                    settings: TransformerSettings) -> tuple[DataTransformer, list[str]]:
    """Fit CTGAN's data transformer on the feature columns of the training rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Training rows; columns other than the features are ignored.
    dictionary : pandas.DataFrame
        Feature dictionary with ``name`` and ``kind``.
    settings : TransformerSettings

    Returns
    -------
    transformer : ctgan.data_transformer.DataTransformer
        Fitted, with one column per feature in dictionary order.
    discrete : list of str
        The features fitted as discrete (one-hot).

    Raises
    ------
    ValueError
        If a feature is missing from ``frame`` or has missing values.
    """
    names = [str(name) for name in dictionary["name"]]
    features = _feature_frame(frame, names, "the training rows")
    discrete = discrete_columns(features, dictionary, settings.discrete_max_values)
    transformer = DataTransformer(max_clusters=settings.max_clusters, weight_threshold=settings.weight_threshold)
    transformer.fit(features, discrete)
    return transformer, discrete


def transform_rows(transformer: DataTransformer, frame: pd.DataFrame, names: Sequence[str],
                   processes: int = 1) -> np.ndarray:
    """Return the rows in CTGAN's space, float32 of shape (n_rows, transformer.output_dimensions).

    ``DataTransformer.transform`` runs one joblib job per column on all CPUs
    (``n_jobs=-1``) for 500 rows or more. ``LOKY_MAX_CPU_COUNT``, which joblib
    reads when it resolves ``n_jobs=-1``, is set to ``processes`` for the
    call, so the stage uses the cores it was given; 1 runs in this process.

    Each value's mixture component is drawn from a generator that rdt keeps
    per column and advances with each call in this process. A transformer
    read fresh from its file therefore gives the same rows every time, while
    a second call on the same object may pick other components.
    """
    features = _feature_frame(frame, list(names), "the rows to transform")
    with _loky_cpu_limit(processes):
        return transformer.transform(features).astype(np.float32)


@contextlib.contextmanager
def _loky_cpu_limit(processes: int) -> Iterator[None]:
    previous = os.environ.get("LOKY_MAX_CPU_COUNT")
    os.environ["LOKY_MAX_CPU_COUNT"] = str(max(1, int(processes)))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LOKY_MAX_CPU_COUNT", None)
        else:
            os.environ["LOKY_MAX_CPU_COUNT"] = previous


def column_specs(transformer: DataTransformer) -> list[dict[str, Any]]:
    """Return what the differentiable decoder needs from each fitted column, as plain values.

    The library decodes a continuous column with valid components ``k`` as
    ``value = clip(alpha, -1, 1) * 4 * std_k + mean_k`` for the chosen
    component ``k``. It decodes a discrete column as the value of its
    chosen one-hot position.

    Returns
    -------
    list of dict
        In the transformer's column order. Each has ``name``, ``type``
        (``continuous`` or ``discrete``) and ``width`` (output columns), and
        either ``means``, ``stds`` and ``std_multiplier`` (continuous) or
        ``values`` (discrete, in one-hot order).

    Raises
    ------
    RuntimeError
        If the transformer lacks the attributes of ctgan 0.12 and rdt 1.x
        that this function reads.
    """
    # NOTE: reads private attributes of ctgan 0.12.1 (_column_transform_info_list)
    # and rdt 1.18 (ClusterBasedNormalizer._bgm_transformer); the library
    # offers no public access to the fitted mixture parameters.
    infos = getattr(transformer, "_column_transform_info_list", None)
    if infos is None:
        raise RuntimeError("the CTGAN DataTransformer is not fitted or its internals changed; "
                           f"this code reads ctgan 0.12.1 and rdt 1.18 ({versions()})")
    specs = []
    for info in infos:
        if info.column_type == CONTINUOUS:
            specs.append(_continuous_spec(info))
        else:
            values = [_plain_number(value, info.column_name) for value in info.transform.dummies]
            specs.append({"name": str(info.column_name), "type": DISCRETE, "width": len(values), "values": values})
        if specs[-1]["width"] != info.output_dimensions:
            raise RuntimeError(f"column {info.column_name!r}: {specs[-1]['width']} decoded columns but the "
                               f"transformer reports {info.output_dimensions}; check the ctgan and rdt versions")
    return specs


def _continuous_spec(info) -> dict[str, Any]:
    normalizer = info.transform
    mixture = getattr(normalizer, "_bgm_transformer", None)
    valid = getattr(normalizer, "valid_component_indicator", None)
    if mixture is None or valid is None:
        raise RuntimeError(f"column {info.column_name!r}: the ClusterBasedNormalizer has no fitted mixture; "
                           f"check the rdt version ({versions()})")
    means = np.asarray(mixture.means_, dtype=np.float64).reshape(-1)[valid]
    stds = np.sqrt(np.asarray(mixture.covariances_, dtype=np.float64)).reshape(-1)[valid]
    return {
        "name": str(info.column_name),
        "type": CONTINUOUS,
        "width": 1 + int(valid.sum()),
        "means": means.tolist(),
        "stds": stds.tolist(),
        "std_multiplier": float(normalizer.STD_MULTIPLIER),
    }


def _plain_number(value, column: str) -> float:
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"column {column!r} has the one-hot category {value!r}; features must be finite numbers")
    return number


def column_table(specs: Sequence[Mapping[str, Any]], kinds: Mapping[str, str]) -> pd.DataFrame:
    """Return one row per feature: its kind, its CTGAN encoding and the columns it takes.

    Columns ``name``, ``kind``, ``ctgan_type``, ``output_columns`` and
    ``components`` (mixture components; 0 for one-hot columns) and
    ``categories`` (one-hot positions; 0 for mixture columns).
    """
    rows = []
    for spec in specs:
        continuous = spec["type"] == CONTINUOUS
        rows.append({
            "name": spec["name"],
            "kind": kinds.get(spec["name"], ""),
            "ctgan_type": spec["type"],
            "output_columns": spec["width"],
            "components": len(spec["means"]) if continuous else 0,
            "categories": 0 if continuous else len(spec["values"]),
        })
    return pd.DataFrame(rows, columns=["name", "kind", "ctgan_type", "output_columns", "components", "categories"])


def save_transformer(path: str | Path, transformer: DataTransformer, names: Sequence[str],
                     discrete: Sequence[str], settings: TransformerSettings) -> None:
    """Pickle the fitted transformer with the feature names and package versions it was fitted with."""
    document = {
        "format": TRANSFORMER_FORMAT,
        "format_version": TRANSFORMER_FORMAT_VERSION,
        "versions": versions(),
        "features": list(names),
        "discrete_columns": list(discrete),
        "settings": {"max_clusters": settings.max_clusters, "weight_threshold": settings.weight_threshold,
                     "discrete_max_values": settings.discrete_max_values},
        "transformer": transformer,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    with temporary.open("wb") as handle:
        pickle.dump(document, handle, protocol=pickle.HIGHEST_PROTOCOL)
    temporary.replace(path)


def load_transformer(path: str | Path) -> dict[str, Any]:
    """Read a transformer written by :func:`save_transformer`.

    The file is a pickle, so load only files this workflow wrote.

    Returns
    -------
    dict
        ``transformer``, ``features``, ``discrete_columns``, ``settings``
        and ``versions``.

    Raises
    ------
    FileNotFoundError, ValueError
        If the file is missing or is not a transformer file of this format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CTGAN transformer {path} not found; run the fit_ctgan_transformer rule")
    with path.open("rb") as handle:
        document = pickle.load(handle)  # noqa: S301 (a file this workflow wrote)
    if not isinstance(document, dict) or document.get("format") != TRANSFORMER_FORMAT \
            or document.get("format_version") != TRANSFORMER_FORMAT_VERSION:
        raise ValueError(f"{path} is not an iotsynth CTGAN transformer of format version "
                         f"{TRANSFORMER_FORMAT_VERSION}; rerun the fit_ctgan_transformer rule")
    if document["versions"] != versions():
        LOGGER.warning("%s was fitted with %s and is read with %s; refit it if loading or decoding fails",
                       path, document["versions"], versions())
    return document


def versions() -> dict[str, str]:
    """Return the installed versions of the packages that shape the transformer."""
    found = {}
    for package in PACKAGES:
        try:
            found[package] = package_metadata.version(package)
        except package_metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _feature_frame(frame: pd.DataFrame, names: list[str], source: str) -> pd.DataFrame:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"{source} lack {len(missing)} feature columns, e.g. {missing[:5]}; "
                         "use the feature dictionary the transformer was fitted with")
    features = frame[names]
    with_missing = [name for name in names if features[name].isna().any()]
    if with_missing:
        raise ValueError(f"{source} have missing values in {with_missing[:5]}; CTGAN's transformer needs "
                         "complete rows")
    return features
