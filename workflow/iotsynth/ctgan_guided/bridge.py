"""From CTGAN's output space to the preprocessor's space, differentiably.

CTGAN's generator emits rows in the space of its data transformer: for a
continuous column a scalar ``alpha`` (``tanh``) and a distribution over
mixture components (Gumbel-softmax), for a discrete column a distribution
over its one-hot values. The constraint penalties and the rejection filter
work in the preprocessor's space (features scaled so the training range is
[-1, 1], binary features in [-1, 1], categorical features one-hot). To apply
the same penalties to CTGAN, :class:`CTGANOutput` maps one space to the other
with the transformer's own parameters:

- continuous column (mixture with means ``m_k`` and standard deviations
  ``s_k``, component probabilities ``beta_k``):
  ``value = sum_k beta_k * (4 * s_k * alpha + m_k)``, which is the library's
  inverse transform when ``beta`` is one-hot and its expectation over the
  components otherwise; then scaled linearly as the preprocessor scales;
- binary feature (one-hot values ``v`` in {0, 1}): ``x = sum_v p_v (2 v - 1)``,
  so ``p(1) = (x + 1) / 2`` as the penalties read it;
- categorical feature: each category's probability goes to that
  category's column of the preprocessor;
- discrete feature encoded one-hot (few values): the expected scaled value.

Every term is linear in the activated row except ``alpha * beta``, so the map
is two matrix products and an elementwise product, and gradients reach
``alpha``, the component probabilities and the one-hot probabilities. On
rows with one-hot spans (real rows, or decoded samples) the map agrees with
the library's ``inverse_transform`` followed by ``Preprocessor.transform``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

LOGGER = logging.getLogger(__name__)

GUMBEL_EPSILON = 1e-10
SCALED_KINDS = ("continuous", "discrete")


class CTGANOutput(nn.Module):
    """Activations of CTGAN's generator output, and their map into the preprocessor's space.

    Parameters
    ----------
    specs : sequence of dict
        :func:`iotsynth.ctgan_guided.transformer.column_specs` of the
        fitted transformer.
    layout : sequence of dict
        ``Preprocessor.layout_`` of the same features.
    temperature : float
        Gumbel-softmax temperature of every one-hot span while training.

    Attributes
    ----------
    width : int
        Columns of a row in CTGAN's space.
    n_columns : int
        Columns of a row in the preprocessor's space.
    """

    def __init__(self, specs: Sequence[Mapping], layout: Sequence[Mapping], temperature: float):
        super().__init__()
        self.temperature = float(temperature)
        self.width = int(sum(spec["width"] for spec in specs))
        self.n_columns = int(max(entry["stop"] for entry in layout))
        alpha_columns, groups = _spans(specs)
        linear, scale, alpha_index = _linear_map(specs, layout, self.width, self.n_columns)

        span_width = max([1] + [len(group) for group in groups])
        group_index = np.zeros((len(groups), span_width), dtype=np.int64)
        group_mask = np.zeros((len(groups), span_width), dtype=bool)
        for position, group in enumerate(groups):
            group_index[position, :] = group[0]
            group_index[position, : len(group)] = group
            group_mask[position, : len(group)] = True
        # Activations are built as [alpha columns, span columns], then put
        # back in the transformer's column order with this permutation.
        order = np.concatenate([np.asarray(alpha_columns, dtype=np.int64), group_index[group_mask]])
        if sorted(order.tolist()) != list(range(self.width)):
            raise ValueError("the column specs do not tile CTGAN's output; refit the transformer")

        self.register_buffer("alpha_columns", torch.as_tensor(np.asarray(alpha_columns, dtype=np.int64)))
        self.register_buffer("group_index", torch.as_tensor(group_index))
        self.register_buffer("group_mask", torch.as_tensor(group_mask))
        self.register_buffer("inverse_order", torch.as_tensor(np.argsort(order)))
        self.register_buffer("linear", torch.as_tensor(linear, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("alpha_index", torch.as_tensor(alpha_index))

    def _group_logits(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, self.group_index].masked_fill(~self.group_mask, -math.inf)

    def _assemble(self, alpha: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([alpha, spans[:, self.group_mask]], dim=1)
        return flat[:, self.inverse_order]

    def forward(self, y: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Return activated rows in CTGAN's space: ``tanh`` for alpha, Gumbel-softmax per span.

        This is ``CTGAN._apply_activate`` of ctgan 0.12.1 computed for all
        spans at once; the Gumbel noise comes from ``rng`` (the global torch
        generator when None).
        """
        logits = self._group_logits(y)
        uniform = torch.rand(logits.shape, generator=rng, device=y.device, dtype=y.dtype)
        gumbel = -torch.log(-torch.log(uniform + GUMBEL_EPSILON) + GUMBEL_EPSILON)
        probabilities = torch.softmax((logits + gumbel) / self.temperature, dim=2)
        return self._assemble(torch.tanh(y[:, self.alpha_columns]), probabilities)

    def to_preprocessed(self, activated: torch.Tensor) -> torch.Tensor:
        """Map activated rows of shape (batch, width) to the preprocessor's space, of shape (batch, n_columns)."""
        alpha = activated[:, self.alpha_index]
        return activated @ self.linear + alpha * (activated @ self.scale)

    def decode(self, y: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Return rows with one value per feature, in the preprocessor's space.

        Each span (mixture component or one-hot value) is drawn from
        ``softmax(y)`` by the Gumbel-max trick with noise from ``rng``. The
        discriminator saw such draws in training, and the library's
        ``sample`` draws them the same way (a Gumbel-softmax, then an
        arg-max in ``inverse_transform``). The one-hot row is then mapped by
        :meth:`to_preprocessed`.
        """
        logits = self._group_logits(y)
        uniform = torch.rand(logits.shape, generator=rng, device=y.device, dtype=y.dtype)
        chosen = (logits - torch.log(-torch.log(uniform + GUMBEL_EPSILON) + GUMBEL_EPSILON)).argmax(dim=2)
        one_hot = nn.functional.one_hot(chosen, logits.shape[2]).to(y.dtype)
        return self.to_preprocessed(self._assemble(torch.tanh(y[:, self.alpha_columns]), one_hot))


def _spans(specs: Sequence[Mapping]) -> tuple[list[int], list[list[int]]]:
    """Return the alpha column of each continuous column and the columns of every softmax span."""
    alpha_columns, groups, start = [], [], 0
    for spec in specs:
        if spec["type"] == "continuous":
            alpha_columns.append(start)
            groups.append(list(range(start + 1, start + spec["width"])))
        else:
            groups.append(list(range(start, start + spec["width"])))
        start += spec["width"]
    return alpha_columns, groups


def _linear_map(specs: Sequence[Mapping], layout: Sequence[Mapping], width: int,
                n_columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``linear`` and ``scale`` of shape (width, n_columns) and ``alpha_index`` of shape (n_columns,).

    ``x = a @ linear + a[:, alpha_index] * (a @ scale)`` for activated rows ``a``.
    """
    entries = {entry["name"]: entry for entry in layout}
    missing = sorted(set(entries) - {spec["name"] for spec in specs})
    if missing:
        raise ValueError(f"the CTGAN transformer lacks features of the preprocessor: {missing[:10]}; fit both on the "
                         "same feature dictionary")
    linear = np.zeros((width, n_columns))
    scale = np.zeros((width, n_columns))
    alpha_index = np.zeros(n_columns, dtype=np.int64)
    start = 0
    for spec in specs:
        entry = entries.get(spec["name"])
        if entry is None:
            raise ValueError(f"feature {spec['name']!r} of the CTGAN transformer is not in the preprocessor; fit both "
                             "on the same feature dictionary")
        if spec["type"] == "continuous":
            _map_mixture(spec, entry, start, linear, scale, alpha_index)
        else:
            _map_one_hot(spec, entry, start, linear)
        start += spec["width"]
    return linear, scale, alpha_index


def _affine(entry: Mapping) -> tuple[float, float]:
    """Return ``(a, b)`` with ``scaled = a * value + b``, as ``Preprocessor.transform`` scales."""
    span = entry["maximum"] - entry["minimum"]
    if span == 0:
        return 0.0, 0.0
    return 2.0 / span, -2.0 * entry["minimum"] / span - 1.0


def _map_mixture(spec: Mapping, entry: Mapping, start: int, linear: np.ndarray, scale: np.ndarray,
                 alpha_index: np.ndarray) -> None:
    if entry["kind"] not in SCALED_KINDS:
        raise ValueError(f"feature {spec['name']!r} has kind {entry['kind']!r} but CTGAN modelled it with a "
                         "mixture; refit the transformer with binary and categorical features as discrete")
    a, b = _affine(entry)
    column = entry["start"]
    for component, (mean, std) in enumerate(zip(spec["means"], spec["stds"], strict=True)):
        row = start + 1 + component
        linear[row, column] = a * mean + b
        scale[row, column] = a * spec["std_multiplier"] * std
    alpha_index[column] = start


def _map_one_hot(spec: Mapping, entry: Mapping, start: int, linear: np.ndarray) -> None:
    kind = entry["kind"]
    if kind == "categorical":
        positions = {float(category): index for index, category in enumerate(entry["categories"])}
        unmatched = [value for value in spec["values"] if value not in positions]
        if unmatched:
            LOGGER.warning("feature %r: CTGAN values %s are not categories of the preprocessor; their probability "
                           "is dropped", spec["name"], unmatched[:10])
        for offset, value in enumerate(spec["values"]):
            if value in positions:
                linear[start + offset, entry["start"] + positions[value]] = 1.0
        return

    for offset, value in enumerate(spec["values"]):
        if kind == "binary":
            if value not in (0.0, 1.0):
                raise ValueError(f"binary feature {spec['name']!r} has the value {value} in the CTGAN transformer")
            linear[start + offset, entry["start"]] = 2.0 * value - 1.0
        else:
            a, b = _affine(entry)
            linear[start + offset, entry["start"]] = a * value + b
