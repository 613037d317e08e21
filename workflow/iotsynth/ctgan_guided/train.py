"""Training of the constraint-guided CTGAN baseline on the library's components.

The transformer (:mod:`~iotsynth.ctgan_guided.transformer`), the condition
sampler (``ctgan.data_sampler.DataSampler``), the residual generator and the
PacGAN discriminator with its gradient penalty are those of ctgan 0.12.1.
The loop follows ``ctgan.CTGAN.fit`` with these differences:

Condition vector
    The library conditions each row on one value of a randomly chosen
    discrete column. Here the DataSampler is built over the device type
    one-hot alone, so the condition vector is the device type, as in the
    WGAN, and the comparison of the two generators is not confounded by
    what they condition on. Training-by-sampling still works as in the
    library: a device type is drawn with weight ``log(1 + rows)``
    (``ctgan.log_frequency``), then a real row of that type. The device
    type is not a generated column, so the library's cross-entropy
    condition loss has nothing to act on and is left out.
Generator objective
    ``-D(fake)`` plus the weighted constraint penalties ``range``,
    ``correlation`` and ``protocol`` of
    :meth:`iotsynth.constraints.ConstraintSet.torch_penalties`, evaluated
    on the generated rows mapped into the preprocessor's space by
    :class:`~iotsynth.ctgan_guided.bridge.CTGANOutput` (the same penalties
    as the WGAN).
Budget
    Epochs, batch size, discriminator steps per generator step (5; the
    library's default is 1), learning rates (1e-4; library 2e-4), Adam
    betas and gradient penalty weight come from the ``wgan`` section, so
    both generators get the same budget. An epoch is
    ``ceil(rows / batch_size)`` generator updates as in the WGAN (the
    library rounds down). ``pac`` is 8, because the library's 10 does not
    divide the batch size of 512.
Discriminator update
    The fake rows are generated without gradient (the library builds the
    generator's graph there and discards it), and the critic loss and
    gradient penalty go through one backward pass. The update is the same.
Record and resumption
    ``losses.csv`` contains per-epoch means over all updates (the library
    keeps the last batch only), in the WGAN's columns. Checkpoints let a
    killed run resume, as in the WGAN.
Randomness
    One seed drives everything. Weights are initialised from an explicit
    ``torch.Generator``. The library's sampler draws from NumPy's global
    state, and its dropout and gradient penalty from torch's, so training
    runs with both global states seeded, restored afterwards and stored in
    checkpoints. The same seed, inputs and thread count give the same
    losses on the same machine.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ctgan.data_sampler import DataSampler
from ctgan.data_transformer import SpanInfo

from iotsynth.ctgan_guided.model import ConditionalGenerator, build_discriminator, save_ctgan
from iotsynth.ctgan_guided.settings import PENALTY_SECTIONS, CTGANSettings
from iotsynth.gan import checkpoints
from iotsynth.gan.models import initialize_linear_layers
from iotsynth.gan.train import LOSS_COLUMNS, MONITOR_EVERY, check_finite_losses, resolve_device

LOGGER = logging.getLogger(__name__)

# An epoch that runs longer than this logs its progress at this interval.
PROGRESS_SECONDS = 60.0


class CTGANTrainer:
    """Fit the conditional, constraint-guided CTGAN.

    Parameters
    ----------
    settings : CTGANSettings
    specs : sequence of dict
        Column specs of the fitted transformer
        (:func:`~iotsynth.ctgan_guided.transformer.column_specs`).
    preprocessor : iotsynth.preprocess.Preprocessor
        Fitted; the penalties work in its space.
    class_names : sequence of str
        Device type of each class index (``ConstraintSet.device_types``).
    constraints : iotsynth.constraints.ConstraintSet, optional
        Required when ``settings.penalties`` is on; without it the penalty
        columns stay NaN.
    seed : int
    checkpoint_dir : str or pathlib.Path, optional
        Where checkpoints go; without it training neither saves nor resumes.

    Attributes
    ----------
    generator_ : ConditionalGenerator
        Trained, in evaluation mode, on ``device_``.
    discriminator_ : ctgan.synthesizers.ctgan.Discriminator
    losses_ : pandas.DataFrame
        One row per epoch with the WGAN's ``LOSS_COLUMNS`` (``graph_loss``
        stays NaN).
    fingerprint_ : str
    device_ : torch.device
    resumed_from_ : int
        Epochs read from a checkpoint (0 for a fresh run).
    """

    def __init__(self, settings: CTGANSettings, specs: Sequence[Mapping], preprocessor, class_names: Sequence[str],
                 constraints=None, seed: int = 0, checkpoint_dir: str | Path | None = None):
        self.settings = settings
        self.specs = [dict(spec) for spec in specs]
        self.preprocessor = preprocessor
        self.class_names = list(class_names)
        self.constraints = constraints
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir

    def fit(self, data: np.ndarray, y: np.ndarray) -> CTGANTrainer:
        """Train on rows ``data`` in CTGAN's space, of shape (n_rows, width), with class indices ``y``.

        Resumes from the newest matching checkpoint in ``checkpoint_dir``.

        Returns
        -------
        CTGANTrainer
            This object, with the attributes listed in the class docstring.
        """
        data = np.ascontiguousarray(data, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        self._check_inputs(data, y)
        self.device_ = resolve_device(self.settings.device)
        self.fingerprint_ = self._fingerprint(data, y)
        init_seed, torch_seed, numpy_seed = (int(value) for value in np.random.SeedSequence(self.seed).generate_state(3))
        steps = math.ceil(len(data) / self.settings.batch_size)

        # Building the networks inside the block keeps the global draws of
        # their default initialisation out of the caller's random stream.
        with _seeded_global_generators(self.device_, torch_seed, numpy_seed):
            self._build(data, y, init_seed)
            start_epoch = self._resume()
            LOGGER.info("training ctgan on %s: %d rows, %d columns in CTGAN's space, %d device types, %d generator "
                        "updates per epoch, epochs %d to %d", self.device_, len(data), data.shape[1],
                        len(self.class_names), steps, start_epoch + 1, self.settings.epochs)
            for epoch in range(start_epoch + 1, self.settings.epochs + 1):
                row = self._run_epoch(epoch, steps)
                check_finite_losses(row, "ctgan", self.checkpoint_dir)
                self.losses_rows.append(row)
                _log_epoch(row, self.settings.epochs)
                if self.checkpoint_dir is not None and (
                    epoch % self.settings.checkpoint_every == 0 or epoch == self.settings.epochs
                ):
                    self._checkpoint(epoch)

        self.losses_ = pd.DataFrame(self.losses_rows, columns=list(LOSS_COLUMNS))
        self.generator_.eval()
        return self

    def save(self, path: str | Path) -> None:
        """Write the trained generator as ``model.pt`` (see :func:`iotsynth.ctgan_guided.model.save_ctgan`)."""
        metadata = {
            "epochs": int(len(self.losses_)),
            "seed": int(self.seed),
            "fingerprint": self.fingerprint_,
            "trained_on": str(self.device_),
            "torch_version": str(torch.__version__),
            "ctgan_version": package_metadata.version("ctgan"),
            "rdt_version": package_metadata.version("rdt"),
        }
        save_ctgan(path, self.generator_, self.settings, self.class_names, self.preprocessor.layout_, self.specs,
                   metadata)

    def _check_inputs(self, data: np.ndarray, y: np.ndarray) -> None:
        width = sum(spec["width"] for spec in self.specs)
        if data.ndim != 2 or data.shape[1] != width:
            raise ValueError(f"training rows have shape {data.shape}; expected (n_rows, {width}) from the CTGAN "
                             "transformer the specs came from")
        if y.shape != (len(data),):
            raise ValueError(f"class indices have shape {y.shape}; expected ({len(data)},)")
        if len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
            raise ValueError(f"class indices must lie in [0, {len(self.class_names)}), got {y.min()} to {y.max()}")
        if len(data) < self.settings.batch_size:
            raise ValueError(f"{len(data)} training rows are fewer than wgan.batch_size {self.settings.batch_size}")
        if self.settings.penalties and self.constraints is None:
            raise ValueError("ctgan.penalties is on; pass the constraint set")

    def _fingerprint(self, data: np.ndarray, y: np.ndarray) -> str:
        documents = {"layout": self.preprocessor.layout_, "class_names": self.class_names, "specs": self.specs,
                     "format": "ctgan"}
        if self.constraints is not None:
            documents["constraints"] = self.constraints.document
        return checkpoints.fingerprint(self.settings.to_dict(), self.seed, {"x": data, "y": y}, documents)

    def _build(self, data: np.ndarray, y: np.ndarray, init_seed: int) -> None:
        """Create networks (weights drawn from ``init_seed``), optimisers and the condition sampler."""
        settings = self.settings
        init_rng = torch.Generator().manual_seed(init_seed)

        n_classes = len(self.class_names)
        generator = ConditionalGenerator(settings, self.specs, self.preprocessor.layout_, n_classes)
        discriminator = build_discriminator(settings, generator.activation.width, n_classes)
        generator.reset_parameters(init_rng)
        initialize_linear_layers(discriminator, init_rng)
        self.generator_ = generator.to(self.device_).train()
        self.discriminator_ = discriminator.to(self.device_).train()
        self.generator_optimizer = torch.optim.Adam(self.generator_.parameters(), lr=settings.generator_learning_rate,
                                                    betas=settings.betas, weight_decay=settings.weight_decay)
        self.discriminator_optimizer = torch.optim.Adam(self.discriminator_.parameters(),
                                                        lr=settings.critic_learning_rate, betas=settings.betas,
                                                        weight_decay=settings.weight_decay)

        # The sampler is given one discrete column, the device type, so
        # every condition vector is a device type one-hot.
        labels = np.zeros((len(y), n_classes), dtype=np.float32)
        labels[np.arange(len(y)), y] = 1.0
        self.sampler = DataSampler(labels, [[SpanInfo(n_classes, "softmax")]], settings.log_frequency)
        self.data = data
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
        self.discriminator_.load_state_dict(state["discriminator"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
        _set_global_states(state["random_states"], self.device_)
        self.losses_rows = [dict(row) for row in state["losses"]]
        self.resumed_from_ = int(state["epoch"])
        LOGGER.info("resumed from the checkpoint after epoch %d in %s", self.resumed_from_, self.checkpoint_dir)
        return self.resumed_from_

    def _checkpoint(self, epoch: int) -> None:
        state = {
            "fingerprint": self.fingerprint_,
            "generator": self.generator_.state_dict(),
            "discriminator": self.discriminator_.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "discriminator_optimizer": self.discriminator_optimizer.state_dict(),
            "random_states": _global_states(self.device_),
            "losses": self.losses_rows,
        }
        path = checkpoints.save_checkpoint(self.checkpoint_dir, epoch, state, self.settings.keep_checkpoints)
        LOGGER.info("wrote checkpoint %s", path)

    def _conditions(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Draw condition vectors: ``(one-hot tensor, column ids, class indices)``."""
        condition, _, column, category = self.sampler.sample_condvec(self.settings.batch_size)
        return torch.from_numpy(condition).to(self.device_), column, category

    def _noise(self) -> torch.Tensor:
        return torch.randn((self.settings.batch_size, self.settings.noise_dim), device=self.device_)

    def _discriminator_step(self) -> dict[str, torch.Tensor]:
        size = self.settings.batch_size
        noise = self._noise()
        condition, column, category = self._conditions()
        # As in the library: real rows follow the same conditions in another
        # order, so a PacGAN group does not pair real and fake rows by class.
        order = np.random.permutation(size)
        real = torch.from_numpy(self.sampler.sample_data(self.data, size, column[order], category[order]))
        real = torch.cat([real.to(self.device_), condition[order]], dim=1)
        with torch.no_grad():
            fake = torch.cat([self.generator_(noise, condition), condition], dim=1)
        # The library's gradient penalty differentiates with respect to the
        # interpolates, so one of its inputs must require a gradient. A leaf
        # here leaves the generator out of this backward pass.
        fake.requires_grad_(True)

        real_score = self.discriminator_(real).mean()
        fake_score = self.discriminator_(fake).mean()
        penalty = self.discriminator_.calc_gradient_penalty(real, fake, self.device_, self.settings.pac, lambda_=1.0)
        loss = fake_score - real_score + self.settings.gradient_penalty * penalty

        self.discriminator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.discriminator_optimizer.step()
        return {"critic_loss": loss.detach(), "wasserstein": (real_score - fake_score).detach(),
                "gradient_penalty": penalty.detach()}

    def _generator_step(self, monitor: bool) -> dict[str, torch.Tensor]:
        settings = self.settings
        condition, _, category = self._conditions()
        fake = self.generator_(self._noise(), condition)
        # The discriminator's weights stay fixed here, so its gradients are not computed.
        self.discriminator_.requires_grad_(False)
        adversarial = -self.discriminator_(torch.cat([fake, condition], dim=1)).mean()
        objective = adversarial
        record = {"generator_loss": adversarial.detach()}

        if self.constraints is not None and (settings.penalties or monitor):
            classes = torch.from_numpy(category.astype(np.int64)).to(self.device_)
            with torch.set_grad_enabled(settings.penalties):
                rows = self.generator_.activation.to_preprocessed(fake)
                terms = self.constraints.torch_penalties(rows, classes, self.preprocessor)
            for section in PENALTY_SECTIONS:
                record[f"penalty_{section}"] = terms[section].detach()
                if settings.penalties:
                    objective = objective + settings.penalty_weights[section] * terms[section]

        self.generator_optimizer.zero_grad(set_to_none=True)
        objective.backward()
        self.generator_optimizer.step()
        self.discriminator_.requires_grad_(True)
        record["generator_objective"] = objective.detach()
        return record

    def _run_epoch(self, epoch: int, steps: int) -> dict[str, float]:
        """Run one epoch and return its row of ``losses.csv`` (means over the epoch's updates)."""
        started = last_report = time.perf_counter()
        totals: dict[str, list[torch.Tensor]] = {}
        for step in range(steps):
            for _ in range(self.settings.critic_steps):
                for name, value in self._discriminator_step().items():
                    totals.setdefault(name, []).append(value)
            for name, value in self._generator_step(monitor=step % MONITOR_EVERY == 0).items():
                totals.setdefault(name, []).append(value)
            if time.perf_counter() - last_report > PROGRESS_SECONDS:
                last_report = time.perf_counter()
                LOGGER.info("epoch %d: %d of %d generator updates in %.0f s", epoch, step + 1, steps,
                            last_report - started)

        row = {name: math.nan for name in LOSS_COLUMNS}
        row.update({name: float(torch.stack(values).mean()) for name, values in totals.items()})
        row["epoch"] = epoch
        row["seconds"] = time.perf_counter() - started
        return row


