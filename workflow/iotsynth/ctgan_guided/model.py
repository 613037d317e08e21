"""The conditional CTGAN generator and discriminator, and the saved model file.

Both networks are the library's (``ctgan.synthesizers.ctgan`` 0.12.1): the
generator of residual layers and the PacGAN discriminator. The condition
vector is the device type one-hot, appended to the noise and to the scored
rows as in the library.

:class:`ConditionalGenerator` offers the interface that the WGAN's sampling
code calls (``noise_dim``, ``pre_activations`` and ``activation.decode``),
so :func:`iotsynth.gan.sample.synthesize` draws CTGAN rows with the same
rejection step.

``model.pt`` contains the generator's weights (on the CPU), the settings, the
device type of each class index, the preprocessor layout and the
transformer's column specs, all loadable with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ctgan.synthesizers.ctgan import Discriminator
from ctgan.synthesizers.ctgan import Generator as ResidualGenerator
from torch import nn

from iotsynth.ctgan_guided.bridge import CTGANOutput
from iotsynth.ctgan_guided.settings import CTGANSettings
from iotsynth.gan.models import LAYOUT_KEYS, initialize_linear_layers

MODEL_FORMAT = "iotsynth-ctgan"
MODEL_FORMAT_VERSION = 1


class ConditionalGenerator(nn.Module):
    """CTGAN's residual generator with the device type as its condition.

    Parameters
    ----------
    settings : CTGANSettings
        ``noise_dim``, ``generator_layers`` and ``gumbel_temperature`` are used.
    specs : sequence of dict
        Column specs of the fitted transformer.
    layout : sequence of dict
        ``Preprocessor.layout_``.
    n_classes : int
        Number of device types.
    """

    def __init__(self, settings: CTGANSettings, specs: Sequence[Mapping], layout: Sequence[Mapping], n_classes: int):
        super().__init__()
        self.noise_dim = settings.noise_dim
        self.n_classes = n_classes
        self.activation = CTGANOutput(specs, layout, settings.gumbel_temperature)
        self.body = ResidualGenerator(settings.noise_dim + n_classes, settings.generator_layers,
                                      self.activation.width)

    def reset_parameters(self, rng: torch.Generator) -> None:
        """Initialise every linear layer from ``rng`` (batch norms keep their fixed initial values)."""
        initialize_linear_layers(self.body, rng)

    def pre_activations(self, noise: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Return the raw output in CTGAN's space, of shape (batch, activation.width)."""
        return self.body(torch.cat([noise, condition], dim=1))

    def forward(self, noise: torch.Tensor, condition: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Return activated rows in CTGAN's space (Gumbel noise from ``rng``, global when None)."""
        return self.activation(self.pre_activations(noise, condition), rng)


def build_discriminator(settings: CTGANSettings, width: int, n_classes: int) -> Discriminator:
    """Return the library's PacGAN discriminator for rows of ``width`` columns plus the condition."""
    return Discriminator(width + n_classes, settings.critic_layers, pac=settings.pac)


@dataclass
class TrainedCTGAN:
    """A CTGAN generator read from ``model.pt``, ready to sample.

    Attributes
    ----------
    generator : ConditionalGenerator
        In evaluation mode, on the CPU.
    settings : CTGANSettings
    class_names : list of str
        Device type of each class index.
    layout : list of dict
        Preprocessor layout the generator was trained with.
    specs : list of dict
        Column specs of the transformer.
    metadata : dict
        Epochs trained, seed, fingerprint, package versions.
    """

    generator: ConditionalGenerator
    settings: CTGANSettings
    class_names: list[str]
    layout: list[dict]
    specs: list[dict]
    metadata: dict[str, Any]

    def check_layout(self, layout: Sequence[Mapping], source: str = "the preprocessor") -> None:
        """Raise ValueError if ``layout`` differs from the training layout."""
        trained = [tuple(entry[key] for key in LAYOUT_KEYS) for entry in self.layout]
        received = [tuple(entry[key] for key in LAYOUT_KEYS) for entry in layout]
        if trained != received:
            raise ValueError(f"{source} has another feature layout than the CTGAN generator was trained with; "
                             "retrain it (rule train_ctgan) after refitting the preprocessor")


def save_ctgan(path: str | Path, generator: ConditionalGenerator, settings: CTGANSettings,
               class_names: Sequence[str], layout: Sequence[Mapping], specs: Sequence[Mapping],
               metadata: Mapping[str, Any]) -> None:
    """Write ``model.pt`` with CPU tensors, creating parent folders.

    The full layout entries (ranges and categories) are kept, because the
    generator's output map depends on them.
    """
    document = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "settings": settings.to_dict(),
        "class_names": list(class_names),
        "layout": [dict(entry) for entry in layout],
        "specs": [dict(spec) for spec in specs],
        "metadata": dict(metadata),
        "generator": {name: tensor.detach().cpu() for name, tensor in generator.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    torch.save(document, temporary)
    temporary.replace(path)


def load_ctgan(path: str | Path) -> TrainedCTGAN:
    """Read ``model.pt`` onto the CPU, whatever device it was trained on.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If the file is not an iotsynth CTGAN model of this format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CTGAN model {path} not found; run the train_ctgan rule")
    document = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not an iotsynth CTGAN model file; retrain with the train_ctgan rule")
    if document.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(f"{path} has model format version {document.get('format_version')}; this code reads "
                         f"version {MODEL_FORMAT_VERSION}. Retrain with the train_ctgan rule")

    settings = CTGANSettings.from_dict(document["settings"])
    generator = ConditionalGenerator(settings, document["specs"], document["layout"], len(document["class_names"]))
    generator.load_state_dict(document["generator"])
    generator.eval()
    return TrainedCTGAN(generator, settings, list(document["class_names"]), document["layout"], document["specs"],
                        dict(document["metadata"]))
