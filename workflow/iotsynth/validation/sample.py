"""The rows the validation stage checks: per device type, a synthetic sample and real reference rows.

Each device type draws from its own random streams, derived from the seed
and the device type's name. Adding a device type or a generator therefore
leaves the other samples unchanged, and every generator is measured against
the same real reference rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DeviceSample:
    """The rows of one device type that the validation stage reads.

    Attributes
    ----------
    device_type : str
        The device type.
    synthetic : pandas.DataFrame
        Sampled synthetic rows, feature columns in original units, with a
        ``RangeIndex``.
    n_synthetic : int
        Synthetic rows of this device type in the checked split, before
        sampling.
    real : pandas.DataFrame
        Every training row of this device type (for aggregated statistics).
    reference : pandas.DataFrame
        At most ``reference_rows`` of ``real``, drawn without replacement
        (for nearest-neighbour distances and real violation rates).
    """

    device_type: str
    synthetic: pd.DataFrame
    n_synthetic: int
    real: pd.DataFrame
    reference: pd.DataFrame


def device_rng(seed: int, purpose: str, device_type: str) -> np.random.Generator:
    """Return the random stream of one purpose (``sample``, ``reference``) and device type."""
    digest = hashlib.sha256(f"{purpose}\0{device_type}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32).tolist()
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def draw_rows(frame: pd.DataFrame, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Return at most ``n_rows`` rows of ``frame`` without replacement, in their original order."""
    if len(frame) <= n_rows:
        return frame.reset_index(drop=True)
    chosen = np.sort(rng.choice(len(frame), size=n_rows, replace=False))
    return frame.iloc[chosen].reset_index(drop=True)


def device_samples(
    synthetic: pd.DataFrame,
    train: pd.DataFrame,
    names: Sequence[str],
    sample_rows: int,
    reference_rows: int,
    seed: int,
) -> tuple[list[DeviceSample], dict[str, str]]:
    """Draw every device type's synthetic sample and real reference rows.

    Parameters
    ----------
    synthetic : pandas.DataFrame
        Synthetic rows of the checked split, with ``device_type`` and every
        feature column.
    train : pandas.DataFrame
        Real training rows with ``device_type`` and every feature column.
    names : sequence of str
        Feature columns, in feature-dictionary order.
    sample_rows, reference_rows : int
        Most synthetic and real rows per device type.
    seed : int
        The workflow seed.

    Returns
    -------
    samples : list of DeviceSample
        Device types with both synthetic and real rows, in sorted order.
    skipped : dict of str to str
        Every other device type of either table, with the reason.
    """
    columns = list(names)
    synthetic_groups = {str(key): rows[columns] for key, rows in synthetic.groupby("device_type", sort=True)}
    real_groups = {str(key): rows[columns] for key, rows in train.groupby("device_type", sort=True)}

    samples, skipped = [], {}
    for device_type in sorted(set(synthetic_groups) | set(real_groups)):
        if device_type not in synthetic_groups:
            skipped[device_type] = "no synthetic rows in the checked split"
            continue
        if device_type not in real_groups:
            skipped[device_type] = "no real training rows to compare with"
            continue

        real = real_groups[device_type].reset_index(drop=True)
        rows = synthetic_groups[device_type]
        samples.append(
            DeviceSample(
                device_type=device_type,
                synthetic=draw_rows(rows, sample_rows, device_rng(seed, "sample", device_type)),
                n_synthetic=len(rows),
                real=real,
                reference=draw_rows(real, reference_rows, device_rng(seed, "reference", device_type)),
            )
        )
    return samples, skipped
