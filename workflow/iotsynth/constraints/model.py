"""The constraint file: its schema, its parser and :class:`ConstraintSet`.

``results/constraints/constraints.json`` follows
``workflow/schemas/constraints.schema.json``. The parser checks the schema
and then what a schema cannot express:

- every feature name is in the feature dictionary;
- no range is inverted;
- binary features are compared with 0 and 1 only;
- a correlation pairs two different non-categorical features;
- rule ids are unique.

It collects every problem before it raises, so an LLM reply can be sent back
with the full list.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema
import numpy as np
import pandas as pd

from iotsynth.constraints import rules as rule_compiler
from iotsynth.documents import read_json, write_json

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "iotsynth-constraints"
FORMAT_VERSION = 1
SECTIONS = ("numerical_constraints", "feature_correlations", "protocol_rules")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "constraints.schema.json"
MAX_LISTED_ERRORS = 40


class ConstraintValidationError(ValueError):
    """Constraints that break the schema or name unknown features.

    Attributes
    ----------
    errors : list of str
        One line per problem, each naming the key path.
    """

    def __init__(self, source: str, errors: Sequence[str]):
        self.errors = list(errors)
        listed = "\n  ".join(self.errors[:MAX_LISTED_ERRORS])
        more = len(self.errors) - MAX_LISTED_ERRORS
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{source}: {len(self.errors)} invalid constraint entries:\n  {listed}{suffix}")


@functools.cache
def load_schema() -> dict:
    """Return the constraint file schema (draft 2020-12)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def sections_schema() -> dict:
    """Return the schema of one device type's three sections, with no ``$ref``.

    This is the input schema of the LLM tool call. References are inlined
    because the tool schema travels alone, without the file's ``$defs``.
    """
    schema = load_schema()
    definitions = schema["$defs"]

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].removeprefix("#/$defs/")
                return inline(copy.deepcopy(definitions[name]))
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(copy.deepcopy(definitions["sections"]))


