"""SMOTE baseline: synthetic rows that top up each split to the per-class targets.

SMOTE (Chawla et al., JAIR 16, 2002) draws a new row on the segment between a
real row and one of its ``k`` nearest neighbours of the same device type. It
runs in the preprocessor's space (scaled features and one-hot groups). Every
new row is decoded with :meth:`Preprocessor.inverse_transform`, the decoder
of generator output, so discrete values are integers, binary values 0 or 1
and each categorical feature takes one of its training categories.

Each split is oversampled from its own real rows only, to the targets of
:func:`iotsynth.gan.balance.deficits`. The output has the layout of the
generators' synthetic rows, so :func:`iotsynth.gan.balance.balance_protocol`
builds the balanced splits of both protocols from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE, SMOTENC

from iotsynth.gan.balance import SPLIT_NAMES, deficits
from iotsynth.gan.sample import ID_COLUMNS
from iotsynth.preprocess import Preprocessor

LOGGER = logging.getLogger(__name__)

METHODS = ("smote", "smotenc")
SOURCE_NAME = "smote"


def check_settings(k_neighbors: int, method: str) -> None:
    """Raise ValueError unless ``k_neighbors`` and ``method`` are valid ``smote`` settings."""
    if isinstance(k_neighbors, bool) or not isinstance(k_neighbors, int) or k_neighbors < 1:
        raise ValueError(f"smote.k_neighbors must be an integer of at least 1, got {k_neighbors!r}")
    if method not in METHODS:
        raise ValueError(f"smote.method must be one of {list(METHODS)}, got {method!r}")


def call_seed(seed: int, split: str, call: int) -> int:
    """Return the seed of one SMOTE call, independent of the other splits and calls."""
    key = [seed, SPLIT_NAMES.index(split) if split in SPLIT_NAMES else 99, call]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def plan_calls(counts: pd.Series, needed: pd.Series, k_neighbors: int) -> list[tuple[int, list[str]]]:
    """Group the device types that need rows by the neighbour count SMOTE can use for them.

    imbalanced-learn uses one ``k`` per call and needs ``k + 1`` rows in every
    class it oversamples. A device type with ``n <= k`` real rows gets a call
    of its own with ``k = n - 1``. A device type with one row gets ``k = 0``,
    which means copies of that row.

    Returns
    -------
    list of (k, device types)
        The calls in order: first the device types that use ``k_neighbors``,
        then the smaller ones by decreasing ``k``.
    """
    wanted = needed[needed > 0].index
    full = [name for name in wanted if counts[name] > k_neighbors]
    calls = [(k_neighbors, sorted(full))] if full else []
    small = sorted((name for name in wanted if counts[name] <= k_neighbors), key=lambda name: (-counts[name], name))
    calls += [(int(counts[name]) - 1, [name]) for name in small]
    return calls


def categorical_codes(array: np.ndarray, layout: list[dict]) -> tuple[np.ndarray, list[int]]:
    """Replace each one-hot group by the index of its category (the input SMOTE-NC expects).

    Returns
    -------
    mixed : numpy.ndarray of shape (n_rows, n_features)
        One column per feature, in layout order.
    categorical : list of int
        Columns of ``mixed`` that hold category indices.
    """
    columns, categorical = [], []
    for position, entry in enumerate(layout):
        block = array[:, entry["start"] : entry["stop"]]
        if entry["kind"] == "categorical":
            columns.append(np.argmax(block, axis=1).astype(np.float64))
            categorical.append(position)
        else:
            columns.append(block[:, 0])
    return np.column_stack(columns), categorical


def one_hot_codes(mixed: np.ndarray, layout: list[dict], n_columns: int) -> np.ndarray:
    """Invert :func:`categorical_codes`: category indices back to one-hot groups."""
    array = np.zeros((len(mixed), n_columns))
    for position, entry in enumerate(layout):
        if entry["kind"] == "categorical":
            codes = np.rint(mixed[:, position]).astype(np.int64)
            array[np.arange(len(mixed)), entry["start"] + codes] = 1.0
        else:
            array[:, entry["start"]] = mixed[:, position]
    return array


def _oversample(array: np.ndarray, labels: np.ndarray, strategy: dict[str, int], k: int, method: str,
                categorical: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return only the new rows and labels of one imbalanced-learn call."""
    if k == 0:
        # One real row: SMOTE has no neighbour to interpolate to, so the row is copied.
        (name, target), = strategy.items()
        rows = array[labels == name]
        return np.repeat(rows, target - len(rows), axis=0), np.full(target - len(rows), name, dtype=object)

    if method == "smotenc":
        sampler = SMOTENC(categorical_features=categorical, sampling_strategy=strategy, k_neighbors=k,
                          random_state=seed)
    else:
        sampler = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
    resampled, resampled_labels = sampler.fit_resample(array, labels)

    # imbalanced-learn returns the input rows first, then the new rows.
    n_rows = len(array)
    if not np.array_equal(resampled[:n_rows], array):
        raise RuntimeError("imbalanced-learn did not return the input rows first; this module needs updating")
    return resampled[n_rows:], np.asarray(resampled_labels[n_rows:], dtype=object)


