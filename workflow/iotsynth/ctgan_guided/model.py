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
from typing import Any, ClassVar

import torch
from ctgan.synthesizers.ctgan import Discriminator
from ctgan.synthesizers.ctgan import Generator as ResidualGenerator
from torch import nn

from iotsynth.ctgan_guided.bridge import CTGANOutput
from iotsynth.ctgan_guided.settings import CTGANSettings
from iotsynth.gan.checkpoints import save_atomically
from iotsynth.gan.models import TrainedGenerator, initialize_linear_layers, read_model_file

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
class TrainedCTGAN(TrainedGenerator):
    """A CTGAN generator read from ``model.pt``, ready to sample.

    The attributes of :class:`iotsynth.gan.models.TrainedGenerator`, with
    ``generator`` a :class:`ConditionalGenerator`, ``settings`` a
    :class:`~iotsynth.ctgan_guided.settings.CTGANSettings` and the ctgan
    and rdt versions in ``metadata``, and one more:

    Attributes
    ----------
    specs : list of dict
        Column specs of the transformer.
    """

    specs: list[dict]

    MODEL_KIND: ClassVar[str] = "CTGAN"
    TRAINING_RULE: ClassVar[str] = "train_ctgan"


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
    save_atomically(document, path)


def load_ctgan(path: str | Path) -> TrainedCTGAN:
    """Read ``model.pt`` onto the CPU, whatever device it was trained on.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If the file is not an iotsynth CTGAN model of this format version.
    """
    document = read_model_file(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, TrainedCTGAN.MODEL_KIND,
                               TrainedCTGAN.TRAINING_RULE)
    settings = CTGANSettings.from_dict(document["settings"])
    generator = ConditionalGenerator(settings, document["specs"], document["layout"], len(document["class_names"]))
    generator.load_state_dict(document["generator"])
    generator.eval()
    return TrainedCTGAN(generator=generator, settings=settings, class_names=list(document["class_names"]),
                        layout=document["layout"], metadata=dict(document["metadata"]), specs=document["specs"])
