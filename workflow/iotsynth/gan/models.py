"""Generator and critic of the conditional WGAN-GP, and the saved model file.

Both networks are conditioned on the device type through a one-hot vector
appended to their input. The generator emits rows in the preprocessor's
space: ``hardtanh`` (clipping) or ``tanh`` for continuous, discrete and
binary columns (all scaled to [-1, 1]) and a distribution over the categories
of each categorical feature (softmax, or Gumbel-softmax while training). With ``graph_layer`` on, a
:class:`~iotsynth.gan.layers.FeatureGraphLayer` refines the MLP's output
before the activations.

``model.pt`` contains the generator's weights (on the CPU, so it loads without a
GPU), the settings it was built with, the device type of each class index,
and the preprocessor layout it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from iotsynth.gan.checkpoints import save_atomically
from iotsynth.gan.layers import FeatureGraphLayer
from iotsynth.gan.settings import WGANSettings

MODEL_FORMAT = "iotsynth-wgan"
MODEL_FORMAT_VERSION = 1
GUMBEL_EPSILON = 1e-10
LEAKY_SLOPE = 0.2
# Layout keys that must match between training and sampling.
LAYOUT_KEYS = ("name", "kind", "start", "stop")


class OutputActivation(nn.Module):
    """Per-feature activations: a squashing function for single columns, softmax per one-hot group.

    Parameters
    ----------
    layout : sequence of dict
        ``Preprocessor.layout_``.
    categorical_output : {"softmax", "gumbel_softmax"}
        Activation of each one-hot group while training. Gumbel-softmax adds
        Gumbel noise to the logits and divides by ``temperature``, so the
        critic receives near one-hot samples rather than smooth probabilities.
    temperature : float
        Gumbel-softmax temperature.
    scaled_output : {"tanh", "hardtanh"}, default "tanh"
        Activation of continuous, discrete and binary columns. ``hardtanh``
        clips to [-1, 1], so a row can sit exactly at a feature's training
        minimum or maximum (e.g. the 0 of an absent layer).
    """

    def __init__(self, layout: Sequence[Mapping], categorical_output: str, temperature: float,
                 scaled_output: str = "tanh"):
        super().__init__()
        self.categorical_output = categorical_output
        self.squash = torch.tanh if scaled_output == "tanh" else nn.functional.hardtanh
        self.temperature = temperature
        n_columns = max(entry["stop"] for entry in layout)
        single = [entry["start"] for entry in layout if entry["kind"] != "categorical"]
        binary = [entry["kind"] == "binary" for entry in layout if entry["kind"] != "categorical"]
        groups = [list(range(entry["start"], entry["stop"])) for entry in layout if entry["kind"] == "categorical"]
        width = max([1] + [len(group) for group in groups])

        # group_index[g, k]: the k-th column of group g; padding repeats the
        # group's first column and is masked out.
        group_index = np.zeros((len(groups), width), dtype=np.int64)
        group_mask = np.zeros((len(groups), width), dtype=bool)
        for position, group in enumerate(groups):
            group_index[position, :] = group[0]
            group_index[position, : len(group)] = group
            group_mask[position, : len(group)] = True
        # Outputs are built as [single columns, group columns] and then put
        # back in layout order with this permutation.
        order = np.concatenate([np.asarray(single, dtype=np.int64), group_index[group_mask]])
        self.register_buffer("single", torch.as_tensor(np.asarray(single, dtype=np.int64)))
        self.register_buffer("binary_mask", torch.as_tensor(np.asarray(binary, dtype=bool)))
        self.register_buffer("group_index", torch.as_tensor(group_index))
        self.register_buffer("group_mask", torch.as_tensor(group_mask))
        self.register_buffer("inverse_order", torch.as_tensor(np.argsort(order)))
        if len(order) != n_columns:
            raise ValueError(f"the layout covers {len(order)} of {n_columns} columns; refit the preprocessor")

    def group_logits(self, y: torch.Tensor) -> torch.Tensor:
        """Return the logits of every one-hot group, of shape (batch, groups, max width), padding at -inf."""
        logits = y[:, self.group_index]
        return logits.masked_fill(~self.group_mask, -math.inf)

    def _assemble(self, single: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([single, groups[:, self.group_mask]], dim=1)
        return flat[:, self.inverse_order]

    def forward(self, y: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Return activated rows; Gumbel noise is drawn from ``rng`` in training mode."""
        logits = self.group_logits(y)
        if self.training and self.categorical_output == "gumbel_softmax":
            uniform = torch.rand(logits.shape, generator=rng, device=y.device, dtype=y.dtype)
            gumbel = -torch.log(-torch.log(uniform + GUMBEL_EPSILON) + GUMBEL_EPSILON)
            probabilities = torch.softmax((logits + gumbel) / self.temperature, dim=2)
        else:
            probabilities = torch.softmax(logits, dim=2)
        return self._assemble(self.squash(y[:, self.single]), probabilities)

    def decode(self, y: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Return rows with each feature reduced to one value, in the preprocessor's space.

        Each feature is decoded the way the critic saw it in training, so the
        values of one row stay consistent with each other:

        - binary columns become 1 above 0 and -1 otherwise, because training
          shows the critic the activated value itself (drawing each binary
          feature on its own would combine, e.g., ``is_tcp`` and ``is_udp``
          independently);
        - a one-hot group becomes a category drawn from its softmax
          (Gumbel-max, with noise from ``rng``) when training used
          Gumbel-softmax, because the critic then saw such draws, and its
          most likely category when training used a plain softmax;
        - continuous and discrete columns keep their activated value.
        """
        values = self.squash(y[:, self.single])
        binary = torch.where(values > 0, 1.0, -1.0)
        logits = self.group_logits(y)
        if self.categorical_output == "gumbel_softmax":
            uniform = torch.rand(logits.shape, generator=rng, device=y.device, dtype=y.dtype)
            logits = logits - torch.log(-torch.log(uniform + GUMBEL_EPSILON) + GUMBEL_EPSILON)
        chosen = logits.argmax(dim=2)
        one_hot = nn.functional.one_hot(chosen, logits.shape[2]).to(y.dtype)
        return self._assemble(torch.where(self.binary_mask, binary, values), one_hot)


class Generator(nn.Module):
    """Conditional generator: noise and device type in, one row in the preprocessor's space out.

    Parameters
    ----------
    settings : WGANSettings
        ``noise_dim``, ``generator_layers``, ``graph_layer`` (with
        ``graph_steps``), ``categorical_output`` and
        ``gumbel_temperature`` are used.
    layout : sequence of dict
        ``Preprocessor.layout_``.
    n_classes : int
        Number of device types.
    adjacency : numpy.ndarray of shape (n_features, n_features), optional
        Normalised feature adjacency in layout order; needed when
        ``settings.graph_layer`` is on.
    """

    def __init__(self, settings: WGANSettings, layout: Sequence[Mapping], n_classes: int,
                 adjacency: np.ndarray | None = None):
        super().__init__()
        self.noise_dim = settings.noise_dim
        self.n_classes = n_classes
        n_columns = max(entry["stop"] for entry in layout)

        layers, width = [], settings.noise_dim + n_classes
        for hidden in settings.generator_layers:
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_columns))
        self.body = nn.Sequential(*layers)

        self.graph = None
        if settings.graph_layer:
            if adjacency is None:
                raise ValueError("graph_layer is on but no adjacency was given; pass the feature graph")
            self.graph = FeatureGraphLayer(layout, adjacency, settings.graph_steps)
        self.activation = OutputActivation(layout, settings.categorical_output, settings.gumbel_temperature,
                                           settings.scaled_output)

    def reset_parameters(self, rng: torch.Generator) -> None:
        """Initialise every weight from ``rng``."""
        initialize_linear_layers(self.body, rng)
        if self.graph is not None:
            self.graph.reset_parameters(rng)

    def pre_activations(self, noise: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Return the output before the activations, of shape (batch, n_columns)."""
        y = self.body(torch.cat([noise, condition], dim=1))
        if self.graph is not None:
            y = self.graph(y)
        return y

    def forward(self, noise: torch.Tensor, condition: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Return activated rows for noise of shape (batch, noise_dim) and one-hot conditions."""
        return self.activation(self.pre_activations(noise, condition), rng)


class Critic(nn.Module):
    """Conditional critic: a row and its device type in, one unbounded score out.

    No batch normalisation, because the gradient penalty is defined per row.

    Parameters
    ----------
    n_columns : int
        Width of a row in the preprocessor's space.
    n_classes : int
        Number of device types.
    layers : sequence of int
        Hidden widths.
    """

    def __init__(self, n_columns: int, n_classes: int, layers: Sequence[int]):
        super().__init__()
        modules, width = [], n_columns + n_classes
        for hidden in layers:
            modules += [nn.Linear(width, hidden), nn.LeakyReLU(LEAKY_SLOPE)]
            width = hidden
        modules.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*modules)

    def reset_parameters(self, rng: torch.Generator) -> None:
        """Initialise every weight from ``rng``."""
        initialize_linear_layers(self.body, rng)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Return scores of shape (batch,)."""
        return self.body(torch.cat([x, condition], dim=1)).squeeze(1)


def initialize_linear_layers(module: nn.Module, rng: torch.Generator) -> None:
    """Initialise every ``nn.Linear`` as PyTorch does by default, but drawing from ``rng``.

    PyTorch's own initialisation reads the global random state; drawing from
    an explicit generator makes the weights depend on the seed alone.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=rng)
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=rng)


def read_model_file(path: str | Path, model_format: str, format_version: int, kind: str, rule: str) -> dict:
    """Read a ``model.pt`` document onto the CPU and check its format and format version.

    Parameters
    ----------
    path : str or pathlib.Path
    model_format, format_version : str, int
        The ``format`` and ``format_version`` the file must have.
    kind, rule : str
        The model kind (``WGAN`` or ``CTGAN``) and the rule that writes it,
        for the messages.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If the file has another format or format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} model {path} not found; run the {rule} rule")
    document = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(document, dict) or document.get("format") != model_format:
        raise ValueError(f"{path} is not an iotsynth {kind} model file; retrain with the {rule} rule")
    if document.get("format_version") != format_version:
        raise ValueError(f"{path} has model format version {document.get('format_version')}; this code reads "
                         f"version {format_version}. Retrain with the {rule} rule")
    return document


@dataclass
class TrainedGenerator:
    """A generator read from ``model.pt``, ready to sample.

    :class:`iotsynth.ctgan_guided.model.TrainedCTGAN` extends it for the
    CTGAN baseline.

    Attributes
    ----------
    generator : Generator
        In evaluation mode, on the CPU.
    settings : WGANSettings
    class_names : list of str
        Device type of each class index.
    layout : list of dict
        Preprocessor layout the generator was trained on.
    metadata : dict
        Epochs trained, seed, fingerprint and torch version.
    """

    generator: Generator
    settings: WGANSettings
    class_names: list[str]
    layout: list[dict]
    metadata: dict[str, Any]

    # The model kind and the rule that trains it, for messages.
    MODEL_KIND: ClassVar[str] = "WGAN"
    TRAINING_RULE: ClassVar[str] = "train_generator"

    def check_layout(self, layout: Sequence[Mapping], source: str = "the preprocessor") -> None:
        """Raise ValueError if ``layout`` differs from the training layout in a ``LAYOUT_KEYS`` value."""
        trained = [tuple(entry[key] for key in LAYOUT_KEYS) for entry in self.layout]
        current = [tuple(entry[key] for key in LAYOUT_KEYS) for entry in layout]
        if trained != current:
            raise ValueError(f"{source} has another feature layout than the {self.MODEL_KIND} generator was "
                             f"trained on; retrain it (rule {self.TRAINING_RULE}) after refitting the preprocessor")


def save_generator(path: str | Path, generator: Generator, settings: WGANSettings, class_names: Sequence[str],
                   layout: Sequence[Mapping], metadata: Mapping[str, Any]) -> None:
    """Write ``model.pt`` with CPU tensors, creating parent folders.

    Parameters
    ----------
    path : str or pathlib.Path
    generator : Generator
    settings : WGANSettings
    class_names : sequence of str
        Device type of each class index.
    layout : sequence of dict
        ``Preprocessor.layout_``.
    metadata : mapping
        JSON-friendly extras (epochs, seed, fingerprint).
    """
    state = {name: tensor.detach().cpu() for name, tensor in generator.state_dict().items()}
    document = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "settings": settings.to_dict(),
        "class_names": list(class_names),
        "layout": [{key: entry[key] for key in LAYOUT_KEYS} for entry in layout],
        "n_features": len(layout),
        "metadata": dict(metadata),
        "generator": state,
    }
    save_atomically(document, path)


def load_generator(path: str | Path) -> TrainedGenerator:
    """Read ``model.pt`` onto the CPU, whatever device it was trained on.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If the file is not an iotsynth WGAN model of this format version.
    """
    document = read_model_file(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, TrainedGenerator.MODEL_KIND,
                               TrainedGenerator.TRAINING_RULE)
    settings = WGANSettings.from_dict(document["settings"])
    layout = document["layout"]
    n_features = document["n_features"]
    placeholder = np.eye(n_features) if settings.graph_layer else None
    generator = Generator(settings, layout, len(document["class_names"]), placeholder)
    generator.load_state_dict(document["generator"])
    generator.eval()
    return TrainedGenerator(generator, settings, list(document["class_names"]), layout, dict(document["metadata"]))