def smote_split(frame: pd.DataFrame, preprocessor: Preprocessor, needed: Mapping[str, int], split: str,
                k_neighbors: int = 5, method: str = "smote", seed: int = 0) -> pd.DataFrame:
    """Draw the SMOTE rows of one split.

    Parameters
    ----------
    frame : pandas.DataFrame
        Real rows of the split, with ``device_type`` and every feature.
    preprocessor : Preprocessor
        Fitted on the training split.
    needed : mapping of str to int
        Synthetic rows per device type; device types absent or at 0 get none.
    split : str
        Split name, for the seed and messages.
    k_neighbors : int, default 5
        Nearest neighbours of the same device type that a new row may be
        drawn towards (5 is the default of imbalanced-learn and of the
        original SMOTE paper). Device types with fewer rows use ``n - 1``.
    method : {"smote", "smotenc"}, default "smote"
        ``smote`` interpolates every column of the transformed space,
        one-hot groups included. ``smotenc`` (SMOTE-NC) gives each new row
        the most frequent category of the neighbours instead.
    seed : int, default 0

    Returns
    -------
    pandas.DataFrame
        ``device_type`` and the features in original units, one row per
        synthetic row, device types in sorted order.
    """
    check_settings(k_neighbors, method)
    labels = frame["device_type"].astype(str).to_numpy(dtype=object)
    counts = pd.Series(labels).value_counts()
    wanted = pd.Series({str(name): int(value) for name, value in needed.items()}, dtype=np.int64)
    unknown = sorted(set(wanted[wanted > 0].index) - set(counts.index))
    if unknown:
        raise ValueError(f"split {split} has no real rows of {unknown}, so SMOTE cannot draw rows for them")

    array = preprocessor.transform(frame)
    categorical = []
    if method == "smotenc":
        array, categorical = categorical_codes(array, preprocessor.layout_)

    new_rows, new_labels = [], []
    for call, (k, names) in enumerate(plan_calls(counts, wanted, k_neighbors)):
        if k < k_neighbors:
            LOGGER.warning("split %s: %s has %d real rows, so SMOTE uses %d neighbours there%s", split, names[0],
                           counts[names[0]], k, " (copies of the one row)" if k == 0 else "")
        strategy = {name: int(counts[name] + wanted[name]) for name in names}
        rows, row_labels = _oversample(array, labels, strategy, k, method, categorical, call_seed(seed, split, call))
        new_rows.append(rows)
        new_labels.append(row_labels)

    if not new_rows:
        new_rows, new_labels = [array[:0]], [labels[:0]]
    array = np.concatenate(new_rows)
    if method == "smotenc":
        array = one_hot_codes(array, preprocessor.layout_, preprocessor.n_columns_)

    decoded = preprocessor.inverse_transform(array)
    decoded.insert(0, "device_type", np.concatenate(new_labels).astype(str))
    order = np.argsort(decoded["device_type"].to_numpy(), kind="stable")
    return decoded.iloc[order].reset_index(drop=True)