def _log_epoch(row: Mapping[str, float], epochs: int) -> None:
    LOGGER.info("epoch %d/%d: critic %.4f, generator %.4f, wasserstein %.4f, penalties range %.4f correlation %.4f "
                "protocol %.4f, %.1f s", row["epoch"], epochs, row["critic_loss"], row["generator_loss"],
                row["wasserstein"], row["penalty_range"], row["penalty_correlation"], row["penalty_protocol"],
                row["seconds"])


@contextlib.contextmanager
def _seeded_global_generators(device: torch.device, torch_seed: int, numpy_seed: int) -> Iterator[None]:
    """Seed torch's and NumPy's global generators for the block and restore them afterwards."""
    numpy_state = np.random.get_state()
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(torch_seed)
        np.random.seed(numpy_seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def _global_states(device: torch.device) -> dict:
    """Return the global generator states as tensors and numbers, which ``torch.load(weights_only=True)`` reads."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy_kind": str(kind),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_position": int(position),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached_gaussian": float(cached),
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _set_global_states(states: Mapping, device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
    keys = states["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((states["numpy_kind"], keys, states["numpy_position"], states["numpy_has_gauss"],
                         states["numpy_cached_gaussian"]))


def class_indices(frame: pd.DataFrame, class_names: Sequence[str], source: str = "the training split") -> np.ndarray:
    """Return the position of each row's device type in ``class_names``.

    Raises
    ------
    ValueError
        If ``frame`` has no ``device_type`` column or a device type that is
        not in ``class_names``.
    """
    if "device_type" not in frame.columns:
        raise ValueError(f"{source} has no device_type column")
    codes = pd.Categorical(frame["device_type"].astype(str), categories=list(class_names)).codes
    if (codes < 0).any():
        unknown = sorted(set(frame["device_type"].astype(str)) - set(class_names))
        raise ValueError(f"{source} has device types without constraints: {unknown[:10]}; rebuild the constraints "
                         "from the same training split")
    return codes.astype(np.int64)
