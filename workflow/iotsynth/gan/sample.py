"""Synthesis per device type and split, with a constraint rejection step.

Synthetic rows are drawn per split: each (split, device type) pair gets its
own rows, as many as it lacks to reach its target, from its own random
stream (derived from the seed, the split and the device type). No synthetic
row appears in two splits, and changing one split's target leaves the rows
of the other splits unchanged.

Rejection
    Rows are decoded to one value per feature the way the critic saw them in
    training (see :meth:`iotsynth.gan.models.OutputActivation.decode`),
    brought back to original units by the preprocessor, and scored by
    :meth:`iotsynth.constraints.ConstraintSet.row_violation_score` (the share
    of the device type's range and protocol rules a row breaks). Rows above
    ``tolerance`` are dropped and more are generated, for at most
    ``max_rounds`` rounds. A remaining shortfall is filled with the rejected
    rows of lowest score and logged. With rejection on or off, the share of
    generated rows that break at least one rule is reported as
    ``violation_rate``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from iotsynth.gan.models import TrainedGenerator, load_generator
from iotsynth.gan.settings import SamplingSettings

LOGGER = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
ID_COLUMNS = ("capture", "device", "device_type", "frame")
REJECTION_COLUMNS = (
    "split",
    "device_type",
    "requested",
    "generated",
    "rejected",
    "rejection_rate",
    "violation_rate",
    "mean_violation_score",
    "rounds",
    "filled_from_rejected",
)
# A round never draws more than this many rows per missing row, so a device
# type whose rows are almost always rejected costs at most
# max_rounds * MAX_DRAW_FACTOR times its requested rows.
MAX_DRAW_FACTOR = 4


def stream_seed(seed: int, split: str, device_type: str) -> int:
    """Return the seed of one (split, device type) stream, independent of the others."""
    key = [seed, SPLIT_NAMES.index(split) if split in SPLIT_NAMES else 99]
    key += [ord(character) for character in device_type]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] % (2**63))


def generate_decoded(model: TrainedGenerator, class_index: int, n_rows: int, rng: torch.Generator,
                     chunk_rows: int) -> np.ndarray:
    """Generate rows of one device type, decoded to one value per feature.

    Returns
    -------
    numpy.ndarray of shape (n_rows, n_columns), float32
        In the preprocessor's space, ready for ``inverse_transform``.
    """
    generator = model.generator
    condition = torch.zeros(len(model.class_names))
    condition[class_index] = 1.0
    parts = []
    with torch.no_grad():
        for start in range(0, n_rows, chunk_rows):
            size = min(chunk_rows, n_rows - start)
            noise = torch.randn((size, generator.noise_dim), generator=rng)
            y = generator.pre_activations(noise, condition.expand(size, -1))
            parts.append(generator.activation.decode(y, rng).numpy())
    if not parts:
        return np.zeros((0, generator.activation.inverse_order.numel()), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


def sample_device_type(model: TrainedGenerator, preprocessor, constraints, device_type: str, n_rows: int,
                       settings: SamplingSettings, seed: int) -> tuple[pd.DataFrame, dict]:
    """Draw ``n_rows`` rows of one device type, in original units, with rejection.

    Parameters
    ----------
    model : TrainedGenerator
    preprocessor : iotsynth.preprocess.Preprocessor
    constraints : iotsynth.constraints.ConstraintSet
    device_type : str
        One of ``model.class_names``.
    n_rows : int
    settings : SamplingSettings
    seed : int
        Seed of this stream (:func:`stream_seed`).

    Returns
    -------
    rows : pandas.DataFrame
        ``n_rows`` rows of the feature columns.
    stats : dict
        The ``REJECTION_COLUMNS`` values except ``split``.
    """
    if device_type not in model.class_names:
        raise ValueError(f"device type {device_type!r} was not in the generator's training data; "
                         f"it knows {model.class_names}")
    class_index = model.class_names.index(device_type)
    rng = torch.Generator().manual_seed(seed)
    accepted, rejected, rejected_scores = [], [], []
    n_accepted = generated = rounds = violating = 0
    score_sum = 0.0
    while n_accepted < n_rows and rounds < (settings.max_rounds if settings.rejection else 1):
        rounds += 1
        missing = n_rows - n_accepted
        acceptance = n_accepted / generated if generated else 1.0
        size = missing if not settings.rejection else _round_size(missing, acceptance, settings.oversample)
        decoded = generate_decoded(model, class_index, size, rng, settings.chunk_rows)
        rows = preprocessor.inverse_transform(decoded)
        scores = constraints.row_violation_score(rows, np.full(len(rows), device_type, dtype=object))
        generated += len(rows)
        violating += int((scores > 0).sum())
        score_sum += float(scores.sum())

        keep = scores <= settings.tolerance if settings.rejection else np.ones(len(rows), dtype=bool)
        passing = rows[keep].iloc[: n_rows - n_accepted]
        accepted.append(passing)
        n_accepted += len(passing)
        rejected.append(rows[~keep])
        rejected_scores.append(scores[~keep])

    n_rejected = int(sum(len(part) for part in rejected))
    stats = {
        "device_type": device_type,
        "requested": n_rows,
        "generated": generated,
        "rejected": n_rejected,
        "rejection_rate": n_rejected / generated if generated else float("nan"),
        "violation_rate": violating / generated if generated else float("nan"),
        "mean_violation_score": score_sum / generated if generated else float("nan"),
        "rounds": rounds,
        "filled_from_rejected": 0,
    }

    if n_accepted < n_rows:
        filler = _least_violating(rejected, rejected_scores, n_rows - n_accepted)
        accepted.append(filler)
        stats["filled_from_rejected"] = len(filler)
        LOGGER.warning(
            "%s: %d of %d rows passed the constraints after %d rounds (%d generated); filled %d rows "
            "with the least-violating rejected rows. Raise balance.rejection.max_rounds or tolerance, "
            "or train longer", device_type, n_accepted, n_rows, rounds, generated, len(filler),
        )
    frame = pd.concat(accepted, ignore_index=True) if accepted else preprocessor.inverse_transform(
        np.zeros((0, preprocessor.n_columns_), dtype=np.float32))
    return frame, stats


def _round_size(missing: int, acceptance: float, oversample: float) -> int:
    factor = min(oversample / max(acceptance, 1.0 / MAX_DRAW_FACTOR), MAX_DRAW_FACTOR)
    return max(1, math.ceil(missing * factor))


def _least_violating(rejected: list[pd.DataFrame], scores: list[np.ndarray], n_rows: int) -> pd.DataFrame:
    frame = pd.concat(rejected, ignore_index=True)
    order = np.argsort(np.concatenate(scores), kind="stable")[:n_rows]
    return frame.iloc[order].reset_index(drop=True)


def synthesize(model: TrainedGenerator, preprocessor, constraints, needed: pd.DataFrame, settings: SamplingSettings,
               seed: int, generator_name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the synthetic rows of every (split, device type) pair.

    Parameters
    ----------
    model : TrainedGenerator
    preprocessor : iotsynth.preprocess.Preprocessor
        The preprocessor the model was trained with.
    constraints : iotsynth.constraints.ConstraintSet
    needed : pandas.DataFrame
        Columns ``split``, ``device_type`` and ``synthetic`` (rows to draw),
        e.g. from :func:`iotsynth.gan.balance.deficits`.
    settings : SamplingSettings
    seed : int
    generator_name : str
        Written into the ``capture`` and ``device`` columns.

    Returns
    -------
    rows : pandas.DataFrame
        ``split``, the packet table's columns (``capture`` is
        ``synthetic:<generator>:<split>``, ``device`` is
        ``synthetic:<generator>``, ``frame`` counts from 1 per split) and
        ``synthetic`` (all True).
    rejection : pandas.DataFrame
        One row per pair with ``REJECTION_COLUMNS``.
    """
    model.check_layout(preprocessor.layout_)
    parts, records = [], []
    for item in needed.itertuples(index=False):
        if item.synthetic <= 0:
            continue
        started = time.perf_counter()
        rows, stats = sample_device_type(model, preprocessor, constraints, item.device_type, int(item.synthetic),
                                         settings, stream_seed(seed, item.split, item.device_type))
        rows.insert(0, "device_type", item.device_type)
        rows.insert(0, "split", item.split)
        parts.append(rows)
        records.append({"split": item.split, **stats})
        LOGGER.info(
            "%s %s: %d rows, %d generated, rejection rate %.3f, %d rounds, %.1f s", item.split, item.device_type,
            len(rows), stats["generated"], stats["rejection_rate"], stats["rounds"], time.perf_counter() - started,
        )

    names = [entry["name"] for entry in preprocessor.layout_]
    if parts:
        frame = pd.concat(parts, ignore_index=True)
    else:
        empty = preprocessor.inverse_transform(np.zeros((0, preprocessor.n_columns_), dtype=np.float32))
        frame = empty.assign(split=pd.Series(dtype=object), device_type=pd.Series(dtype=object))
    frame["capture"] = "synthetic:" + generator_name + ":" + frame["split"].astype(str)
    frame["device"] = f"synthetic:{generator_name}"
    frame["frame"] = (frame.groupby("split").cumcount() + 1).astype(np.int64)
    frame["synthetic"] = True
    frame = frame[["split", *ID_COLUMNS, *names, "synthetic"]]
    return frame, pd.DataFrame(records, columns=list(REJECTION_COLUMNS))