def _schema_errors(instance: object, schema: dict, prefix: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        location = "/".join([prefix, *map(str, error.absolute_path)]).strip("/") or "top level"
        errors.append(f"{location}: {error.message}")
    return errors


def check_sections(sections: object, kinds: Mapping[str, str], prefix: str = "") -> list[str]:
    """List the problems of one device type's three sections.

    Parameters
    ----------
    sections : object
        Parsed JSON with ``numerical_constraints``, ``feature_correlations``
        and ``protocol_rules`` (other keys are reported).
    kinds : mapping of str to str
        Feature kind by name, from the feature dictionary.
    prefix : str
        Key path of ``sections`` in the enclosing document, for messages.

    Returns
    -------
    list of str
        Empty when the sections are valid.
    """
    errors = _schema_errors(sections, sections_schema(), prefix)
    if errors:
        return errors

    errors += _check_numerical(sections["numerical_constraints"], kinds, f"{prefix}/numerical_constraints")
    errors += _check_correlations(sections["feature_correlations"], kinds, f"{prefix}/feature_correlations")
    errors += _check_protocol_rules(sections["protocol_rules"], kinds, f"{prefix}/protocol_rules")
    return [error.lstrip("/") for error in errors]


def _unknown(name: str, kinds: Mapping[str, str], where: str) -> str | None:
    if name in kinds:
        return None
    return f"{where}: unknown feature {name!r}; use a name from the feature dictionary"


def _check_numerical(section: Mapping, kinds: Mapping[str, str], prefix: str) -> list[str]:
    errors = []
    for name, constraint in section.items():
        where = f"{prefix}/{name}"
        unknown = _unknown(name, kinds, where)
        if unknown:
            errors.append(unknown)
            continue

        low, high = constraint["min"], constraint["max"]
        typical_low, typical_high = constraint["typical"]
        if low > high:
            errors.append(f"{where}: inverted range, min {low} is above max {high}")
        if typical_low > typical_high:
            errors.append(f"{where}/typical: inverted range [{typical_low}, {typical_high}]")
        elif low <= high and (typical_low < low or typical_high > high):
            errors.append(f"{where}/typical: [{typical_low}, {typical_high}] is not inside [min, max] = [{low}, {high}]")

        allowed = constraint.get("allowed", [])
        if kinds[name] == "binary" and any(value not in (0, 1) for value in allowed):
            errors.append(f"{where}/allowed: binary feature takes only 0 and 1, got {allowed}")
        outside = [value for value in allowed if not low <= value <= high]
        if outside:
            errors.append(f"{where}/allowed: values {outside} lie outside [min, max] = [{low}, {high}]")
    return errors


def _check_correlations(section: Sequence, kinds: Mapping[str, str], prefix: str) -> list[str]:
    errors = []
    seen = set()
    for index, item in enumerate(section):
        where = f"{prefix}/{index}/features"
        first, second = item["features"]
        problems = [p for p in (_unknown(first, kinds, where), _unknown(second, kinds, where)) if p]
        errors += problems
        if problems:
            continue

        if first == second:
            errors.append(f"{where}: pairs feature {first!r} with itself")
        for name in (first, second):
            if kinds[name] not in rule_compiler.CORRELATION_KINDS:
                errors.append(f"{where}: {name!r} is categorical; its codes have no order, so Pearson correlation is undefined")
        pair = frozenset((first, second))
        if pair in seen:
            errors.append(f"{where}: pair ({first!r}, {second!r}) is listed twice")
        seen.add(pair)
    return errors


def _check_protocol_rules(section: Sequence, kinds: Mapping[str, str], prefix: str) -> list[str]:
    errors = []
    seen = set()
    for index, rule in enumerate(section):
        if rule["id"] in seen:
            errors.append(f"{prefix}/{index}/id: rule id {rule['id']!r} is used twice")
        seen.add(rule["id"])
        for part in ("if", "then"):
            for position, condition in enumerate(rule[part]):
                errors += _check_condition(condition, kinds, f"{prefix}/{index}/{part}/{position}")
    return errors


def _check_condition(condition: Mapping, kinds: Mapping[str, str], where: str) -> list[str]:
    name, op, value = condition["feature"], condition["op"], condition["value"]
    unknown = _unknown(name, kinds, f"{where}/feature")
    if unknown:
        return [unknown]

    errors = []
    if op == "between" and value[0] > value[1]:
        errors.append(f"{where}/value: inverted range [{value[0]}, {value[1]}] for 'between'")
    constants = value if isinstance(value, list) else [value]
    if kinds[name] == "binary" and op in ("==", "!=", "in", "not_in") and any(v not in (0, 1) for v in constants):
        errors.append(f"{where}/value: binary feature {name!r} takes only 0 and 1, got {value}")
    if not all(math.isfinite(v) for v in constants):
        errors.append(f"{where}/value: constants must be finite numbers, got {value}")
    return errors


def check_document(document: object, kinds: Mapping[str, str] | None = None) -> list[str]:
    """List the problems of a whole constraint document.

    Parameters
    ----------
    document : object
        Parsed JSON.
    kinds : mapping of str to str, optional
        Feature kind by name from the feature dictionary. When given, the
        document's ``features`` must list exactly these features and kinds;
        otherwise the document's own ``features`` are the reference.

    Returns
    -------
    list of str
        Empty when the document is valid.
    """
    errors = _schema_errors(document, load_schema(), "")
    if errors:
        return errors

    own_kinds = {entry["name"]: entry["kind"] for entry in document["features"]}
    if kinds is not None and dict(kinds) != own_kinds:
        missing = sorted(set(kinds) - set(own_kinds))
        extra = sorted(set(own_kinds) - set(kinds))
        changed = sorted(name for name in set(kinds) & set(own_kinds) if kinds[name] != own_kinds[name])
        errors.append(
            f"features: differ from the feature dictionary (missing {missing[:10]}, "
            f"not in the dictionary {extra[:10]}, other kind {changed[:10]}); rebuild the constraints"
        )
    for entry in document["features"]:
        if entry["minimum"] > entry["maximum"]:
            errors.append(f"features/{entry['name']}: inverted training range")

    for device_type, sections in document["device_types"].items():
        body = {key: sections[key] for key in SECTIONS}
        errors += check_sections(body, own_kinds, f"device_types/{device_type}")
    return errors


class ConstraintSet:
    """Per-device-type constraints, evaluated in NumPy and PyTorch.

    Build one with :meth:`load` or :meth:`from_document`. The same object
    serves the generators (:meth:`torch_penalties`), the rejection filter
    (:meth:`row_violation_score`) and the fidelity report
    (:meth:`violation_rates`).

    Attributes
    ----------
    device_types : list of str
        Device types in sorted order. ``class_index`` values of
        :meth:`torch_penalties` index this list.
    kinds : dict of str to str
        Feature kind by name, in feature-dictionary order.
    correlation_fraction : float
        A correlation holds when ``sign * r >= correlation_fraction * strength``.
    correlation_min_rows : int
        Rows of one device type needed before its correlations are checked.
    """

    def __init__(self, document: Mapping):
        self.document = copy.deepcopy(dict(document))
        self.device_types = sorted(self.document["device_types"])
        self.kinds = {entry["name"]: entry["kind"] for entry in self.document["features"]}
        evaluation = self.document["evaluation"]
        self.correlation_fraction = float(evaluation["correlation_fraction"])
        self.correlation_min_rows = int(evaluation["correlation_min_rows"])
        self.tolerances = rule_compiler.feature_tolerances(self.document, float(evaluation["relative_tolerance"]))
        self._row_rules = {
            name: rule_compiler.row_rules(self.document["device_types"][name]) for name in self.device_types
        }
        self._correlation_rules = {
            name: rule_compiler.correlation_rules(self.document["device_types"][name], self.correlation_fraction)
            for name in self.device_types
        }
        self._torch_programs = {}

    @classmethod
    def from_document(
        cls, document: object, kinds: Mapping[str, str] | None = None, source: str = "<constraints>"
    ) -> ConstraintSet:
        """Validate a parsed document and build the set.

        Raises
        ------
        ConstraintValidationError
            Listing every problem found, each with its key path.
        """
        errors = check_document(document, kinds)
        if errors:
            raise ConstraintValidationError(source, errors)
        return cls(document)

    @classmethod
    def load(cls, path: str | Path, dictionary: pd.DataFrame | None = None) -> ConstraintSet:
        """Read and validate ``constraints.json``.

        Parameters
        ----------
        path : str or pathlib.Path
            The constraint file.
        dictionary : pandas.DataFrame, optional
            The feature dictionary; when given, the file must list the same
            features with the same kinds.
        """
        path = Path(path)
        document = read_json(path, "constraint file", "constraints")
        kinds = None if dictionary is None else dict(zip(dictionary["name"], dictionary["kind"]))
        return cls.from_document(document, kinds, source=str(path))

    def save(self, path: str | Path) -> None:
        """Write the document as JSON, creating parent folders."""
        write_json(path, self.document, indent=2)

    def sections(self, device_type: str) -> dict:
        """Return the constraint sections of one device type."""
        self._check_device_type(device_type)
        return self.document["device_types"][device_type]

    def row_rules(self, device_type: str) -> list[rule_compiler.RowRule]:
        """Return the range and protocol rules of one device type."""
        self._check_device_type(device_type)
        return self._row_rules[device_type]

    def correlation_rules(self, device_type: str) -> list[rule_compiler.CorrelationRule]:
        """Return the correlation rules of one device type."""
        self._check_device_type(device_type)
        return self._correlation_rules[device_type]

    def counts(self) -> pd.DataFrame:
        """Return the number of constraints per device type and section."""
        rows = [
            {
                "device_type": name,
                "numerical_constraints": len(self.sections(name)["numerical_constraints"]),
                "feature_correlations": len(self.sections(name)["feature_correlations"]),
                "protocol_rules": len(self.sections(name)["protocol_rules"]),
            }
            for name in self.device_types
        ]
        return pd.DataFrame(rows)

    def violations(self, frame: pd.DataFrame, device_type: str) -> pd.DataFrame:
        """Return which rows break which row rule of one device type.

        See :func:`iotsynth.constraints.evaluate.violations`.
        """
        from iotsynth.constraints import evaluate

        return evaluate.violations(self, frame, device_type)

    def violation_rates(self, frame: pd.DataFrame, labels: Sequence[str] | np.ndarray) -> pd.DataFrame:
        """Return per-rule and per-device-type violation rates.

        See :func:`iotsynth.constraints.evaluate.violation_rates`.
        """
        from iotsynth.constraints import evaluate

        return evaluate.violation_rates(self, frame, labels)

    def row_violation_score(self, frame: pd.DataFrame, labels: Sequence[str] | np.ndarray) -> np.ndarray:
        """Return the share of its device type's row rules each row breaks.

        See :func:`iotsynth.constraints.evaluate.row_violation_score`.
        """
        from iotsynth.constraints import evaluate

        return evaluate.row_violation_score(self, frame, labels)

    def torch_penalties(
        self, x: torch.Tensor, class_index: torch.Tensor, preprocessor, detach_conditions: bool = True
    ) -> dict[str, torch.Tensor]:
        """Return differentiable mean hinge penalties for generator output.

        See :meth:`iotsynth.constraints.penalties.TorchConstraints.penalties`.
        The compiled form is kept per preprocessor, so repeated calls in a
        training loop compile once.
        """
        return self.torch_program(preprocessor).penalties(x, class_index, detach_conditions=detach_conditions)

    def torch_program(self, preprocessor):
        """Return the constraints compiled for one preprocessor's layout."""
        from iotsynth.constraints.penalties import TorchConstraints

        key = id(preprocessor)
        cached = self._torch_programs.get(key)
        if cached is None or cached[0] is not preprocessor:
            cached = (preprocessor, TorchConstraints(self, preprocessor.layout_))
            self._torch_programs[key] = cached
        return cached[1]

    def _check_device_type(self, device_type: str) -> None:
        if device_type not in self.document["device_types"]:
            raise KeyError(
                f"device type {device_type!r} has no constraints; known device types are {self.device_types}"
            )
