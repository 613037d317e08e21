"""Training loop shared by the WGAN-GP and the CTGAN baseline.

:class:`GANTrainer` runs the part of training that does not depend on the
networks: input checks, the fingerprint that ties checkpoints to a run,
resumption, the epoch loop, checkpoints, the per-epoch loss record
(``LOSS_COLUMNS``) and progress logging. A subclass builds its networks and
supplies the critic updates and the generator objective
(:class:`iotsynth.gan.train.WGANTrainer`,
:class:`iotsynth.ctgan_guided.train.CTGANTrainer`).

One epoch is ``ceil(rows / batch_size)`` generator updates, each preceded by
``critic_steps`` critic updates. A row of ``losses.csv`` contains the means
over the epoch's updates. A loss term that the generator does not train
with is still measured, without gradients, on every ``MONITOR_EVERY``-th
generator update, so ``losses.csv`` compares variants column by column.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from iotsynth.gan import checkpoints
from iotsynth.gan.settings import PENALTY_SECTIONS

LOGGER = logging.getLogger(__name__)

LOSS_COLUMNS = (
    "epoch",
    "critic_loss",
    "generator_loss",
    "generator_objective",
    "wasserstein",
    "gradient_penalty",
    "graph_loss",
    "penalty_range",
    "penalty_correlation",
    "penalty_protocol",
    "seconds",
)
# Generator updates between measurements of a loss term the variant does
# not train with (measured for comparison only).
MONITOR_EVERY = 10
# An epoch that runs longer than this logs its progress at this interval.
PROGRESS_SECONDS = 60.0
# Loss columns that every epoch measures; a non-finite one means the
# weights have diverged.
CHECKED_LOSSES = ("critic_loss", "generator_loss", "wasserstein")


def check_finite_losses(row: Mapping[str, float], model_name: str, checkpoint_dir: str | Path | None) -> None:
    """Raise when an epoch's critic loss, generator loss or Wasserstein estimate is not finite.

    Called before the epoch is checkpointed, so the checkpoints on disk stay
    those of finite epochs and a rerun with other settings starts clean.

    Raises
    ------
    FloatingPointError
        Naming the model, the epoch, the loss and the newest checkpoint.
    """
    bad = [name for name in CHECKED_LOSSES if not math.isfinite(row[name])]
    if not bad:
        return
    saved = checkpoints.list_checkpoints(checkpoint_dir) if checkpoint_dir is not None else []
    where = (f"the newest checkpoint is epoch {saved[-1][0]} in {checkpoint_dir}" if saved
             else "no checkpoint was written")
    raise FloatingPointError(
        f"training of {model_name} diverged in epoch {int(row['epoch'])}: "
        + ", ".join(f"{name} is {row[name]}" for name in bad)
        + f". Nothing of that epoch was saved ({where}). Lower the learning rates or the penalty weights "
        "in the config and run again, or report the inputs and settings that lead to it."
    )


def resolve_device(requested: str) -> torch.device:
    """Return the torch device for ``auto``, ``cpu`` or ``cuda``.

    Raises
    ------
    RuntimeError
        If ``cuda`` is requested and no CUDA device is available.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("wgan.device is cuda but torch finds no CUDA device; set it to auto or cpu")
    return torch.device(requested)


