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
    killed run resume. The epoch loop, checkpoints, loss record and progress
    logging are the WGAN's (:class:`iotsynth.gan.trainer_base.GANTrainer`).
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ctgan.data_sampler import DataSampler
from ctgan.data_transformer import SpanInfo

from iotsynth.ctgan_guided.model import ConditionalGenerator, build_discriminator, save_ctgan
from iotsynth.ctgan_guided.settings import GENERATOR_NAME, CTGANSettings
from iotsynth.gan.models import initialize_linear_layers
from iotsynth.gan.trainer_base import GANTrainer

# The CTGAN stage and tests import class_indices from this module, so it re-exports it.
from iotsynth.gan.trainer_base import class_indices  # noqa: F401


class CTGANTrainer(GANTrainer):
    """Fit the conditional, constraint-guided CTGAN.

    The parameters and attributes not listed here are those of
    :class:`~iotsynth.gan.trainer_base.GANTrainer`. The ``graph_loss``
    column of ``losses_`` stays NaN.

    Parameters
    ----------
    settings : CTGANSettings
    specs : sequence of dict
        Column specs of the fitted transformer
        (:func:`~iotsynth.ctgan_guided.transformer.column_specs`).

    Attributes
    ----------
    generator_ : ConditionalGenerator
        Trained, in evaluation mode, on ``device_``.
    discriminator_ : ctgan.synthesizers.ctgan.Discriminator
    """

    RANDOM_STATE_KEY = "random_states"

    def __init__(self, settings: CTGANSettings, specs: Sequence[Mapping], preprocessor, class_names: Sequence[str],
                 constraints=None, seed: int = 0, checkpoint_dir: str | Path | None = None, progress: bool = True):
        super().__init__(settings, preprocessor, class_names, constraints, seed, checkpoint_dir, progress)
        self.specs = [dict(spec) for spec in specs]

    @property
    def generator_name(self) -> str:
        """``ctgan``."""
        return GENERATOR_NAME

    def fit(self, data: np.ndarray, y: np.ndarray) -> CTGANTrainer:
        """Train on rows ``data`` in CTGAN's space, of shape (n_rows, width), with class indices ``y``.

        ``data`` is converted to contiguous float32 and ``y`` to int64
        first; the rest is :meth:`GANTrainer.fit`, which returns this object.
        """
        return super().fit(np.ascontiguousarray(data, dtype=np.float32), np.asarray(y, dtype=np.int64))

    def _seeds(self) -> tuple[int, int, int]:
        """Return the seeds of the weights, of torch's global generator and of NumPy's global generator."""
        init_seed, torch_seed, numpy_seed = np.random.SeedSequence(self.seed).generate_state(3)
        return int(init_seed), int(torch_seed), int(numpy_seed)

    def _row_width(self) -> tuple[int, str]:
        return sum(spec["width"] for spec in self.specs), "the CTGAN transformer the specs came from"

    def _check_components(self) -> None:
        if self.settings.penalties and self.constraints is None:
            raise ValueError("ctgan.penalties is on; pass the constraint set")

    def _fingerprint_parts(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"specs": self.specs, "format": "ctgan"}

    def _random_scope(self) -> AbstractContextManager:
        # Building the networks inside the block keeps the global draws of
        # their default initialisation out of the caller's random stream.
        _, torch_seed, numpy_seed = self._seeds()
        return _seeded_global_generators(self.device_, torch_seed, numpy_seed)

    def _build(self, data: np.ndarray, y: np.ndarray) -> None:
        """Create networks (weights drawn from the first seed), optimisers and the condition sampler."""
        settings = self.settings
        init_rng = torch.Generator().manual_seed(self._seeds()[0])

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

    def _critic_network(self) -> torch.nn.Module:
        return self.discriminator_

    def _checkpoint_parts(self) -> dict[str, Any]:
        return {"generator": self.generator_, "discriminator": self.discriminator_,
                "generator_optimizer": self.generator_optimizer,
                "discriminator_optimizer": self.discriminator_optimizer}

    def _random_state(self) -> dict:
        return _global_states(self.device_)

    def _set_random_state(self, state: Mapping) -> None:
        _set_global_states(state, self.device_)

    def _model_metadata(self) -> dict[str, Any]:
        return {**super()._model_metadata(), "ctgan_version": package_metadata.version("ctgan"),
                "rdt_version": package_metadata.version("rdt")}

    def _write_model(self, path: str | Path, metadata: Mapping[str, Any]) -> None:
        """Write ``model.pt`` (see :func:`iotsynth.ctgan_guided.model.save_ctgan`)."""
        save_ctgan(path, self.generator_, self.settings, self.class_names, self.preprocessor.layout_, self.specs,
                   metadata)

    def _conditions(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Draw condition vectors: ``(one-hot tensor, column ids, class indices)``."""
        condition, _, column, category = self.sampler.sample_condvec(self.settings.batch_size)
        return torch.from_numpy(condition).to(self.device_), column, category

    def _noise(self) -> torch.Tensor:
        return torch.randn((self.settings.batch_size, self.settings.noise_dim), device=self.device_)

    def _critic_updates(self) -> dict[str, list[torch.Tensor]]:
        record: dict[str, list[torch.Tensor]] = {}
        for _ in range(self.settings.critic_steps):
            for name, value in self._discriminator_step().items():
                record.setdefault(name, []).append(value)
        return record

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

    def _generator_objective(self, monitor: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        condition, _, category = self._conditions()
        fake = self.generator_(self._noise(), condition)
        adversarial = -self.discriminator_(torch.cat([fake, condition], dim=1)).mean()
        record = {"generator_loss": adversarial.detach()}
        classes = torch.from_numpy(category.astype(np.int64)).to(self.device_)
        return self._add_penalties(adversarial, record, fake, classes, monitor), record

    def _penalty_rows(self, fake: torch.Tensor) -> torch.Tensor:
        return self.generator_.activation.to_preprocessed(fake)


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
