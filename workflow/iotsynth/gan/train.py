"""Training of the graph-conditioned, constraint-guided conditional WGAN-GP.

The epoch loop, checkpoints and loss record are those of
:class:`iotsynth.gan.trainer_base.GANTrainer`. One epoch is
``ceil(rows / batch_size)`` generator updates, each preceded by
``critic_steps`` critic updates. Every update draws a fresh batch: first the
device types, with class weights ``n_k ** exponent`` (``class_sampling``),
then rows of those types uniformly.

Critic loss
    ``D(fake) - D(real) + lambda * (||grad D(x_hat)||_2 - 1)^2``, averaged
    over the batch, with ``x_hat`` a random point between a real row and a
    generated row of the same device type (WGAN-GP). The generated rows of
    the ``critic_steps`` updates come from one generator pass of
    ``critic_steps * batch_size`` rows (batch normalisation statistics are
    then taken over that pass).
Generator objective
    ``-D(fake)``, plus ``graph_loss_weight`` times the graph correlation loss
    (see :mod:`iotsynth.gan.layers`) when ``graph_loss`` is on, plus the
    weighted constraint penalties ``range``, ``correlation`` and ``protocol``
    (:meth:`iotsynth.constraints.ConstraintSet.torch_penalties`) when
    ``penalties`` is on. The generated rows are conditioned on the device
    types of a real batch, which is the reference of the graph loss.

A variant that trains without the graph loss or the penalties still logs
them, measured without gradients on every ``MONITOR_EVERY``-th generator
update (:mod:`iotsynth.gan.trainer_base`), so ``losses.csv`` compares
variants column by column.

Randomness: one seed gives one stream for the weight initialisation and one
``torch.Generator`` on the training device for batches, noise, Gumbel noise
and gradient-penalty mixing. The same seed, inputs and thread count give the
same losses and weights on the same machine.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from iotsynth.gan.layers import GraphCorrelationLoss, column_pair_weights, normalized_adjacency
from iotsynth.gan.models import Critic, Generator, save_generator
from iotsynth.gan.settings import CLASS_SAMPLING, WGANSettings
from iotsynth.gan.trainer_base import GANTrainer, class_indices, write_training_outputs

# Callers and tests import these names from this module, so it re-exports them.
from iotsynth.gan.trainer_base import LOSS_COLUMNS, MONITOR_EVERY, resolve_device  # noqa: F401

LOGGER = logging.getLogger(__name__)


class ClassBalancedSampler:
    """Draw batches of row indices with device-type weights ``n_k ** exponent``.

    Parameters
    ----------
    labels : torch.LongTensor of shape (n_rows,)
        Class index of each row, on the training device.
    n_classes : int
    exponent : float
        1 keeps the training mix, 0 gives every device type the same share.
    rng : torch.Generator
        On the device of ``labels``.
    """

    def __init__(self, labels: torch.Tensor, n_classes: int, exponent: float, rng: torch.Generator):
        counts = torch.bincount(labels, minlength=n_classes).to(torch.float64)
        weights = torch.where(counts > 0, counts.pow(exponent), torch.zeros_like(counts))
        self.class_probabilities = (weights / weights.sum()).to(torch.float32)
        self.counts = counts.to(torch.int64)
        self.order = torch.argsort(labels, stable=True)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.rng = rng

    def draw(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(row indices, class indices)``, each of shape (size,)."""
        classes = torch.multinomial(self.class_probabilities, size, replacement=True, generator=self.rng)
        uniform = torch.rand(size, generator=self.rng, device=classes.device)
        offsets = (uniform * self.counts[classes]).to(torch.int64).clamp(max=self.counts[classes] - 1)
        return self.order[self.starts[classes] + offsets], classes


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor,
                weight: float, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the WGAN-GP critic loss, the Wasserstein estimate and the gradient penalty.

    Real and generated rows go through the critic in one forward pass. The
    interpolates go through a pass of their own, because the second-order
    graph of the penalty would otherwise cover the other rows too. The
    penalty is the mean of ``(||grad_x D(x_hat)||_2 - 1)^2`` over random
    interpolates ``x_hat`` between each real row and the generated row of
    the same position.

    Returns
    -------
    loss : torch.Tensor
        ``mean D(fake) - mean D(real) + weight * penalty``, with gradients.
    wasserstein, penalty : torch.Tensor
        Detached scalars.
    """
    size = real.shape[0]
    scores = critic(torch.cat([real, fake]), condition.repeat(2, 1))
    wasserstein = scores[:size].mean() - scores[size:].mean()

    mix = torch.rand((size, 1), generator=rng, device=real.device)
    interpolates = (mix * real + (1.0 - mix) * fake).requires_grad_(True)
    (gradients,) = torch.autograd.grad(critic(interpolates, condition).sum(), interpolates, create_graph=True)
    penalty = (gradients.norm(2, dim=1) - 1.0).pow(2).mean()
    return -wasserstein + weight * penalty, wasserstein.detach(), penalty.detach()


class WGANTrainer(GANTrainer):
    """Fit the conditional WGAN-GP of one variant.

    The parameters and attributes not listed here are those of
    :class:`~iotsynth.gan.trainer_base.GANTrainer`.

    Parameters
    ----------
    settings : WGANSettings
    preprocessor : iotsynth.preprocess.Preprocessor
        Fitted; its layout shapes the networks and the penalties.
    adjacency : numpy.ndarray of shape (n_features, n_features), optional
        Feature graph weights in layout order; required by ``graph_layer``
        and ``graph_loss``.

    Attributes
    ----------
    generator_, critic_ : Generator, Critic
        Trained networks (on ``device_``); the generator is in evaluation mode.
    """

    def __init__(self, settings: WGANSettings, preprocessor, class_names: Sequence[str],
                 adjacency: np.ndarray | None = None, constraints=None, seed: int = 0,
                 checkpoint_dir: str | Path | None = None, progress: bool = True):
        super().__init__(settings, preprocessor, class_names, constraints, seed, checkpoint_dir, progress)
        self.adjacency = adjacency

    @property
    def generator_name(self) -> str:
        """The variant's name."""
        return self.settings.variant

    def _row_width(self) -> tuple[int, str]:
        return self.preprocessor.n_columns_, "the preprocessor"

    def _check_components(self) -> None:
        if (self.settings.graph_layer or self.settings.graph_loss) and self.adjacency is None:
            raise ValueError(f"variant {self.settings.variant} uses the feature graph; pass its adjacency")
        if self.settings.penalties and self.constraints is None:
            raise ValueError(f"variant {self.settings.variant} trains with constraint penalties; pass the constraint set")

    def _fingerprint_parts(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {} if self.adjacency is None else {"adjacency": self.adjacency}
        return arrays, {}

    def _build(self, x: np.ndarray, y: np.ndarray) -> None:
        """Create networks, optimisers, random streams and device tensors."""
        settings, layout = self.settings, self.preprocessor.layout_
        init_seed, train_seed = np.random.SeedSequence(self.seed).generate_state(2)
        init_rng = torch.Generator().manual_seed(int(init_seed))
        self.rng = torch.Generator(device=self.device_).manual_seed(int(train_seed))

        graph = normalized_adjacency(self.adjacency) if settings.graph_layer else None
        generator = Generator(settings, layout, len(self.class_names), graph)
        critic = Critic(x.shape[1], len(self.class_names), settings.critic_layers)
        generator.reset_parameters(init_rng)
        critic.reset_parameters(init_rng)
        self.generator_ = generator.to(self.device_).train()
        self.critic_ = critic.to(self.device_).train()
        self.generator_optimizer = torch.optim.Adam(self.generator_.parameters(), lr=settings.generator_learning_rate,
                                                    betas=settings.betas)
        self.critic_optimizer = torch.optim.Adam(self.critic_.parameters(), lr=settings.critic_learning_rate,
                                                 betas=settings.betas)

        self.x = torch.tensor(x, dtype=torch.float32, device=self.device_)
        self.y = torch.tensor(y, dtype=torch.int64, device=self.device_)
        self.conditions = torch.eye(len(self.class_names), device=self.device_)
        self.sampler = ClassBalancedSampler(self.y, len(self.class_names), CLASS_SAMPLING[settings.class_sampling],
                                            self.rng)
        self.graph_loss = None
        if self.adjacency is not None:
            self.graph_loss = GraphCorrelationLoss(column_pair_weights(self.adjacency, layout)).to(self.device_)

    def _critic_network(self) -> Critic:
        return self.critic_

    def _checkpoint_parts(self) -> dict[str, Any]:
        return {"generator": self.generator_, "critic": self.critic_, "generator_optimizer": self.generator_optimizer,
                "critic_optimizer": self.critic_optimizer}

    def _random_state(self) -> torch.Tensor:
        return self.rng.get_state()

    def _set_random_state(self, state: torch.Tensor) -> None:
        self.rng.set_state(state)

    def _write_model(self, path: str | Path, metadata: Mapping[str, Any]) -> None:
        """Write ``model.pt`` (see :func:`iotsynth.gan.models.save_generator`)."""
        save_generator(path, self.generator_, self.settings, self.class_names, self.preprocessor.layout_, metadata)

    def _noise(self, size: int) -> torch.Tensor:
        return torch.randn((size, self.settings.noise_dim), generator=self.rng, device=self.device_)

    def _critic_updates(self) -> dict[str, list[torch.Tensor]]:
        """Run ``critic_steps`` critic updates and return their losses.

        The generated rows of all updates come from one generator pass, since
        the generator does not change between them.
        """
        size, steps = self.settings.batch_size, self.settings.critic_steps
        rows, classes = self.sampler.draw(size * steps)
        with torch.no_grad():
            fakes = self.generator_(self._noise(size * steps), self.conditions[classes], self.rng)

        record: dict[str, list[torch.Tensor]] = {"critic_loss": [], "wasserstein": [], "gradient_penalty": []}
        for step in range(steps):
            part = slice(step * size, (step + 1) * size)
            loss, wasserstein, penalty = critic_loss(self.critic_, self.x[rows[part]], fakes[part],
                                                     self.conditions[classes[part]], self.settings.gradient_penalty,
                                                     self.rng)
            self.critic_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.critic_optimizer.step()
            record["critic_loss"].append(loss.detach())
            record["wasserstein"].append(wasserstein)
            record["gradient_penalty"].append(penalty)
        return record

    def _generator_objective(self, monitor: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        settings, size = self.settings, self.settings.batch_size
        rows, classes = self.sampler.draw(size)
        fake = self.generator_(self._noise(size), self.conditions[classes], self.rng)
        adversarial = -self.critic_(fake, self.conditions[classes]).mean()
        objective = adversarial
        record = {"generator_loss": adversarial.detach()}

        if self.graph_loss is not None and (settings.graph_loss or monitor):
            with torch.set_grad_enabled(settings.graph_loss):
                term = self.graph_loss(fake, self.x[rows])
            record["graph_loss"] = term.detach()
            if settings.graph_loss:
                objective = objective + settings.graph_loss_weight * term

        return self._add_penalties(objective, record, fake, classes, monitor), record


def training_arrays(frame: pd.DataFrame, preprocessor, class_names: Sequence[str],
                    source: str = "the training split") -> tuple[np.ndarray, np.ndarray]:
    """Return the scaled rows and class indices of a split.

    Raises
    ------
    ValueError
        If ``frame`` has no ``device_type`` column or a device type that is
        not in ``class_names``.
    """
    codes = class_indices(frame, class_names, source)
    return preprocessor.transform(frame), codes


def run_training_stage(train_path: str | Path, preprocessor_path: str | Path, adjacency_path: str | Path,
                       constraints_path: str | Path, model_path: str | Path, losses_path: str | Path,
                       hyperparameters_path: str | Path, figure_path: str | Path, checkpoint_dir: str | Path,
                       wgan_section: Mapping, generator_name: str, seed: int) -> WGANTrainer:
    """Run the ``train_generator`` rule for one variant.

    Parameters
    ----------
    train_path, preprocessor_path, adjacency_path, constraints_path : str or pathlib.Path
        Training split, preprocessor JSON, feature adjacency CSV and
        constraint set.
    model_path, losses_path, hyperparameters_path, figure_path : str or pathlib.Path
        Outputs: ``model.pt``, per-epoch ``losses.csv``, the hyperparameter
        table and the loss curve figure.
    checkpoint_dir : str or pathlib.Path
        Checkpoint folder; a killed run resumes from it.
    wgan_section : mapping
        The ``wgan`` config section.
    generator_name : str
        Key of ``wgan.variants``.
    seed : int

    Returns
    -------
    WGANTrainer
        The fitted trainer.
    """
    from iotsynth.constraints import ConstraintSet
    from iotsynth.gan.layers import align_adjacency
    from iotsynth.gan.settings import hyperparameter_table
    from iotsynth.graph import load_adjacency
    from iotsynth.preprocess import Preprocessor

    started = time.perf_counter()
    settings = WGANSettings.from_config(wgan_section, generator_name)
    preprocessor = Preprocessor.load(preprocessor_path)
    constraints = ConstraintSet.load(constraints_path)
    names, weights = load_adjacency(adjacency_path)
    adjacency = align_adjacency(names, weights, preprocessor.layout_)
    train = pd.read_parquet(train_path)
    x, y = training_arrays(train, preprocessor, constraints.device_types, str(train_path))
    LOGGER.info("read %s (%d rows), %s (%d columns), %s (%d edges), %s (%d device types)", train_path, len(train),
                preprocessor_path, x.shape[1], adjacency_path, int((np.triu(adjacency, 1) > 0).sum()),
                constraints_path, len(constraints.device_types))
    LOGGER.info("settings: %s", settings.to_dict())

    trainer = WGANTrainer(settings, preprocessor, constraints.device_types, adjacency, constraints, seed,
                          checkpoint_dir).fit(x, y)
    facts = {
        "training_rows": (len(x), "rows of the training split"),
        "columns": (x.shape[1], "columns of a row in the preprocessor's space"),
        "device_types": (len(constraints.device_types), "device types (condition classes)"),
        "generator_updates_per_epoch": (math.ceil(len(x) / settings.batch_size), "ceil(training_rows / batch_size)"),
        "graph_edges": (int((np.triu(adjacency, 1) > 0).sum()), "edges of the feature graph"),
        "seed": (seed, "seed of weights, batches and noise"),
    }
    write_training_outputs(trainer, model_path, losses_path, hyperparameter_table(settings, facts),
                           hyperparameters_path, figure_path, started)
    return trainer