def run_synthesis_stage(model_path: str | Path, split_paths: Mapping[str, str | Path], preprocessor_path: str | Path,
                        constraints_path: str | Path, synthetic_path: str | Path, rejection_path: str | Path,
                        balance_section: Mapping, rejection: bool, generator_name: str, seed: int,
                        load_model: Callable[[str | Path], Any] = load_generator) -> pd.DataFrame:
    """Run the ``synthesize`` rule: top up every split's device types to the target.

    Parameters
    ----------
    model_path : str or pathlib.Path
        ``results/models/<generator>/model.pt``.
    split_paths : mapping of str to path
        ``train``, ``val`` and ``test`` splits; only their device type
        counts are read.
    preprocessor_path, constraints_path : str or pathlib.Path
    synthetic_path : str or pathlib.Path
        Output parquet (see :func:`synthesize`).
    rejection_path : str or pathlib.Path
        Output CSV of rejection statistics per split and device type.
    balance_section : mapping
        The ``balance`` config section.
    rejection : bool
        The variant's ``rejection`` switch.
    generator_name : str
    seed : int
    load_model : callable, default load_generator
        Reads ``model_path``; :func:`iotsynth.ctgan_guided.model.load_ctgan`
        for the CTGAN baseline.

    Returns
    -------
    pandas.DataFrame
        The rejection statistics.
    """
    from iotsynth.constraints import ConstraintSet
    from iotsynth.gan.balance import deficits
    from iotsynth.preprocess import Preprocessor

    started = time.perf_counter()
    model = load_model(model_path)
    preprocessor = Preprocessor.load(preprocessor_path)
    constraints = ConstraintSet.load(constraints_path)
    labels = {name: pd.read_parquet(path, columns=["device_type"])["device_type"] for name, path in split_paths.items()}
    settings = SamplingSettings.from_config(balance_section, rejection)
    LOGGER.info("read %s (%s, %d epochs), %s and %s; sampling settings %s", model_path, generator_name,
                model.metadata.get("epochs", 0), preprocessor_path, constraints_path, settings)

    needed = deficits(labels, balance_section.get("target", "max"))
    LOGGER.info("synthetic rows needed per split: %s", needed.groupby("split", sort=False)["synthetic"].sum().to_dict())
    frame, rejection_table = synthesize(model, preprocessor, constraints, needed, settings, seed, generator_name)

    Path(synthetic_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(synthetic_path, index=False)
    rejection_table.to_csv(rejection_path, index=False)
    total = rejection_table[["generated", "rejected"]].sum()
    LOGGER.info("wrote %s: %d rows; %s: overall rejection rate %.4f; took %.1f s", synthetic_path, len(frame),
                rejection_path, total["rejected"] / max(total["generated"], 1), time.perf_counter() - started)
    return rejection_table
