"""Settings of the constraint-guided CTGAN baseline, read from the configuration.

The baseline shares its training budget with the WGAN: epochs, batch size,
critic steps, noise length, layer widths, learning rates, Adam betas,
gradient penalty weight, constraint penalty weights, checkpoints and device
come from the ``wgan`` config section. The ``ctgan`` section holds only what
CTGAN has and the WGAN has not: its data transformer, the PacGAN group size,
Adam weight decay, the Gumbel-softmax temperature, the class mix of its
condition vectors, and the switches for penalties and rejection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from iotsynth.gan.settings import (
    TrainingSettings,
    budget_from_config,
    check_positive_int,
    parameter_rows,
    parameter_table,
)

# The generator's name in file names, figure titles and the synthetic rows.
GENERATOR_NAME = "ctgan"

# One line per hyperparameter for the hyperparameter table, in table order.
DESCRIPTIONS = {
    "epochs": "passes over the training rows; one pass is ceil(rows / batch_size) generator updates (wgan.epochs)",
    "batch_size": "rows per discriminator and generator update (wgan.batch_size)",
    "critic_steps": "discriminator updates per generator update (wgan.critic_steps)",
    "noise_dim": "length of the Gaussian noise vector, CTGAN's embedding_dim (wgan.noise_dim)",
    "generator_layers": "widths of the generator's residual layers (wgan.generator_layers)",
    "critic_layers": "hidden widths of the discriminator (Linear, LeakyReLU 0.2, Dropout 0.5) (wgan.critic_layers)",
    "generator_learning_rate": "Adam learning rate of the generator (wgan.learning_rate.generator)",
    "critic_learning_rate": "Adam learning rate of the discriminator (wgan.learning_rate.critic)",
    "betas": "Adam (beta1, beta2) of both optimisers (wgan.betas)",
    "gradient_penalty": "weight lambda of the PacGAN gradient penalty (wgan.gradient_penalty)",
    "penalty_range": "weight of the range constraint penalty (wgan.penalties.range)",
    "penalty_correlation": "weight of the correlation constraint penalty (wgan.penalties.correlation)",
    "penalty_protocol": "weight of the protocol rule penalty (wgan.penalties.protocol)",
    "checkpoint_every": "epochs between checkpoints (wgan.checkpoint_every)",
    "keep_checkpoints": "most recent checkpoints kept on disk (wgan.keep_checkpoints)",
    "device": "torch device: auto (CUDA when available), cpu or cuda (wgan.device)",
    "pac": "rows the discriminator scores together (PacGAN); batch_size must be a multiple (ctgan.pac)",
    "weight_decay": "Adam weight decay of both optimisers (ctgan.weight_decay)",
    "gumbel_temperature": "Gumbel-softmax temperature of every one-hot span while training (ctgan.gumbel_temperature)",
    "log_frequency": "device types of condition vectors drawn with weight log(1 + rows) instead of rows "
                     "(ctgan.log_frequency)",
    "penalties": "constraint penalty terms are part of the generator objective (ctgan.penalties)",
}
TRANSFORMER_DESCRIPTIONS = {
    "max_clusters": "most mixture components per continuous column (ctgan.transformer.max_clusters)",
    "weight_threshold": "mixture weight below which a component is dropped (ctgan.transformer.weight_threshold)",
    "discrete_max_values": "discrete features with at most this many training values are one-hot encoded "
                           "(ctgan.transformer.discrete_max_values)",
}


@dataclass(frozen=True)
class TransformerSettings:
    """Settings of CTGAN's data transformer (config section ``ctgan.transformer``).

    Parameters
    ----------
    max_clusters : int, default 10
        Most Gaussian mixture components per continuous column (the
        library's default).
    weight_threshold : float, default 0.005
        Mixture weight below which a component is dropped (the library's
        default).
    discrete_max_values : int, default 16
        A feature of kind ``discrete`` with at most this many distinct
        training values is one-hot encoded like a categorical feature. One
        with more values gets a mixture model, and 0 gives every discrete
        feature a mixture model.
    """

    max_clusters: int = 10
    weight_threshold: float = 0.005
    discrete_max_values: int = 16

    def __post_init__(self) -> None:
        check_positive_int("ctgan.transformer.max_clusters", self.max_clusters)
        if not 0.0 <= self.weight_threshold < 1.0:
            raise ValueError(f"ctgan.transformer.weight_threshold must be in [0, 1), got {self.weight_threshold!r}")
        if isinstance(self.discrete_max_values, bool) or not isinstance(self.discrete_max_values, int) \
                or self.discrete_max_values < 0:
            raise ValueError(f"ctgan.transformer.discrete_max_values must be an integer of at least 0, "
                             f"got {self.discrete_max_values!r}")

    @classmethod
    def from_config(cls, ctgan_section: Mapping[str, Any]) -> TransformerSettings:
        """Read ``ctgan.transformer``; missing keys keep their defaults."""
        section = ctgan_section.get("transformer", {}) or {}
        return cls(**{key: section[key] for key in ("max_clusters", "weight_threshold", "discrete_max_values")
                      if section.get(key) is not None})


@dataclass(frozen=True)
class CTGANSettings(TrainingSettings):
    """Training hyperparameters of the constraint-guided CTGAN.

    The first block of fields comes from the ``wgan`` section, so both
    generators train with the same budget. The defaults of the ``ctgan``
    fields are the library's (``ctgan.CTGAN`` 0.12.1), except ``pac``: the
    library's 10 does not divide the WGAN batch size of 512, so 8 is used.
    See ``DESCRIPTIONS`` for the meaning of each field.
    """

    epochs: int = 100
    batch_size: int = 512
    critic_steps: int = 5
    noise_dim: int = 128
    generator_layers: tuple[int, ...] = (256, 256)
    critic_layers: tuple[int, ...] = (256, 256)
    generator_learning_rate: float = 1e-4
    critic_learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    gradient_penalty: float = 10.0
    penalty_range: float = 1.0
    penalty_correlation: float = 1.0
    penalty_protocol: float = 1.0
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    device: str = "auto"
    pac: int = 8
    weight_decay: float = 1e-6
    gumbel_temperature: float = 0.2
    log_frequency: bool = True
    penalties: bool = True

    def __post_init__(self) -> None:
        self._check_budget()
        check_positive_int("ctgan.pac", self.pac)
        if self.batch_size % self.pac != 0:
            raise ValueError(
                f"wgan.batch_size {self.batch_size} is not a multiple of ctgan.pac {self.pac}: the CTGAN "
                "discriminator scores groups of pac rows. Choose a pac that divides the batch size"
            )
        if not self.gumbel_temperature > 0:
            raise ValueError(f"ctgan.gumbel_temperature must be above 0, got {self.gumbel_temperature!r}")
        if self.weight_decay < 0:
            raise ValueError(f"ctgan.weight_decay must be 0 or more, got {self.weight_decay!r}")

    @classmethod
    def from_config(cls, wgan_section: Mapping[str, Any], ctgan_section: Mapping[str, Any]) -> CTGANSettings:
        """Read the shared settings from ``wgan`` and the CTGAN ones from ``ctgan``.

        Missing keys keep their defaults; the config schema makes them
        required in the workflow.
        """
        flat = {
            **budget_from_config(wgan_section),
            "pac": ctgan_section.get("pac"),
            "weight_decay": ctgan_section.get("weight_decay"),
            "gumbel_temperature": ctgan_section.get("gumbel_temperature"),
            "log_frequency": ctgan_section.get("log_frequency"),
            "penalties": ctgan_section.get("penalties"),
        }
        return cls(**{key: value for key, value in flat.items() if value is not None})


def hyperparameter_table(settings: CTGANSettings, transformer: TransformerSettings,
                         facts: Mapping[str, tuple[Any, str]] | None = None) -> pd.DataFrame:
    """Return the hyperparameter table of the trained CTGAN.

    Parameters
    ----------
    settings : CTGANSettings
    transformer : TransformerSettings
    facts : mapping of str to (value, description), optional
        Values that follow from the data (rows, columns, device types).

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter``, ``value`` and ``description``.
    """
    rows = parameter_rows(settings.to_dict(), DESCRIPTIONS)
    rows += parameter_rows(dataclasses.asdict(transformer), TRANSFORMER_DESCRIPTIONS, prefix="transformer_")
    return parameter_table(rows, facts)