class GANTrainer(abc.ABC):
    """Fit a conditional generator against a critic, with checkpoints and a loss record.

    Parameters
    ----------
    settings : iotsynth.gan.settings.TrainingSettings
        A subclass's settings; the loop reads ``epochs``, ``batch_size``,
        ``critic_steps``, ``penalties``, ``penalty_weights``,
        ``checkpoint_every``, ``keep_checkpoints`` and ``device``.
    preprocessor : iotsynth.preprocess.Preprocessor
        Fitted; the constraint penalties work in its space.
    class_names : sequence of str
        Device type of each class index (``ConstraintSet.device_types``).
    constraints : iotsynth.constraints.ConstraintSet, optional
        Required when ``settings.penalties`` is on; without it the penalty
        columns stay NaN.
    seed : int
    checkpoint_dir : str or pathlib.Path, optional
        Where checkpoints go; without it training neither saves nor resumes.
    progress : bool, default True
        Log one line per epoch, and the progress of an epoch every
        ``PROGRESS_SECONDS``.

    Attributes
    ----------
    generator_ : torch.nn.Module
        Trained, in evaluation mode, on ``device_``.
    losses_ : pandas.DataFrame
        One row per epoch with ``LOSS_COLUMNS``.
    fingerprint_ : str
        Hash of inputs and settings that ties checkpoints to this run.
    device_ : torch.device
    resumed_from_ : int
        Epochs read from a checkpoint (0 for a fresh run).
    """

    # Checkpoint key of the random generator state that ``_random_state`` returns.
    RANDOM_STATE_KEY = "rng_state"

    def __init__(self, settings, preprocessor, class_names: Sequence[str], constraints=None, seed: int = 0,
                 checkpoint_dir: str | Path | None = None, progress: bool = True):
        self.settings = settings
        self.preprocessor = preprocessor
        self.class_names = list(class_names)
        self.constraints = constraints
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    @property
    @abc.abstractmethod
    def generator_name(self) -> str:
        """Name of the generator in log lines and figure titles (the variant, or ``ctgan``)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> GANTrainer:
        """Train on rows ``x`` of shape (n_rows, n_columns) with class indices ``y``.

        Resumes from the newest matching checkpoint in ``checkpoint_dir``.

        Returns
        -------
        GANTrainer
            This object, with the attributes listed in the class docstring.
        """
        self._check_inputs(x, y)
        self.device_ = resolve_device(self.settings.device)
        self.fingerprint_ = self._fingerprint(x, y)
        steps = math.ceil(len(x) / self.settings.batch_size)

        with self._random_scope():
            self._build(x, y)
            self.losses_rows: list[dict[str, float]] = []
            self.resumed_from_ = 0
            start_epoch = self._resume()
            LOGGER.info("training %s on %s: %d rows, %d columns, %d device types, %d generator updates per epoch, "
                        "epochs %d to %d", self.generator_name, self.device_, len(x), x.shape[1],
                        len(self.class_names), steps, start_epoch + 1, self.settings.epochs)
            for epoch in range(start_epoch + 1, self.settings.epochs + 1):
                row = self._run_epoch(epoch, steps)
                check_finite_losses(row, self.generator_name, self.checkpoint_dir)
                self.losses_rows.append(row)
                if self.progress:
                    self._log_epoch(row)
                if self.checkpoint_dir is not None and (
                    epoch % self.settings.checkpoint_every == 0 or epoch == self.settings.epochs
                ):
                    self._checkpoint(epoch)

        self.losses_ = pd.DataFrame(self.losses_rows, columns=list(LOSS_COLUMNS))
        self.generator_.eval()
        return self

    def save(self, path: str | Path) -> None:
        """Write the trained generator as ``model.pt``."""
        self._write_model(path, self._model_metadata())

    # Hooks of the subclasses.

    @abc.abstractmethod
    def _row_width(self) -> tuple[int, str]:
        """Return the width of a training row and where that width comes from, for messages."""

    @abc.abstractmethod
    def _check_components(self) -> None:
        """Raise ValueError if an input that the settings need (graph, constraints) is missing."""

    @abc.abstractmethod
    def _fingerprint_parts(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Return the arrays and JSON documents beyond rows, classes, layout and constraints."""

    def _random_scope(self) -> AbstractContextManager:
        """Return the context in which networks are built and trained (none by default)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def _build(self, x: np.ndarray, y: np.ndarray) -> None:
        """Create the networks, ``generator_optimizer``, random streams and samplers."""

    @abc.abstractmethod
    def _critic_network(self) -> torch.nn.Module:
        """Return the network that scores rows (critic or discriminator)."""

    @abc.abstractmethod
    def _checkpoint_parts(self) -> dict[str, Any]:
        """Return the networks and optimisers in a checkpoint, by checkpoint key, in file order."""

    @abc.abstractmethod
    def _random_state(self) -> Any:
        """Return the state of every random generator that training draws from."""

    @abc.abstractmethod
    def _set_random_state(self, state: Any) -> None:
        """Restore a state returned by :meth:`_random_state`."""

    @abc.abstractmethod
    def _critic_updates(self) -> dict[str, list[torch.Tensor]]:
        """Run ``critic_steps`` critic updates and return the detached losses of each, by loss column."""

    @abc.abstractmethod
    def _generator_objective(self, monitor: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the generator objective of one batch and its detached terms, by loss column.

        The critic's weights do not require gradients during this call.
        With ``monitor`` set, the terms that the objective leaves out are
        measured too.
        """

    def _penalty_rows(self, fake: torch.Tensor) -> torch.Tensor:
        """Return generated rows in the preprocessor's space, where the penalties work."""
        return fake

    def _model_metadata(self) -> dict[str, Any]:
        """Return the ``metadata`` entry of ``model.pt``."""
        return {
            "epochs": int(len(self.losses_)),
            "seed": int(self.seed),
            "fingerprint": self.fingerprint_,
            "trained_on": str(self.device_),
            "torch_version": str(torch.__version__),
        }

    @abc.abstractmethod
    def _write_model(self, path: str | Path, metadata: Mapping[str, Any]) -> None:
        """Write ``model.pt`` with ``metadata``."""

    # The shared steps.

    def _check_inputs(self, x: np.ndarray, y: np.ndarray) -> None:
        width, source = self._row_width()
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"training rows have shape {x.shape}; expected (n_rows, {width}) from {source}")
        if y.shape != (len(x),):
            raise ValueError(f"class indices have shape {y.shape}; expected ({len(x)},)")
        if len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
            raise ValueError(f"invalid class indices {y.min()} to {y.max()}: expected 0 to {len(self.class_names) - 1}")
        if len(x) < self.settings.batch_size:
            raise ValueError(f"{len(x)} training rows are fewer than wgan.batch_size {self.settings.batch_size}")
        self._check_components()

    def _fingerprint(self, x: np.ndarray, y: np.ndarray) -> str:
        arrays, documents = self._fingerprint_parts()
        arrays = {"x": x, "y": y, **arrays}
        documents = {"layout": self.preprocessor.layout_, "class_names": self.class_names, **documents}
        if self.constraints is not None:
            documents["constraints"] = self.constraints.document
        return checkpoints.fingerprint(self.settings.to_dict(), self.seed, arrays, documents)

    def _resume(self) -> int:
        """Load the newest matching checkpoint; return the epochs it had completed."""
        if self.checkpoint_dir is None:
            return 0
        state = checkpoints.load_latest(self.checkpoint_dir, self.fingerprint_, self.settings.epochs)
        if state is None:
            LOGGER.info("no checkpoint to resume in %s; training from epoch 1", self.checkpoint_dir)
            return 0
        for key, part in self._checkpoint_parts().items():
            part.load_state_dict(state[key])
        self._set_random_state(state[self.RANDOM_STATE_KEY])
        self.losses_rows = [dict(row) for row in state["losses"]]
        self.resumed_from_ = int(state["epoch"])
        LOGGER.info("resumed from the checkpoint after epoch %d in %s", self.resumed_from_, self.checkpoint_dir)
        return self.resumed_from_

    def _checkpoint(self, epoch: int) -> None:
        state = {"fingerprint": self.fingerprint_}
        state.update({key: part.state_dict() for key, part in self._checkpoint_parts().items()})
        state[self.RANDOM_STATE_KEY] = self._random_state()
        state["losses"] = self.losses_rows
        path = checkpoints.save_checkpoint(self.checkpoint_dir, epoch, state, self.settings.keep_checkpoints)
        LOGGER.info("wrote checkpoint %s", path)

    def _generator_step(self, monitor: bool) -> dict[str, torch.Tensor]:
        """Run one generator update and return its detached loss terms."""
        # The critic's weights stay fixed here, so its gradients are not computed.
        critic = self._critic_network()
        critic.requires_grad_(False)
        objective, record = self._generator_objective(monitor)
        self.generator_optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.generator_optimizer.step()
        critic.requires_grad_(True)
        record["generator_objective"] = objective.detach()
        return record

    def _add_penalties(self, objective: torch.Tensor, record: dict[str, torch.Tensor], fake: torch.Tensor,
                       classes: torch.Tensor, monitor: bool) -> torch.Tensor:
        """Return ``objective`` plus the weighted constraint penalties of ``fake`` when ``penalties`` is on.

        The penalties are recorded when they are trained with or
        ``monitor`` is set, and left out (NaN in ``losses.csv``) without a
        constraint set.
        """
        settings = self.settings
        if self.constraints is None or not (settings.penalties or monitor):
            return objective
        with torch.set_grad_enabled(settings.penalties):
            terms = self.constraints.torch_penalties(self._penalty_rows(fake), classes, self.preprocessor)
        for section in PENALTY_SECTIONS:
            record[f"penalty_{section}"] = terms[section].detach()
            if settings.penalties:
                objective = objective + settings.penalty_weights[section] * terms[section]
        return objective

    def _run_epoch(self, epoch: int, steps: int) -> dict[str, float]:
        """Run one epoch and return its row of ``losses.csv`` (means over the epoch's updates)."""
        started = last_report = time.perf_counter()
        totals: dict[str, list[torch.Tensor]] = {}
        for step in range(steps):
            for name, values in self._critic_updates().items():
                totals.setdefault(name, []).extend(values)
            for name, value in self._generator_step(monitor=step % MONITOR_EVERY == 0).items():
                totals.setdefault(name, []).append(value)
            if self.progress and time.perf_counter() - last_report > PROGRESS_SECONDS:
                last_report = time.perf_counter()
                LOGGER.info("%s epoch %d: %d of %d generator updates in %.0f s", self.generator_name, epoch,
                            step + 1, steps, last_report - started)

        row = {name: math.nan for name in LOSS_COLUMNS}
        row.update({name: float(torch.stack(values).mean()) for name, values in totals.items()})
        row["epoch"] = epoch
        row["seconds"] = time.perf_counter() - started
        return row

    def _log_epoch(self, row: Mapping[str, float]) -> None:
        """Log the measured losses of one epoch (the NaN columns are left out)."""
        measured = [name for name in LOSS_COLUMNS if name not in ("epoch", "seconds") and not math.isnan(row[name])]
        losses = ", ".join(f"{name} {row[name]:.4f}" for name in measured)
        LOGGER.info("%s epoch %d/%d: %s; %.1f s", self.generator_name, row["epoch"], self.settings.epochs, losses,
                    row["seconds"])


