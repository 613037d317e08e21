"""Training loop of the graph-conditioned, constraint-guided conditional WGAN-GP.

One epoch is ``ceil(rows / batch_size)`` generator updates, each preceded by
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
update, so ``losses.csv`` compares variants column by column.

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

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from iotsynth.gan import checkpoints
from iotsynth.gan.layers import GraphCorrelationLoss, column_pair_weights, normalized_adjacency
from iotsynth.gan.models import Critic, Generator, save_generator
from iotsynth.gan.settings import CLASS_SAMPLING, PENALTY_SECTIONS, WGANSettings

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
# Loss columns that every epoch measures; a non-finite one means the
# weights have diverged.
CHECKED_LOSSES = ("critic_loss", "generator_loss", "wasserstein")


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
        raise RuntimeError("wgan.device is cuda but torch sees no CUDA device; set it to auto or cpu")
    return torch.device(requested)


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


class _LogStream:
    """File-like object that sends each tqdm refresh to the log as one line."""

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if text:
            LOGGER.info(text)

    def flush(self) -> None:
        pass


class WGANTrainer:
    """Fit the conditional WGAN-GP of one variant.

    Parameters
    ----------
    settings : WGANSettings
    preprocessor : iotsynth.preprocess.Preprocessor
        Fitted; its layout shapes the networks and the penalties.
    class_names : sequence of str
        Device type of each class index (``ConstraintSet.device_types``).
    adjacency : numpy.ndarray of shape (n_features, n_features), optional
        Feature graph weights in layout order; required by ``graph_layer``
        and ``graph_loss``.
    constraints : iotsynth.constraints.ConstraintSet, optional
        Required by ``penalties``; without it the penalty columns stay NaN.
    seed : int
    checkpoint_dir : str or pathlib.Path, optional
        Where checkpoints go; without it training neither saves nor resumes.
    progress : bool, default True
        Show a tqdm bar in the log.

    Attributes
    ----------
    generator_, critic_ : Generator, Critic
        Trained networks (on ``device_``).
    losses_ : pandas.DataFrame
        One row per epoch with ``LOSS_COLUMNS``.
    fingerprint_ : str
        Hash of inputs and settings that ties checkpoints to this run.
    device_ : torch.device
    resumed_from_ : int
        Epochs read from a checkpoint (0 for a fresh run).
    """

    def __init__(self, settings: WGANSettings, preprocessor, class_names: Sequence[str],
                 adjacency: np.ndarray | None = None, constraints=None, seed: int = 0,
                 checkpoint_dir: str | Path | None = None, progress: bool = True):
        self.settings = settings
        self.preprocessor = preprocessor
        self.class_names = list(class_names)
        self.adjacency = adjacency
        self.constraints = constraints
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    def fit(self, x: np.ndarray, y: np.ndarray) -> WGANTrainer:
        """Train on rows ``x`` of shape (n_rows, n_columns) with class indices ``y``.

        Resumes from the newest matching checkpoint in ``checkpoint_dir``.

        Returns
        -------
        WGANTrainer
            This object, with the attributes listed in the class docstring.
        """
        self._check_inputs(x, y)
        self.device_ = resolve_device(self.settings.device)
        self.fingerprint_ = self._fingerprint(x, y)
        self._build(x, y)
        start_epoch = self._resume()
        steps = math.ceil(len(x) / self.settings.batch_size)
        LOGGER.info(
            "training %s on %s: %d rows, %d columns, %d device types, %d generator updates per epoch, "
            "epochs %d to %d", self.settings.variant, self.device_, len(x), x.shape[1], len(self.class_names),
            steps, start_epoch + 1, self.settings.epochs,
        )

        bar = tqdm(range(start_epoch, self.settings.epochs), total=self.settings.epochs, initial=start_epoch,
                   disable=not self.progress, file=_LogStream(), ascii=True, ncols=110, mininterval=0,
                   desc=self.settings.variant)
        for epoch in bar:
            row = self._run_epoch(epoch + 1, steps)
            check_finite_losses(row, self.settings.variant, self.checkpoint_dir)
            self.losses_rows.append(row)
            bar.set_postfix(critic=f"{row['critic_loss']:.3f}", generator=f"{row['generator_loss']:.3f}",
                            w=f"{row['wasserstein']:.3f}", refresh=False)
            if self.checkpoint_dir is not None and (
                (epoch + 1) % self.settings.checkpoint_every == 0 or epoch + 1 == self.settings.epochs
            ):
                self._checkpoint(epoch + 1)
        bar.close()

        self.losses_ = pd.DataFrame(self.losses_rows, columns=list(LOSS_COLUMNS))
        self.generator_.eval()
        return self

    def save(self, path: str | Path) -> None:
        """Write the trained generator as ``model.pt`` (see :func:`iotsynth.gan.models.save_generator`)."""
        metadata = {
            "epochs": int(len(self.losses_)),
            "seed": int(self.seed),
            "fingerprint": self.fingerprint_,
            "trained_on": str(self.device_),
            "torch_version": str(torch.__version__),
        }
        save_generator(path, self.generator_, self.settings, self.class_names, self.preprocessor.layout_, metadata)

    def _check_inputs(self, x: np.ndarray, y: np.ndarray) -> None:
        n_columns = self.preprocessor.n_columns_
        if x.ndim != 2 or x.shape[1] != n_columns:
            raise ValueError(f"training rows have shape {x.shape}; expected (n_rows, {n_columns}) from the preprocessor")
        if y.shape != (len(x),):
            raise ValueError(f"class indices have shape {y.shape}; expected ({len(x)},)")
        if len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
            raise ValueError(f"class indices must lie in [0, {len(self.class_names)}), got {y.min()} to {y.max()}")
        if len(x) < self.settings.batch_size:
            raise ValueError(f"{len(x)} training rows are fewer than wgan.batch_size {self.settings.batch_size}")
        if (self.settings.graph_layer or self.settings.graph_loss) and self.adjacency is None:
            raise ValueError(f"variant {self.settings.variant} uses the feature graph; pass its adjacency")
        if self.settings.penalties and self.constraints is None:
            raise ValueError(f"variant {self.settings.variant} trains with constraint penalties; pass the constraint set")

    def _fingerprint(self, x: np.ndarray, y: np.ndarray) -> str:
        arrays = {"x": x, "y": y}
        if self.adjacency is not None:
            arrays["adjacency"] = self.adjacency
        documents = {"layout": self.preprocessor.layout_, "class_names": self.class_names}
        if self.constraints is not None:
            documents["constraints"] = self.constraints.document
        return checkpoints.fingerprint(self.settings.to_dict(), self.seed, arrays, documents)

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
        self.losses_rows = []
        self.resumed_from_ = 0

    def _resume(self) -> int:
        """Load the newest matching checkpoint; return the epochs it had completed."""
        if self.checkpoint_dir is None:
            return 0
        state = checkpoints.load_latest(self.checkpoint_dir, self.fingerprint_, self.settings.epochs)
        if state is None:
            LOGGER.info("no checkpoint to resume in %s; training from epoch 1", self.checkpoint_dir)
            return 0
        self.generator_.load_state_dict(state["generator"])
        self.critic_.load_state_dict(state["critic"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.rng.set_state(state["rng_state"])
        self.losses_rows = [dict(row) for row in state["losses"]]
        self.resumed_from_ = int(state["epoch"])
        LOGGER.info("resumed from the checkpoint after epoch %d in %s", self.resumed_from_, self.checkpoint_dir)
        return self.resumed_from_

    def _checkpoint(self, epoch: int) -> None:
        state = {
            "fingerprint": self.fingerprint_,
            "generator": self.generator_.state_dict(),
            "critic": self.critic_.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "rng_state": self.rng.get_state(),
            "losses": self.losses_rows,
        }
        path = checkpoints.save_checkpoint(self.checkpoint_dir, epoch, state, self.settings.keep_checkpoints)
        LOGGER.info("wrote checkpoint %s", path)

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

    def _generator_step(self, monitor: bool) -> dict[str, torch.Tensor]:
        settings, size = self.settings, self.settings.batch_size
        rows, classes = self.sampler.draw(size)
        fake = self.generator_(self._noise(size), self.conditions[classes], self.rng)
        # The critic's weights stay fixed here, so its gradients are not computed.
        self.critic_.requires_grad_(False)
        adversarial = -self.critic_(fake, self.conditions[classes]).mean()
        objective = adversarial
        record = {"generator_loss": adversarial.detach()}

        if self.graph_loss is not None and (settings.graph_loss or monitor):
            with torch.set_grad_enabled(settings.graph_loss):
                term = self.graph_loss(fake, self.x[rows])
            record["graph_loss"] = term.detach()
            if settings.graph_loss:
                objective = objective + settings.graph_loss_weight * term

        if self.constraints is not None and (settings.penalties or monitor):
            with torch.set_grad_enabled(settings.penalties):
                terms = self.constraints.torch_penalties(fake, classes, self.preprocessor)
            for section in PENALTY_SECTIONS:
                record[f"penalty_{section}"] = terms[section].detach()
                if settings.penalties:
                    objective = objective + settings.penalty_weights[section] * terms[section]

        self.generator_optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.generator_optimizer.step()
        self.critic_.requires_grad_(True)
        record["generator_objective"] = objective.detach()
        return record

    def _run_epoch(self, epoch: int, steps: int) -> dict[str, float]:
        """Run one epoch and return its row of ``losses.csv`` (means over the epoch's updates)."""
        started = time.perf_counter()
        totals: dict[str, list[torch.Tensor]] = {}
        for step in range(steps):
            for name, values in self._critic_updates().items():
                totals.setdefault(name, []).extend(values)
            for name, value in self._generator_step(monitor=step % MONITOR_EVERY == 0).items():
                totals.setdefault(name, []).append(value)

        row = {name: math.nan for name in LOSS_COLUMNS}
        row.update({name: float(torch.stack(values).mean()) for name, values in totals.items()})
        row["epoch"] = epoch
        row["seconds"] = time.perf_counter() - started
        return row


def training_arrays(frame: pd.DataFrame, preprocessor, class_names: Sequence[str],
                    source: str = "the training split") -> tuple[np.ndarray, np.ndarray]:
    """Return the scaled rows and class indices of a split.

    Raises
    ------
    ValueError
        If a device type of ``frame`` is not in ``class_names``.
    """
    if "device_type" not in frame.columns:
        raise ValueError(f"{source} has no device_type column")
    labels = frame["device_type"].astype(str)
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise ValueError(f"{source} has device types without constraints: {unknown[:10]}; rebuild the constraints "
                         "from the same training split")
    codes = labels.map({name: index for index, name in enumerate(class_names)}).to_numpy(dtype=np.int64)
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
    from iotsynth.plots_synthetic import plot_losses
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
    trainer.save(model_path)
    trainer.losses_.to_csv(losses_path, index=False)
    facts = {
        "training_rows": (len(x), "rows of the training split"),
        "columns": (x.shape[1], "columns of a row in the preprocessor's space"),
        "device_types": (len(constraints.device_types), "device types (condition classes)"),
        "generator_updates_per_epoch": (math.ceil(len(x) / settings.batch_size), "ceil(training_rows / batch_size)"),
        "graph_edges": (int((np.triu(adjacency, 1) > 0).sum()), "edges of the feature graph"),
        "seed": (seed, "seed of weights, batches and noise"),
    }
    hyperparameter_table(settings, facts).to_csv(hyperparameters_path, index=False)
    plot_losses(trainer.losses_, figure_path, generator_name)
    LOGGER.info("wrote %s, %s, %s and %s; %d epochs (%d resumed) in %.1f s", model_path, losses_path,
                hyperparameters_path, figure_path, len(trainer.losses_), trainer.resumed_from_,
                time.perf_counter() - started)
    return trainer
