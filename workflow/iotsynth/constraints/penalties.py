"""Differentiable constraint penalties on generator output, in PyTorch.

The generators emit rows in the preprocessor's space: continuous and discrete
features scaled so the training range maps to [-1, 1], binary features in
[-1, 1], and one column per training category of each categorical feature.
:class:`TorchConstraints` compiles a :class:`ConstraintSet` for one
preprocessor layout and turns each condition into

- a truth value in [0, 1]. For binary and categorical features it is the
  probability mass of the values that satisfy the condition: the group's
  columns for a categorical feature and ``(x + 1) / 2`` for a binary one, so
  it is soft and differentiable. The group's columns must be probabilities
  (a softmax or Gumbel-softmax output), not logits. For continuous and
  discrete features the truth is a hard 0 or 1;
- a hinge in scaled units that is 0 exactly where the condition holds:
  ``1 - truth`` for binary and categorical features, the distance outside the
  allowed interval for the others.

A row rule's penalty is the product of its ``when`` truths times the sum of
its ``then`` hinges. On one-hot rows made by ``Preprocessor.transform`` the
penalty is above 0 exactly where the NumPy evaluator reports a violation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from iotsynth.constraints.rules import Condition, condition_holds

SCALED_KINDS = ("continuous", "discrete")
SECTION_CODES = {"range": 0, "protocol": 1}
PADDING_SECTION = -1
CORRELATION_EPSILON = 1e-12


class _ClassProgram:
    """The conditions and rules of one device type, with atom indices local to it."""

    def __init__(self):
        self.index = {}
        self.set_masks = []  # (atom, mask over probability columns)
        self.intervals = []  # (atom, x column, low, high)
        self.point_sets = []  # (atom, x column, [(low, high), ...]) for 'in' on scaled features
        self.exclusions = []  # (atom, x column, points, tolerance) for '!=' and 'not_in'
        self.constants = []  # (atom, holds)
        self.rule_ids = []
        self.n_atoms = 0

    def add(self, key) -> tuple[int, bool]:
        if key in self.index:
            return self.index[key], False
        self.index[key] = self.n_atoms
        self.n_atoms += 1
        return self.n_atoms - 1, True


class TorchConstraints:
    """A constraint set compiled for one preprocessor layout.

    Each device type gets its own small program, so a row costs the
    conditions of its own device type only.

    Parameters
    ----------
    constraints : ConstraintSet
        The constraint set.
    layout : sequence of dict
        ``Preprocessor.layout_``: per feature ``name``, ``kind``, ``start``,
        ``stop`` and ``minimum``/``maximum`` or ``categories``.
    """

    def __init__(self, constraints, layout: Sequence[Mapping]):
        self.device_types = list(constraints.device_types)
        self.tolerances = constraints.tolerances
        self.correlation_min_rows = constraints.correlation_min_rows
        self.entries = {entry["name"]: entry for entry in layout}
        self.n_columns = max(entry["stop"] for entry in layout)
        missing = sorted(set(constraints.kinds) - set(self.entries))
        if missing:
            raise ValueError(
                f"the preprocessor layout lacks features the constraints use: {missing[:10]}; "
                "fit the preprocessor and the constraints on the same feature dictionary"
            )

        self._build_probability_view(layout)
        self.programs = [self._compile(constraints.row_rules(name)) for name in self.device_types]
        self.rule_ids = [program.rule_ids for program in self.programs]
        self.max_rules = max([1] + [len(ids) for ids in self.rule_ids])
        self._build_correlations(constraints)
        self._device_buffers = {}

    def _build_probability_view(self, layout: Sequence[Mapping]) -> None:
        """Lay out the probability columns: categorical columns, then p(0), p(1) of each binary feature."""
        categorical_columns, self.binary_columns = [], []
        self.probability_index = {}
        for entry in layout:
            if entry["kind"] == "categorical":
                positions = range(len(categorical_columns), len(categorical_columns) + len(entry["categories"]))
                self.probability_index[entry["name"]] = (list(positions), [float(c) for c in entry["categories"]])
                categorical_columns.extend(range(entry["start"], entry["stop"]))
        offset = len(categorical_columns)
        for entry in layout:
            if entry["kind"] == "binary":
                position = offset + 2 * len(self.binary_columns)
                self.probability_index[entry["name"]] = ([position, position + 1], [0.0, 1.0])
                self.binary_columns.append(entry["start"])
        self.categorical_columns = categorical_columns
        self.n_probability_columns = offset + 2 * len(self.binary_columns)

    def _scaled(self, entry: Mapping, value: float) -> float:
        span = entry["maximum"] - entry["minimum"]
        return 2.0 * (value - entry["minimum"]) / span - 1.0

    def _atom(self, program: _ClassProgram, condition: Condition) -> int:
        """Return the index of a condition in ``program``, compiling it the first time."""
        index, new = program.add((condition.feature, condition.op, condition.value))
        if not new:
            return index

        entry = self.entries[condition.feature]
        tolerance = self.tolerances[condition.feature]
        if entry["kind"] in ("binary", "categorical"):
            positions, values = self.probability_index[condition.feature]
            holds = condition_holds(np.asarray(values), condition, tolerance)
            mask = np.zeros(self.n_probability_columns)
            mask[np.asarray(positions)[holds]] = 1.0
            program.set_masks.append((index, mask))
            return index

        if entry["maximum"] == entry["minimum"]:
            # The preprocessor maps a feature constant in training to 0 and
            # decodes every value back to that constant.
            holds = bool(condition_holds(np.asarray([entry["minimum"]]), condition, tolerance)[0])
            program.constants.append((index, holds))
            return index

        column = entry["start"]
        scale = 2.0 / (entry["maximum"] - entry["minimum"])
        if condition.op in ("==", "<=", ">=", "between"):
            low, high = _interval(condition, tolerance)
            low = self._scaled(entry, low) if math.isfinite(low) else -math.inf
            high = self._scaled(entry, high) if math.isfinite(high) else math.inf
            program.intervals.append((index, column, low, high))
        elif condition.op == "in":
            bounds = [(self._scaled(entry, c - tolerance), self._scaled(entry, c + tolerance)) for c in condition.value]
            program.point_sets.append((index, column, bounds))
        else:
            points = [self._scaled(entry, c) for c in condition.constants()]
            program.exclusions.append((index, column, points, tolerance * scale))
        return index

    def _compile(self, rules) -> _ClassProgram:
        """Compile one device type's row rules into padded tables of atom indices."""
        program = _ClassProgram()
        rows = []
        for rule in rules:
            when = [self._atom(program, condition) for condition in rule.when]
            then = [self._atom(program, condition) for condition in rule.then]
            rows.append((SECTION_CODES[rule.section], when, then))
            program.rule_ids.append(rule.rule_id)

        # One more atom, always true with hinge 0, pads the tables.
        program.true_atom = program.n_atoms
        n_when = max([1] + [len(row[1]) for row in rows])
        n_then = max([1] + [len(row[2]) for row in rows])
        program.when = np.full((max(1, len(rows)), n_when), program.true_atom, dtype=np.int64)
        program.then = np.full((max(1, len(rows)), n_then), program.true_atom, dtype=np.int64)
        program.section = np.full(max(1, len(rows)), PADDING_SECTION, dtype=np.int64)
        for position, (code, when, then) in enumerate(rows):
            program.when[position, : len(when)] = when
            program.then[position, : len(then)] = then
            program.section[position] = code
        return program

    def _build_correlations(self, constraints) -> None:
        self.correlations = []
        for device_type in self.device_types:
            rules = constraints.correlation_rules(device_type)
            self.correlations.append(
                (
                    [self.entries[rule.first]["start"] for rule in rules],
                    [self.entries[rule.second]["start"] for rule in rules],
                    [float(rule.sign) for rule in rules],
                    [rule.threshold for rule in rules],
                )
            )

    def _buffers(self, reference: torch.Tensor) -> dict:
        """Return the compiled tables as tensors on the device and dtype of ``reference``."""
        key = (reference.device, reference.dtype)
        if key in self._device_buffers:
            return self._device_buffers[key]

        def tensor(values, dtype=reference.dtype):
            return torch.as_tensor(np.asarray(values), dtype=dtype, device=reference.device)

        long = torch.int64
        programs = []
        for program in self.programs:
            # Only the probability columns this device type's conditions use.
            set_masks = np.stack([mask for _, mask in program.set_masks], axis=1) if program.set_masks else np.zeros((0, 0))
            used = np.flatnonzero(set_masks.any(axis=1)) if program.set_masks else np.zeros(0, dtype=np.int64)
            programs.append(
                {
                    "probability_columns": tensor(used, long),
                    "set_masks": tensor(set_masks[used]),
                    "set_atoms": tensor([a for a, _ in program.set_masks], long),
                    "interval_atoms": tensor([a for a, *_ in program.intervals], long),
                    "interval_columns": tensor([c for _, c, _, _ in program.intervals], long),
                    "interval_low": tensor([low for *_, low, _ in program.intervals]),
                    "interval_high": tensor([high for *_, high in program.intervals]),
                    "true_atom": tensor([program.true_atom], long),
                    "when": tensor(program.when, long),
                    "then": tensor(_consequence_matrix(program)),
                    "sections": {
                        name: tensor(np.flatnonzero(program.section == code), long)
                        for name, code in SECTION_CODES.items()
                    },
                }
            )
        buffers = {
            "categorical_columns": tensor(self.categorical_columns, long),
            "binary_columns": tensor(self.binary_columns, long),
            "programs": programs,
        }
        self._device_buffers[key] = buffers
        return buffers

    def _probabilities(self, x: torch.Tensor, buffers: dict) -> torch.Tensor:
        categorical = x.index_select(1, buffers["categorical_columns"])
        p_one = ((x.index_select(1, buffers["binary_columns"]) + 1.0) / 2.0).clamp(0.0, 1.0)
        binary = torch.stack([1.0 - p_one, p_one], dim=2).reshape(x.shape[0], -1)
        return torch.cat([categorical, binary], dim=1)

    def atom_values(self, x: torch.Tensor, position: int, probabilities: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the truth and hinge of every condition of one device type.

        Parameters
        ----------
        x : torch.Tensor of shape (rows, n_columns)
            Rows of that device type in the preprocessor's space.
        position : int
            The device type's position in ``device_types``.
        probabilities : torch.Tensor, optional
            The rows' probability columns, if already computed.

        Returns
        -------
        truth, hinge : torch.Tensor of shape (rows, n_atoms + 1)
            The last column is the padding atom (truth 1, hinge 0).
        """
        buffers = self._buffers(x)
        compiled = buffers["programs"][position]
        program = self.programs[position]
        rows = x.shape[0]
        truth = x.new_zeros((rows, program.n_atoms + 1)).index_fill(1, compiled["true_atom"], 1.0)
        hinge = x.new_zeros((rows, program.n_atoms + 1))

        if program.set_masks:
            if probabilities is None:
                probabilities = self._probabilities(x, buffers)
            mass = probabilities.index_select(1, compiled["probability_columns"]) @ compiled["set_masks"]
            # relu and clamp keep a satisfied condition at hinge 0 with no
            # gradient, and stop a group that is not a distribution (raw
            # logits) from turning a hinge negative.
            truth = truth.index_copy(1, compiled["set_atoms"], mass.clamp(0.0, 1.0))
            hinge = hinge.index_copy(1, compiled["set_atoms"], torch.relu(1.0 - mass))

        if program.intervals:
            values = x.index_select(1, compiled["interval_columns"])
            distance = torch.relu(compiled["interval_low"] - values) + torch.relu(values - compiled["interval_high"])
            truth = truth.index_copy(1, compiled["interval_atoms"], (distance == 0).to(x.dtype))
            hinge = hinge.index_copy(1, compiled["interval_atoms"], distance)

        columns_truth, columns_hinge, atoms = [], [], []
        for atom, column, bounds in program.point_sets:
            values = x[:, column : column + 1]
            low = values.new_tensor([b[0] for b in bounds])
            high = values.new_tensor([b[1] for b in bounds])
            distance = (torch.relu(low - values) + torch.relu(values - high)).min(dim=1).values
            atoms.append(atom)
            columns_hinge.append(distance)
            columns_truth.append((distance == 0).to(x.dtype))
        for atom, column, points, tolerance in program.exclusions:
            values = x[:, column : column + 1]
            distance = torch.relu(tolerance - (values - values.new_tensor(points)).abs()).sum(dim=1)
            atoms.append(atom)
            columns_hinge.append(distance)
            columns_truth.append((distance == 0).to(x.dtype))
        for atom, holds in program.constants:
            atoms.append(atom)
            columns_hinge.append(x.new_full((rows,), 0.0 if holds else 1.0))
            columns_truth.append(x.new_full((rows,), 1.0 if holds else 0.0))
        if atoms:
            index = torch.tensor(atoms, device=x.device)
            truth = truth.index_copy(1, index, torch.stack(columns_truth, dim=1))
            hinge = hinge.index_copy(1, index, torch.stack(columns_hinge, dim=1))
        return truth, hinge

    def _check_inputs(self, x: torch.Tensor, class_index: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.n_columns:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (batch, {self.n_columns}) in the preprocessor's space")
        if class_index.shape != (x.shape[0],) or class_index.dtype != torch.int64:
            raise ValueError(
                f"class_index must be a LongTensor of shape ({x.shape[0]},), got {class_index.dtype} of shape {tuple(class_index.shape)}"
            )
        if len(class_index) and (class_index.min() < 0 or class_index.max() >= len(self.device_types)):
            raise ValueError(f"class_index values must lie in [0, {len(self.device_types)}), the positions in ConstraintSet.device_types")

    def _class_penalties(self, x: torch.Tensor, class_index: torch.Tensor, detach_conditions: bool):
        """Yield, per device type in the batch, its row positions, its rule penalties and the rule columns of each section."""
        buffers = self._buffers(x)
        probabilities = self._probabilities(x, buffers)
        for position in torch.unique(class_index).tolist():
            rows = torch.nonzero(class_index == position).squeeze(1)
            truth, hinge = self.atom_values(x.index_select(0, rows), position, probabilities.index_select(0, rows))
            if detach_conditions:
                truth = truth.detach()
            compiled = buffers["programs"][position]
            gate = truth[:, compiled["when"]].prod(dim=2)
            # A product with the atom-by-rule count matrix sums each rule's
            # consequence hinges. It replaces a gather of the padded (rows,
            # rules, atoms) table, whose backward pass cost several times more.
            broken = hinge @ compiled["then"]
            yield rows, gate * broken, compiled["sections"]

    def row_penalties(self, x: torch.Tensor, class_index: torch.Tensor, detach_conditions: bool = True) -> torch.Tensor:
        """Return each row's penalty for each row rule of its device type.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_columns)
            Rows in the preprocessor's space.
        class_index : torch.LongTensor of shape (batch,)
            Position of each row's device type in ``device_types``.
        detach_conditions : bool, default True
            Stop gradients through the ``when`` truths, so the generator
            meets a rule by fixing its consequence rather than by avoiding
            the condition (e.g. by emitting fewer UDP packets).

        Returns
        -------
        torch.Tensor of shape (batch, max_rules)
            Entry ``[i, j]`` belongs to rule ``rule_ids[class_index[i]][j]``;
            positions past a device type's rule count are 0.
        """
        self._check_inputs(x, class_index)
        result = x.new_zeros((x.shape[0], self.max_rules))
        for rows, penalty, _ in self._class_penalties(x, class_index, detach_conditions):
            padded = torch.nn.functional.pad(penalty, (0, self.max_rules - penalty.shape[1]))
            result = result.index_copy(0, rows, padded)
        return result

    def correlation_penalty(self, x: torch.Tensor, class_index: torch.Tensor) -> torch.Tensor:
        """Return the mean hinge ``relu(threshold - sign * r)`` over checked correlation rules.

        A device type is checked when the batch contains at least
        ``correlation_min_rows`` of its rows. ``r`` is the Pearson
        correlation of those rows in the scaled space. It equals the
        correlation in original units because the scaling is affine.
        """
        hinges = []
        for position in torch.unique(class_index).tolist():
            first, second, signs, thresholds = self.correlations[position]
            rows = class_index == position
            if not first or int(rows.sum()) < self.correlation_min_rows:
                continue
            selected = x[rows]
            a = selected[:, first] - selected[:, first].mean(dim=0)
            b = selected[:, second] - selected[:, second].mean(dim=0)
            r = (a * b).sum(dim=0) / torch.sqrt((a * a).sum(dim=0) * (b * b).sum(dim=0) + CORRELATION_EPSILON)
            hinges.append(torch.relu(x.new_tensor(thresholds) - x.new_tensor(signs) * r))
        if not hinges:
            return x.sum() * 0.0
        return torch.cat(hinges).mean()

    def penalties(self, x: torch.Tensor, class_index: torch.Tensor, detach_conditions: bool = True) -> dict[str, torch.Tensor]:
        """Return the mean hinge penalty of each section.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_columns)
            Generator output in the preprocessor's space.
        class_index : torch.LongTensor of shape (batch,)
            Position of each row's device type in ``device_types``.
        detach_conditions : bool, default True
            See :meth:`row_penalties`.

        Returns
        -------
        dict of str to torch.Tensor
            Scalars ``range`` and ``protocol`` (mean penalty over the row and
            rule pairs of that section) and ``correlation`` (see
            :meth:`correlation_penalty`). Each is 0 when nothing applies.
        """
        self._check_inputs(x, class_index)
        totals = {name: x.sum() * 0.0 for name in SECTION_CODES}
        counts = dict.fromkeys(SECTION_CODES, 0)
        for rows, penalty, sections in self._class_penalties(x, class_index, detach_conditions):
            for name, columns in sections.items():
                totals[name] = totals[name] + penalty.index_select(1, columns).sum()
                counts[name] += len(rows) * len(columns)
        result = {name: totals[name] / max(counts[name], 1) for name in SECTION_CODES}
        result["correlation"] = self.correlation_penalty(x, class_index)
        return result


def _consequence_matrix(program: _ClassProgram) -> np.ndarray:
    """Return the (atoms + 1, rules) matrix counting each atom among each rule's consequences.

    The padding atom gets no count; its hinge is 0 anyway.
    """
    matrix = np.zeros((program.n_atoms + 1, len(program.then)), dtype=np.float64)
    for position, atoms in enumerate(program.then):
        for atom in atoms:
            if atom != program.true_atom:
                matrix[atom, position] += 1.0
    return matrix


def _interval(condition: Condition, tolerance: float) -> tuple[float, float]:
    """Return the interval of values that satisfy ``==``, ``<=``, ``>=`` or ``between``, widened by the tolerance."""
    if condition.op == "==":
        return condition.value - tolerance, condition.value + tolerance
    if condition.op == "<=":
        return -math.inf, condition.value + tolerance
    if condition.op == ">=":
        return condition.value - tolerance, math.inf
    low, high = condition.value
    return low - tolerance, high + tolerance
