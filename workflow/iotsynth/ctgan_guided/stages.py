"""The three workflow stages of the CTGAN baseline: fit the transformer, train, synthesize.

Each function reads the stage's input files, calls the library code and
writes the outputs, logging what it read, wrote and how long each step took.
Balancing and figures 11 and 12 reuse the WGAN's stages unchanged
(:func:`iotsynth.gan.balance.run_balance_stage`,
:func:`iotsynth.plots_synthetic.run_fidelity_figures`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from iotsynth.ctgan_guided.settings import GENERATOR_NAME, CTGANSettings, TransformerSettings, hyperparameter_table
from iotsynth.ctgan_guided.transformer import (
    CONTINUOUS,
    column_specs,
    column_table,
    fit_transformer,
    load_transformer,
    save_transformer,
    transform_rows,
    versions,
)

LOGGER = logging.getLogger(__name__)


def run_transformer_stage(train_path: str | Path, dictionary_path: str | Path, transformer_path: str | Path,
                          columns_path: str | Path, ctgan_section: Mapping) -> None:
    """Run the ``fit_ctgan_transformer`` rule.

    Parameters
    ----------
    train_path, dictionary_path : str or pathlib.Path
        Training split and feature dictionary.
    transformer_path : str or pathlib.Path
        Output pickle (:func:`~iotsynth.ctgan_guided.transformer.save_transformer`).
    columns_path : str or pathlib.Path
        Output CSV: the encoding of each feature
        (:func:`~iotsynth.ctgan_guided.transformer.column_table`).
    ctgan_section : mapping
        The ``ctgan`` config section.
    """
    settings = TransformerSettings.from_config(ctgan_section)
    dictionary = pd.read_csv(dictionary_path)
    train = pd.read_parquet(train_path)
    LOGGER.info("read %s (%d rows) and %s (%d features); %s; packages %s", train_path, len(train), dictionary_path,
                len(dictionary), settings, versions())

    started, cpu_started = time.perf_counter(), time.process_time()
    transformer, discrete = fit_transformer(train, dictionary, settings)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    table = column_table(column_specs(transformer), dict(zip(dictionary["name"], dictionary["kind"], strict=True)))
    LOGGER.info("fitted the CTGAN transformer in %.1f s (%.1f s CPU): %d mixture columns with %d components in all, "
                "%d one-hot columns, %d output columns", seconds, cpu_seconds,
                int((table["ctgan_type"] == CONTINUOUS).sum()), int(table["components"].sum()), len(discrete),
                transformer.output_dimensions)

    save_transformer(transformer_path, transformer, [str(name) for name in dictionary["name"]], discrete, settings)
    Path(columns_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(columns_path, index=False)
    LOGGER.info("wrote %s and %s", transformer_path, columns_path)


def run_training_stage(train_path: str | Path, transformer_path: str | Path, preprocessor_path: str | Path,
                       constraints_path: str | Path, model_path: str | Path, losses_path: str | Path,
                       hyperparameters_path: str | Path, figure_path: str | Path, checkpoint_dir: str | Path,
                       wgan_section: Mapping, ctgan_section: Mapping, seed: int, processes: int = 1):
    """Run the ``train_ctgan`` rule.

    Parameters
    ----------
    train_path, transformer_path, preprocessor_path, constraints_path : str or pathlib.Path
        Training split, fitted CTGAN transformer, preprocessor JSON and
        constraint set.
    model_path, losses_path, hyperparameters_path, figure_path, checkpoint_dir : str or pathlib.Path
        Outputs and checkpoint folder, as in
        :func:`iotsynth.gan.train.run_training_stage`.
    wgan_section, ctgan_section : mapping
        The ``wgan`` (shared budget) and ``ctgan`` config sections.
    seed : int
    processes : int, default 1
        Processes for the transformer's per-column transform.

    Returns
    -------
    iotsynth.ctgan_guided.train.CTGANTrainer
        The fitted trainer.
    """
    from iotsynth.constraints import ConstraintSet
    from iotsynth.ctgan_guided.train import CTGANTrainer, class_indices
    from iotsynth.gan.trainer_base import write_training_outputs
    from iotsynth.preprocess import Preprocessor

    started = time.perf_counter()
    settings = CTGANSettings.from_config(wgan_section, ctgan_section)
    stored = load_transformer(transformer_path)
    preprocessor = Preprocessor.load(preprocessor_path)
    constraints = ConstraintSet.load(constraints_path)
    train = pd.read_parquet(train_path)
    y = class_indices(train, constraints.device_types, str(train_path))
    LOGGER.info("read %s (%d rows), %s, %s (%d columns) and %s (%d device types)", train_path, len(train),
                transformer_path, preprocessor_path, preprocessor.n_columns_, constraints_path,
                len(constraints.device_types))
    LOGGER.info("settings: %s", settings.to_dict())

    transform_started = time.perf_counter()
    data = transform_rows(stored["transformer"], train, stored["features"], processes)
    specs = column_specs(stored["transformer"])
    LOGGER.info("transformed %d rows into %d columns of CTGAN's space in %.1f s", len(data), data.shape[1],
                time.perf_counter() - transform_started)

    trainer = CTGANTrainer(settings, specs, preprocessor, constraints.device_types, constraints, seed,
                           checkpoint_dir).fit(data, y)
    facts = {
        "training_rows": (len(data), "rows of the training split"),
        "columns": (data.shape[1], "columns of a row in CTGAN's space"),
        "preprocessed_columns": (preprocessor.n_columns_, "columns of a row in the preprocessor's space (penalties)"),
        "device_types": (len(constraints.device_types), "device types (condition classes)"),
        "generator_updates_per_epoch": (math.ceil(len(data) / settings.batch_size), "ceil(training_rows / batch_size)"),
        "seed": (seed, "seed of weights, condition vectors, noise and dropout"),
    }
    table = hyperparameter_table(settings, TransformerSettings(**stored["settings"]), facts)
    write_training_outputs(trainer, model_path, losses_path, table, hyperparameters_path, figure_path, started)
    return trainer


def run_synthesis_stage(model_path: str | Path, split_paths: Mapping[str, str | Path], preprocessor_path: str | Path,
                        constraints_path: str | Path, synthetic_path: str | Path, rejection_path: str | Path,
                        balance_section: Mapping, rejection: bool, seed: int) -> pd.DataFrame:
    """Run the ``synthesize_ctgan`` rule: top up every split's device types with CTGAN rows.

    The rows are drawn by the WGAN's stage,
    :func:`iotsynth.gan.sample.run_synthesis_stage`, with the same
    per-(split, device type) random streams and the same rejection filter.

    Parameters
    ----------
    model_path : str or pathlib.Path
        ``results/models/ctgan/model.pt``.
    split_paths : mapping of str to path
        ``train``, ``val`` and ``test`` splits; only their device type
        counts are read.
    preprocessor_path, constraints_path : str or pathlib.Path
    synthetic_path, rejection_path : str or pathlib.Path
        Outputs: the synthetic rows (parquet) and rejection statistics per
        split and device type (CSV).
    balance_section : mapping
        The ``balance`` config section.
    rejection : bool
        ``ctgan.rejection``.
    seed : int

    Returns
    -------
    pandas.DataFrame
        The rejection statistics.
    """
    from iotsynth.ctgan_guided.model import load_ctgan
    from iotsynth.gan.sample import run_synthesis_stage as run_sampling_stage

    return run_sampling_stage(model_path, split_paths, preprocessor_path, constraints_path, synthetic_path,
                              rejection_path, balance_section, rejection, GENERATOR_NAME, seed, load_model=load_ctgan)