def smote_rows(splits: Mapping[str, pd.DataFrame], preprocessor: Preprocessor, target: str | int,
               k_neighbors: int = 5, method: str = "smote", seed: int = 0) -> pd.DataFrame:
    """Draw the SMOTE rows that top up every split to the per-class targets.

    Parameters
    ----------
    splits : mapping of str to pandas.DataFrame
        Real ``train``, ``val`` and ``test`` splits.
    preprocessor : Preprocessor
    target : "max" or int
        ``balance.target``, as for the generators.
    k_neighbors, method, seed
        See :func:`smote_split`.

    Returns
    -------
    pandas.DataFrame
        ``split``, the packet table's columns and ``synthetic`` (all True),
        the layout of the generators' synthetic rows. ``capture`` is
        ``synthetic:smote:<split>``, ``device`` is ``synthetic:smote`` and
        ``frame`` counts from 1 per split.
    """
    check_settings(k_neighbors, method)
    needed = deficits({name: splits[name]["device_type"] for name in SPLIT_NAMES}, target)
    names = [entry["name"] for entry in preprocessor.layout_]

    parts = []
    for split in SPLIT_NAMES:
        started = time.perf_counter()
        wanted = needed[needed["split"] == split].set_index("device_type")["synthetic"]
        rows = smote_split(splits[split], preprocessor, wanted.to_dict(), split, k_neighbors, method, seed)
        rows.insert(0, "split", split)
        parts.append(rows)
        LOGGER.info("%s: %d SMOTE rows for %d device types in %.1f s", split, len(rows),
                    int((wanted > 0).sum()), time.perf_counter() - started)

    frame = pd.concat(parts, ignore_index=True)
    frame["capture"] = f"synthetic:{SOURCE_NAME}:" + frame["split"].astype(str)
    frame["device"] = f"synthetic:{SOURCE_NAME}"
    frame["frame"] = (frame.groupby("split").cumcount() + 1).astype(np.int64)
    frame["synthetic"] = True
    return frame[["split", *ID_COLUMNS, *names, "synthetic"]]


def run_smote_stage(split_paths: Mapping[str, str | Path], preprocessor_path: str | Path,
                    output_path: str | Path, target: str | int, k_neighbors: int, method: str,
                    seed: int) -> pd.DataFrame:
    """Run the ``smote`` rule: write ``results/synthetic/smote.parquet``.

    Parameters
    ----------
    split_paths : mapping of str to path
        Real ``train``, ``val`` and ``test`` splits.
    preprocessor_path : str or pathlib.Path
        ``results/preprocess/preprocessor.json``.
    output_path : str or pathlib.Path
        Output parquet (see :func:`smote_rows`).
    target : "max" or int
    k_neighbors : int
    method : {"smote", "smotenc"}
    seed : int

    Returns
    -------
    pandas.DataFrame
        The synthetic rows.
    """
    started = time.perf_counter()
    splits = {name: pd.read_parquet(split_paths[name]) for name in SPLIT_NAMES}
    preprocessor = Preprocessor.load(preprocessor_path)
    LOGGER.info("read real splits (%s rows) and %s; method %s, k_neighbors %d, target %s",
                {name: len(frame) for name, frame in splits.items()}, preprocessor_path, method, k_neighbors, target)

    frame = smote_rows(splits, preprocessor, target, k_neighbors, method, seed)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output_path, index=False)
    LOGGER.info("wrote %s: %d rows; took %.1f s", output_path, len(frame), time.perf_counter() - started)
    return frame
