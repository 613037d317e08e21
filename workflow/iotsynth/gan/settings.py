"""Settings of the conditional WGAN-GP and of synthesis, read from the configuration.

:class:`WGANSettings` contains every training hyperparameter of one generator
variant (config section ``wgan`` plus one entry of ``wgan.variants``), and
:func:`hyperparameter_table` writes them as the hyperparameter table.
:class:`TrainingSettings` checks and converts the training budget that the
WGAN shares with the CTGAN baseline
(:class:`iotsynth.ctgan_guided.settings.CTGANSettings`), and
:func:`budget_from_config` reads that budget from the ``wgan`` section.
:class:`SamplingSettings` contains the synthesis and rejection settings (config
section ``balance``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

CLASS_SAMPLING = {"empirical": 1.0, "sqrt": 0.5, "uniform": 0.0}
CATEGORICAL_OUTPUTS = ("softmax", "gumbel_softmax")
SCALED_OUTPUTS = ("tanh", "hardtanh")
DEVICES = ("auto", "cpu", "cuda")
PENALTY_SECTIONS = ("range", "correlation", "protocol")
VARIANT_SWITCHES = ("graph_layer", "graph_loss", "penalties", "rejection")

# One line per hyperparameter for the hyperparameter table, in table order.
DESCRIPTIONS = {
    "variant": "generator variant (key of wgan.variants)",
    "epochs": "passes over the training rows; one pass is ceil(rows / batch_size) generator updates",
    "batch_size": "rows per critic and generator update",
    "critic_steps": "critic updates per generator update",
    "noise_dim": "length of the Gaussian noise vector fed to the generator",
    "generator_layers": "hidden widths of the generator MLP (Linear, BatchNorm, ReLU)",
    "critic_layers": "hidden widths of the critic MLP (Linear, LeakyReLU 0.2)",
    "generator_learning_rate": "Adam learning rate of the generator",
    "critic_learning_rate": "Adam learning rate of the critic",
    "betas": "Adam (beta1, beta2) of both optimisers",
    "gradient_penalty": "weight lambda of the gradient penalty (||grad D|| - 1)^2",
    "class_sampling": "device type mix of training batches: rows drawn with class weight n^1 (empirical), n^0.5 (sqrt) or n^0 (uniform)",
    "scaled_output": "activation of continuous, discrete and binary columns: tanh, or hardtanh (clip to [-1, 1]) which reaches the range ends exactly",
    "categorical_output": "activation of each one-hot group of a categorical feature",
    "gumbel_temperature": "temperature of the Gumbel-softmax relaxation",
    "graph_layer": "generator refines its output by message passing over the feature graph",
    "graph_steps": "message-passing steps of the graph layer",
    "graph_loss": "generator loss term aligning batch correlations of graph-connected features",
    "graph_loss_weight": "weight of the graph correlation loss",
    "penalties": "constraint penalty terms are part of the generator objective",
    "penalty_range": "weight of the range constraint penalty",
    "penalty_correlation": "weight of the correlation constraint penalty",
    "penalty_protocol": "weight of the protocol rule penalty",
    "checkpoint_every": "epochs between checkpoints",
    "keep_checkpoints": "most recent checkpoints kept on disk",
    "device": "torch device: auto (CUDA when available), cpu or cuda",
}

# Integer fields of the shared training budget that must be at least 1.
BUDGET_COUNTS = ("epochs", "batch_size", "critic_steps", "noise_dim", "checkpoint_every", "keep_checkpoints")
# Weights of the shared training budget that must be 0 or more.
BUDGET_WEIGHTS = ("gradient_penalty", "penalty_range", "penalty_correlation", "penalty_protocol")


class TrainingSettings:
    """Checks and conversions shared by the settings dataclasses of both generators.

    A subclass is a frozen dataclass with the budget fields that the
    ``wgan`` section sets for both generators: ``epochs``, ``batch_size``,
    ``critic_steps``, ``noise_dim``, ``generator_layers``,
    ``critic_layers``, both learning rates, ``betas``,
    ``gradient_penalty``, the three ``penalty_*`` weights,
    ``checkpoint_every``, ``keep_checkpoints`` and ``device``. This class
    has no fields, so each subclass keeps its own field order, which is the
    row order of its hyperparameter table.
    """

    def _check_budget(self) -> None:
        """Raise ValueError naming the ``wgan`` key of the first invalid budget field."""
        for name in BUDGET_COUNTS:
            check_positive_int(f"wgan.{name}", getattr(self, name))
        for name in ("generator_layers", "critic_layers"):
            widths = getattr(self, name)
            if len(widths) == 0:
                raise ValueError(f"wgan.{name} needs at least one hidden layer width, got {list(widths)}")
            for width in widths:
                check_positive_int(f"wgan.{name}", width)
        for name in ("generator_learning_rate", "critic_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"wgan.{name} must be above 0, got {getattr(self, name)!r}")
        if len(self.betas) != 2 or not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ValueError(f"wgan.betas must be two numbers in [0, 1), got {list(self.betas)!r}")
        for name in BUDGET_WEIGHTS:
            if getattr(self, name) < 0:
                raise ValueError(f"wgan setting {name} must be 0 or more, got {getattr(self, name)!r}")
        _check_choice("wgan.device", self.device, DEVICES)

    @property
    def penalty_weights(self) -> dict[str, float]:
        """Weight of each constraint penalty section in the generator objective."""
        return {section: getattr(self, f"penalty_{section}") for section in PENALTY_SECTIONS}

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-friendly values (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        """Rebuild settings written by :meth:`to_dict` (e.g. from a saved model)."""
        return cls(**{key: _tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def budget_from_config(section: Mapping[str, Any]) -> dict[str, Any]:
    """Return the shared training budget of the ``wgan`` section as settings fields.

    Keys missing from the section map to None, so the caller can drop them
    and keep the dataclass defaults.
    """
    learning_rate = section.get("learning_rate", {}) or {}
    penalties = section.get("penalties", {}) or {}
    return {
        "epochs": section.get("epochs"),
        "batch_size": section.get("batch_size"),
        "critic_steps": section.get("critic_steps"),
        "noise_dim": section.get("noise_dim"),
        "generator_layers": _tuple(section.get("generator_layers")),
        "critic_layers": _tuple(section.get("critic_layers")),
        "generator_learning_rate": learning_rate.get("generator"),
        "critic_learning_rate": learning_rate.get("critic"),
        "betas": _tuple(section.get("betas")),
        "gradient_penalty": section.get("gradient_penalty"),
        "penalty_range": penalties.get("range"),
        "penalty_correlation": penalties.get("correlation"),
        "penalty_protocol": penalties.get("protocol"),
        "checkpoint_every": section.get("checkpoint_every"),
        "keep_checkpoints": section.get("keep_checkpoints"),
        "device": section.get("device"),
    }


@dataclass(frozen=True)
class WGANSettings(TrainingSettings):
    """Hyperparameters of one conditional WGAN-GP variant.

    The defaults follow Algorithm 1 of Gulrajani et al., "Improved Training
    of Wasserstein GANs" (2017) where it gives one (``critic_steps=5``,
    ``gradient_penalty=10``, ``critic_learning_rate=1e-4``), with
    ``betas=(0.5, 0.9)`` as in the ctgan library (0.12.1), and the published
    setup of 100 epochs. With penalty weights of 1, the protocol penalty (up
    to 1 per broken condition, several per rule) already outweighs the
    adversarial loss in the first epochs on the reduced IoT Sentinel test
    data, so larger weights trade realism for fewer violations. See
    ``DESCRIPTIONS`` for the meaning of each field.
    """

    variant: str = "wgan"
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
    class_sampling: str = "sqrt"
    scaled_output: str = "hardtanh"
    categorical_output: str = "gumbel_softmax"
    gumbel_temperature: float = 0.5
    graph_layer: bool = True
    graph_steps: int = 2
    graph_loss: bool = True
    graph_loss_weight: float = 1.0
    penalties: bool = True
    penalty_range: float = 1.0
    penalty_correlation: float = 1.0
    penalty_protocol: float = 1.0
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        self._check_budget()
        check_positive_int("wgan.graph_steps", self.graph_steps)
        if self.batch_size < 2:
            raise ValueError(f"wgan.batch_size must be at least 2 (batch statistics), got {self.batch_size}")
        if not self.gumbel_temperature > 0:
            raise ValueError(f"wgan.gumbel_temperature must be above 0, got {self.gumbel_temperature!r}")
        if self.graph_loss_weight < 0:
            raise ValueError(f"wgan.graph.loss_weight must be 0 or more, got {self.graph_loss_weight!r}")
        _check_choice("wgan.class_sampling", self.class_sampling, tuple(CLASS_SAMPLING))
        _check_choice("wgan.scaled_output", self.scaled_output, SCALED_OUTPUTS)
        _check_choice("wgan.categorical_output", self.categorical_output, CATEGORICAL_OUTPUTS)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], variant: str) -> WGANSettings:
        """Read the ``wgan`` config section for one variant.

        Parameters
        ----------
        section : mapping
            The ``wgan`` section: shared hyperparameters and ``variants``.
        variant : str
            Key of ``wgan.variants`` whose switches apply.

        Raises
        ------
        KeyError
            If ``variant`` is not in ``wgan.variants``.
        """
        variants = section.get("variants", {})
        if variant not in variants:
            raise KeyError(f"generator {variant!r} is not in wgan.variants; known are {sorted(variants)}")
        switches = variants[variant]
        graph = section.get("graph", {}) or {}
        flat = {
            **budget_from_config(section),
            "class_sampling": section.get("class_sampling"),
            "scaled_output": section.get("scaled_output"),
            "categorical_output": section.get("categorical_output"),
            "gumbel_temperature": section.get("gumbel_temperature"),
            "graph_steps": graph.get("steps"),
            "graph_loss_weight": graph.get("loss_weight"),
            "graph_layer": switches.get("graph_layer"),
            "graph_loss": switches.get("graph_loss"),
            "penalties": switches.get("penalties"),
        }
        values = {key: value for key, value in flat.items() if value is not None}
        return cls(variant=variant, **values)


@dataclass(frozen=True)
class SamplingSettings:
    """Synthesis and rejection settings (config section ``balance``).

    Parameters
    ----------
    rejection : bool, default True
        Drop rows whose constraint violation score exceeds ``tolerance``.
    tolerance : float, default 0.1
        Largest accepted share of the device type's range and protocol
        rules that a row may break (``ConstraintSet.row_violation_score``).
    max_rounds : int, default 10
        Generation rounds per device type before the shortfall is filled
        with the least-violating rejected rows.
    oversample : float, default 1.25
        Rows generated per missing row, divided by the acceptance rate seen
        so far.
    chunk_rows : int, default 8192
        Rows generated per forward pass, which bounds memory.
    """

    rejection: bool = True
    tolerance: float = 0.1
    max_rounds: int = 10
    oversample: float = 1.25
    chunk_rows: int = 8192

    def __post_init__(self) -> None:
        if not 0.0 <= self.tolerance <= 1.0:
            raise ValueError(f"balance.rejection.tolerance must be in [0, 1], got {self.tolerance!r}")
        check_positive_int("balance.rejection.max_rounds", self.max_rounds)
        check_positive_int("balance.chunk_rows", self.chunk_rows)
        if not self.oversample >= 1.0:
            raise ValueError(f"balance.rejection.oversample must be at least 1, got {self.oversample!r}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], rejection: bool) -> SamplingSettings:
        """Read the ``balance`` section; ``rejection`` is the variant's switch."""
        filtering = section.get("rejection", {})
        flat = {
            "tolerance": filtering.get("tolerance"),
            "max_rounds": filtering.get("max_rounds"),
            "oversample": filtering.get("oversample"),
            "chunk_rows": section.get("chunk_rows"),
        }
        values = {key: value for key, value in flat.items() if value is not None}
        return cls(rejection=bool(rejection), **values)


