"""Split the packet table into training, validation and test sets.

Two modes:

- ``stratified``: the rows of each device type are shuffled and cut by the
  shares, the published protocol (64/16/20). Packets of one capture can land
  in different splits.
- ``by_capture``: every capture lands whole in one split, so the test set
  measures captures the classifiers never saw. Captures are assigned per
  device type so that each device type appears in every split and its row
  shares come close to the targets.

Both modes keep the rows of each split in packet-table order and draw all
randomness from one :class:`numpy.random.Generator` made from the seed, with
device types visited in sorted order, so one seed gives one split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from iotsynth.tables import write_table

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
MODES = ("stratified", "by_capture")

# Shares come from YAML as decimal fractions, so their float sum can miss 1 by
# an ulp or so (0.7 + 0.2 + 0.1 == 0.9999999999999999).
SHARE_SUM_TOLERANCE = 1e-9


def validate_shares(shares: Mapping[str, float]) -> np.ndarray:
    """Check the split shares and return them in ``SPLIT_NAMES`` order.

    Parameters
    ----------
    shares : mapping of str to float
        Keys ``train``, ``val`` and ``test`` (the config's ``split`` section),
        each share strictly between 0 and 1.

    Returns
    -------
    numpy.ndarray of shape (3,)
        The shares of train, val and test.

    Raises
    ------
    ValueError
        If a key is missing or unknown, a share is outside (0, 1), or the
        shares do not add up to 1 within ``SHARE_SUM_TOLERANCE``.
    """
    missing = [name for name in SPLIT_NAMES if name not in shares]
    unknown = sorted(set(shares) - set(SPLIT_NAMES))
    if missing or unknown:
        raise ValueError(
            f"split shares need exactly the keys {list(SPLIT_NAMES)}; "
            f"missing {missing}, unknown {unknown}"
        )

    values = np.array([float(shares[name]) for name in SPLIT_NAMES])
    for name, value in zip(SPLIT_NAMES, values):
        if not 0.0 < value < 1.0:
            raise ValueError(
                f"split share {name}={value} is invalid; every share must be "
                "strictly between 0 and 1 so that each split gets rows"
            )

    total = values.sum()
    if abs(total - 1.0) > SHARE_SUM_TOLERANCE:
        listed = ", ".join(f"{name}={value}" for name, value in zip(SPLIT_NAMES, values))
        raise ValueError(
            f"split shares {listed} add up to {total!r}, not 1; "
            "change split.train, split.val and split.test in the config"
        )
    return values


def cut_counts(n_rows: int, shares: np.ndarray) -> np.ndarray:
    """Divide ``n_rows`` rows among the splits by the largest-remainder method.

    Each split first gets the whole part of ``n_rows * share``. The rows left
    over go to the splits with the largest fractional parts, ties to the
    earlier split. For 105,835 rows and 0.64/0.16/0.20 this gives the
    published 67,734 / 16,934 / 21,167. A split that would get no row takes
    one from the largest split, so every split gets a row when
    ``n_rows >= 3``.

    Parameters
    ----------
    n_rows : int
        Number of rows to divide, at least 3.
    shares : numpy.ndarray of shape (3,)
        Shares from :func:`validate_shares`.

    Returns
    -------
    numpy.ndarray of shape (3,)
        Row counts of train, val and test, adding up to ``n_rows``.
    """
    exact = n_rows * shares
    counts = np.floor(exact).astype(np.int64)
    leftover = n_rows - int(counts.sum())
    by_remainder = np.argsort(-(exact - counts), kind="stable")
    counts[by_remainder[:leftover]] += 1

    for index in np.flatnonzero(counts == 0):
        counts[np.argmax(counts)] -= 1
        counts[index] += 1
    return counts


def assign_stratified(
    device_types: pd.Series, shares: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Assign rows to splits per device type, shuffled.

    Parameters
    ----------
    device_types : pandas.Series of shape (n_rows,)
        The label of each row.
    shares : numpy.ndarray of shape (3,)
        Shares from :func:`validate_shares`.
    rng : numpy.random.Generator
        Source of the shuffles.

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
        Split index of each row (0 train, 1 val, 2 test).

    Raises
    ------
    ValueError
        If a device type has fewer than 3 rows.
    """
    assignment = np.empty(len(device_types), dtype=np.int8)
    positions_by_type = device_types.groupby(device_types, sort=True).indices

    for device_type, positions in positions_by_type.items():
        if len(positions) < len(SPLIT_NAMES):
            raise ValueError(
                f"device type {device_type!r} has {len(positions)} rows; a stratified "
                "split needs at least 3 so that it appears in train, val and test. "
                "Add captures of this device or leave it out of dataset.devices"
            )
        counts = cut_counts(len(positions), shares)
        shuffled = rng.permutation(positions)
        ends = np.cumsum(counts)
        assignment[shuffled[: ends[0]]] = 0
        assignment[shuffled[ends[0] : ends[1]]] = 1
        assignment[shuffled[ends[1] :]] = 2
    return assignment


def assign_capture_groups(
    sizes: np.ndarray, shares: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Assign captures of one device type to splits, greedily by row deficit.

    Captures are visited in shuffled order, and each goes to the split whose
    row count is furthest below its target. When as many captures are left as
    splits are still empty, each remaining capture goes to an empty split, so
    every split gets at least one capture. An empty split is always below its
    target, so no split ends more than one capture above its target, and none
    more than two captures below it.

    Parameters
    ----------
    sizes : numpy.ndarray of shape (n_captures,)
        Row count of each capture, ``n_captures >= 3``.
    shares : numpy.ndarray of shape (3,)
        Target shares of the rows.
    rng : numpy.random.Generator
        Source of the visiting order.

    Returns
    -------
    numpy.ndarray of shape (n_captures,)
        Split index of each capture (0 train, 1 val, 2 test).
    """
    targets = shares * sizes.sum()
    filled = np.zeros(len(SPLIT_NAMES))
    n_assigned = np.zeros(len(SPLIT_NAMES), dtype=np.int64)
    assignment = np.empty(len(sizes), dtype=np.int8)
    order = rng.permutation(len(sizes))

    for position, capture in enumerate(order):
        n_left = len(order) - position
        empty = np.flatnonzero(n_assigned == 0)
        candidates = empty if n_left == len(empty) else np.arange(len(SPLIT_NAMES))

        deficits = targets[candidates] - filled[candidates]
        chosen = candidates[np.argmax(deficits)]

        assignment[capture] = chosen
        filled[chosen] += sizes[capture]
        n_assigned[chosen] += 1
    return assignment


def assign_by_capture(
    table: pd.DataFrame, shares: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Assign whole captures to splits, per device type.

    Parameters
    ----------
    table : pandas.DataFrame
        Packet table with the columns ``capture`` and ``device_type``.
    shares : numpy.ndarray of shape (3,)
        Target shares of each device type's rows.
    rng : numpy.random.Generator
        Source of the visiting orders.

    Returns
    -------
    numpy.ndarray of shape (n_rows,)
        Split index of each row (0 train, 1 val, 2 test).

    Raises
    ------
    ValueError
        If a capture contains more than one device type, or a device type has
        fewer than 3 captures.
    """
    captures = table.groupby("capture", sort=True).agg(
        device_type=("device_type", "first"),
        n_types=("device_type", "nunique"),
        n_rows=("device_type", "size"),
    )
    mixed = captures.index[captures["n_types"] > 1]
    if len(mixed) > 0:
        raise ValueError(
            f"captures {list(mixed[:5])} contain packets of more than one device type; "
            "the capture column must name one capture of one device"
        )

    split_of_capture = pd.Series(0, index=captures.index, dtype=np.int8)
    for device_type, group in captures.groupby("device_type", sort=True):
        if len(group) < len(SPLIT_NAMES):
            raise ValueError(
                f"device type {device_type!r} has {len(group)} captures; split.mode "
                "by_capture needs at least 3 so that it appears in train, val and "
                "test. Use split.mode stratified or add captures of this device type"
            )
        split_of_capture.loc[group.index] = assign_capture_groups(
            group["n_rows"].to_numpy(), shares, rng
        )

    return table["capture"].map(split_of_capture).to_numpy(dtype=np.int8)


def split_packets(
    table: pd.DataFrame, mode: str, shares: Mapping[str, float], seed: int
) -> dict[str, pd.DataFrame]:
    """Split a packet table into train, val and test.

    Parameters
    ----------
    table : pandas.DataFrame
        Packet table with at least the columns ``capture`` and ``device_type``.
    mode : {"stratified", "by_capture"}
        How rows are grouped; see the module docstring.
    shares : mapping of str to float
        Shares of ``train``, ``val`` and ``test``, adding up to 1.
    seed : int
        Seed of the generator that drives every shuffle.

    Returns
    -------
    dict of str to pandas.DataFrame
        The three splits keyed by ``SPLIT_NAMES``, with the table's columns,
        rows in table order and a fresh ``RangeIndex``.

    Raises
    ------
    ValueError
        If the mode is unknown, the shares are invalid, a column is missing,
        or a device type is too small for the mode.
    """
    share_values = validate_shares(shares)
    missing = [column for column in ("capture", "device_type") if column not in table]
    if missing:
        raise ValueError(
            f"the packet table lacks the columns {missing}, which every packet table has"
        )

    rng = np.random.default_rng(seed)
    if mode == "stratified":
        assignment = assign_stratified(table["device_type"], share_values, rng)
    elif mode == "by_capture":
        assignment = assign_by_capture(table, share_values, rng)
    else:
        raise ValueError(f"split mode {mode!r} is unknown; use one of {list(MODES)}")

    return {
        name: table[assignment == index].reset_index(drop=True)
        for index, name in enumerate(SPLIT_NAMES)
    }


def count_split_rows(splits: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Count the rows of each device type in each split (Table 6).

    Parameters
    ----------
    splits : mapping of str to pandas.DataFrame
        The splits keyed by ``SPLIT_NAMES``, each with a ``device_type`` column.

    Returns
    -------
    pandas.DataFrame
        Columns ``device_type``, ``train``, ``val``, ``test`` and ``total``;
        one row per device type in sorted order, then a row ``total``.
    """
    counts = pd.DataFrame(
        {name: splits[name]["device_type"].value_counts() for name in SPLIT_NAMES}
    )
    counts = counts.fillna(0).astype(np.int64).sort_index()
    counts["total"] = counts.sum(axis=1)
    counts.loc["total"] = counts.sum(axis=0)
    return counts.rename_axis("device_type").reset_index()


def split_packet_table(
    packets_path: str | Path,
    output_paths: Mapping[str, str | Path],
    table_stem: str | Path,
    mode: str,
    shares: Mapping[str, float],
    seed: int,
) -> dict[str, pd.DataFrame]:
    """Read the packet table, split it and write the splits and Table 6.

    Parameters
    ----------
    packets_path : str or pathlib.Path
        The merged packet table (``results/features/packets.parquet``).
    output_paths : mapping of str to path
        Parquet path of each split, keyed by ``SPLIT_NAMES``.
    table_stem : str or pathlib.Path
        Path of Table 6 without suffix; ``.csv`` and ``.md`` are written.
    mode, shares, seed
        As in :func:`split_packets`.

    Returns
    -------
    dict of str to pandas.DataFrame
        The splits that were written.
    """
    table = pd.read_parquet(packets_path)
    logger.info(
        "read %s: %d rows, %d device types, %d captures",
        packets_path,
        len(table),
        table["device_type"].nunique() if "device_type" in table else 0,
        table["capture"].nunique() if "capture" in table else 0,
    )

    logger.info("split mode %s, shares %s, seed %d", mode, dict(shares), seed)
    splits = split_packets(table, mode=mode, shares=shares, seed=seed)

    for name in SPLIT_NAMES:
        path = Path(output_paths[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        splits[name].to_parquet(path, index=False)
        logger.info(
            "wrote %s split to %s: %d rows (%.4f of all), %d captures",
            name,
            path,
            len(splits[name]),
            len(splits[name]) / max(len(table), 1),
            splits[name]["capture"].nunique(),
        )

    write_table(count_split_rows(splits), table_stem)
    return splits
