"""Per-class targets and the two balancing protocols.

Target
    ``balance.target`` is ``max`` (each split's largest device type sets the
    target of that split) or a number of rows. A device type already at or
    above the target keeps all its real rows and gets no synthetic rows; real
    rows are never dropped.
Protocols
    ``paper``: train, validation and test are each topped up per device type
    with synthetic rows, as published. ``real_test``: train and validation
    are topped up the same way, and test contains the real packets only.
    Both protocols share the same synthetic train and validation rows.

Every balanced split keeps the packet table's columns plus ``synthetic``
(False for real packets), real rows first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

LOGGER = logging.getLogger(__name__)

PROTOCOLS = ("paper", "real_test")
SPLIT_NAMES = ("train", "val", "test")
TOPPED_UP = {"paper": ("train", "val", "test"), "real_test": ("train", "val")}
COUNT_COLUMNS = ("split", "device_type", "real", "synthetic", "total")


def class_targets(counts: pd.Series, target: str | int) -> pd.Series:
    """Return the target row count of each device type in one split.

    Parameters
    ----------
    counts : pandas.Series
        Real rows per device type.
    target : "max" or int
        ``max`` takes the largest count; a number is used as is.

    Returns
    -------
    pandas.Series
        ``max(target, count)`` per device type, so no real rows are dropped.
    """
    if isinstance(target, str):
        if target != "max":
            raise ValueError(f"balance.target must be 'max' or a number of rows, got {target!r}")
        value = int(counts.max()) if len(counts) else 0
    elif isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise ValueError(f"balance.target must be 'max' or an integer of at least 1, got {target!r}")
    else:
        value = target
    return counts.clip(lower=value).astype(int)


def deficits(labels: Mapping[str, pd.Series], target: str | int) -> pd.DataFrame:
    """Return the synthetic rows each (split, device type) pair needs.

    Parameters
    ----------
    labels : mapping of str to pandas.Series
        Device type of every real row, by split name.
    target : "max" or int
        See :func:`class_targets`.

    Returns
    -------
    pandas.DataFrame
        ``split``, ``device_type``, ``real``, ``target`` and ``synthetic``,
        splits in the given order and device types sorted. Only device types
        present in a split are listed for it.
    """
    frames = []
    for split, column in labels.items():
        counts = column.astype(str).value_counts().sort_index()
        targets = class_targets(counts, target)
        frames.append(pd.DataFrame({
            "split": split,
            "device_type": counts.index.astype(str),
            "real": counts.to_numpy(),
            "target": targets.to_numpy(),
            "synthetic": (targets - counts).to_numpy(),
        }))
    table = pd.concat(frames, ignore_index=True)

    every_type = set(table["device_type"])
    for split, column in labels.items():
        missing = sorted(every_type - set(column.astype(str)))
        if missing:
            LOGGER.warning("split %s has no rows of %s, so they get no synthetic rows there either", split, missing)
    return table


def check_synthetic(synthetic: pd.DataFrame, needed: pd.DataFrame, splits: tuple[str, ...], source: str) -> None:
    """Raise ValueError unless ``synthetic`` has exactly the rows that ``needed`` requires in ``splits``."""
    required = needed[needed["split"].isin(splits) & (needed["synthetic"] > 0)]
    required = required.set_index(["split", "device_type"])["synthetic"]
    present = synthetic[synthetic["split"].isin(splits)].groupby(["split", "device_type"]).size()
    joined = pd.concat({"needed": required, "in_file": present}, axis=1).fillna(0).astype(int)
    wrong = joined[joined["needed"] != joined["in_file"]]
    if len(wrong):
        raise ValueError(
            f"{source} does not hold the synthetic rows the targets need (split, device type, needed, in file):\n"
            f"{wrong.head(10).to_string()}\nRerun the synthesize rule with the same balance.target"
        )


def balance_protocol(splits: Mapping[str, pd.DataFrame], synthetic: pd.DataFrame, protocol: str,
                     target: str | int, source: str = "the synthetic rows") -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Build the balanced splits of one protocol.

    Parameters
    ----------
    splits : mapping of str to pandas.DataFrame
        Real ``train``, ``val`` and ``test`` splits.
    synthetic : pandas.DataFrame
        Output of :func:`iotsynth.gan.sample.synthesize` (with ``split``).
    protocol : {"paper", "real_test"}
    target : "max" or int
    source : str
        Name of the synthetic file, for messages.

    Returns
    -------
    balanced : dict of str to pandas.DataFrame
        Each split: real rows (``synthetic`` False), then its synthetic rows.
    counts : pandas.DataFrame
        ``COUNT_COLUMNS`` per split and device type.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    needed = deficits({name: splits[name]["device_type"] for name in SPLIT_NAMES}, target)
    check_synthetic(synthetic, needed, TOPPED_UP[protocol], source)

    balanced, counts = {}, []
    for name in SPLIT_NAMES:
        real = splits[name].assign(synthetic=False)
        parts = [real]
        if name in TOPPED_UP[protocol]:
            added = synthetic[synthetic["split"] == name].drop(columns="split")
            parts.append(added[real.columns])
        frame = pd.concat(parts, ignore_index=True)
        balanced[name] = frame
        table = frame.groupby(["device_type", "synthetic"]).size().unstack(fill_value=0)
        counts.append(pd.DataFrame({
            "split": name,
            "device_type": table.index.astype(str),
            "real": table.get(False, pd.Series(0, index=table.index)).to_numpy(),
            "synthetic": table.get(True, pd.Series(0, index=table.index)).to_numpy(),
        }))
    count_table = pd.concat(counts, ignore_index=True)
    count_table["total"] = count_table["real"] + count_table["synthetic"]
    return balanced, count_table[list(COUNT_COLUMNS)]


def run_balance_stage(split_paths: Mapping[str, str | Path], synthetic_path: str | Path,
                      output_paths: Mapping[str, str | Path], counts_path: str | Path, protocol: str,
                      target: str | int) -> pd.DataFrame:
    """Run the ``balance`` rule for one generator and protocol.

    Parameters
    ----------
    split_paths : mapping of str to path
        Real ``train``, ``val`` and ``test`` splits.
    synthetic_path : str or pathlib.Path
        ``results/synthetic/<generator>.parquet``.
    output_paths : mapping of str to path
        Balanced ``train``, ``val`` and ``test`` parquet files.
    counts_path : str or pathlib.Path
        CSV with rows per split, device type and source.
    protocol : {"paper", "real_test"}
    target : "max" or int
        ``balance.target``; must be the value the synthesis used.

    Returns
    -------
    pandas.DataFrame
        The counts table.
    """
    started = time.perf_counter()
    splits = {name: pd.read_parquet(split_paths[name]) for name in SPLIT_NAMES}
    synthetic = pd.read_parquet(synthetic_path)
    LOGGER.info("read real splits (%s rows) and %s (%d rows)",
                {name: len(frame) for name, frame in splits.items()}, synthetic_path, len(synthetic))

    balanced, counts = balance_protocol(splits, synthetic, protocol, target, source=str(synthetic_path))
    for name in SPLIT_NAMES:
        path = Path(output_paths[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        balanced[name].to_parquet(path, index=False)
        added = int(balanced[name]["synthetic"].sum())
        LOGGER.info("wrote %s: %d rows (%d synthetic)", path, len(balanced[name]), added)
    counts.to_csv(counts_path, index=False)
    LOGGER.info("wrote %s; protocol %s took %.1f s", counts_path, protocol, time.perf_counter() - started)
    return counts