def write_training_outputs(trainer: GANTrainer, model_path: str | Path, losses_path: str | Path,
                           hyperparameters: pd.DataFrame, hyperparameters_path: str | Path, figure_path: str | Path,
                           started: float) -> None:
    """Write the outputs of a training rule from a fitted trainer.

    Parameters
    ----------
    trainer : GANTrainer
        Fitted.
    model_path, losses_path : str or pathlib.Path
        ``model.pt`` and the per-epoch ``losses.csv``.
    hyperparameters : pandas.DataFrame
        The hyperparameter table, written to ``hyperparameters_path``.
    figure_path : str or pathlib.Path
        The loss curve figure, titled with ``trainer.generator_name``.
    started : float
        ``time.perf_counter()`` at the start of the stage, for the log line.
    """
    from iotsynth.plots_synthetic import plot_losses

    trainer.save(model_path)
    trainer.losses_.to_csv(losses_path, index=False)
    hyperparameters.to_csv(hyperparameters_path, index=False)
    plot_losses(trainer.losses_, figure_path, trainer.generator_name)
    LOGGER.info("wrote %s, %s, %s and %s; %d epochs (%d resumed) in %.1f s", model_path, losses_path,
                hyperparameters_path, figure_path, len(trainer.losses_), trainer.resumed_from_,
                time.perf_counter() - started)


def class_indices(frame: pd.DataFrame, class_names: Sequence[str], source: str = "the training split") -> np.ndarray:
    """Return the position of each row's device type in ``class_names``.

    Raises
    ------
    ValueError
        If ``frame`` has no ``device_type`` column or a device type that is
        not in ``class_names``.
    """
    if "device_type" not in frame.columns:
        raise ValueError(f"missing device_type column in {source}")
    labels = frame["device_type"].astype(str)
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise ValueError(f"{source} has device types without constraints: {unknown[:10]}; rebuild the constraints "
                         "from the same training split")
    return labels.map({name: index for index, name in enumerate(class_names)}).to_numpy(dtype=np.int64)