def hyperparameter_table(settings: WGANSettings, facts: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Return the hyperparameter table of one trained variant.

    Parameters
    ----------
    settings : WGANSettings
        The variant's settings.
    facts : mapping, optional
        Values that follow from the data (rows, columns, device types,
        generator steps per epoch), appended with their own descriptions as
        ``(value, description)`` pairs.

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter``, ``value`` and ``description``.
    """
    return parameter_table(parameter_rows(settings.to_dict(), DESCRIPTIONS), facts)


def parameter_rows(values: Mapping[str, Any], descriptions: Mapping[str, str], prefix: str = "") -> list[dict]:
    """Return one hyperparameter table row per setting, in the order of ``values``.

    A list value is written as its items separated by spaces. ``prefix`` is
    put before each name in the ``parameter`` column, but the description
    is looked up without it.
    """
    rows = []
    for name, value in values.items():
        text = " ".join(str(item) for item in value) if isinstance(value, list) else value
        rows.append({"parameter": f"{prefix}{name}", "value": text, "description": descriptions[name]})
    return rows


def parameter_table(rows: list[dict], facts: Mapping[str, tuple[Any, str]] | None = None) -> pd.DataFrame:
    """Return the hyperparameter table of ``rows`` with the ``(value, description)`` facts appended."""
    rows = rows + [{"parameter": name, "value": value, "description": description}
                   for name, (value, description) in (facts or {}).items()]
    return pd.DataFrame(rows, columns=["parameter", "value", "description"])


def _tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def check_positive_int(name: str, value: Any) -> None:
    """Raise ValueError naming the config key ``name`` unless ``value`` is an int (not a bool) of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
