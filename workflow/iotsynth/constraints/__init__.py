"""Per-device-type constraints on packet features.

A constraint set holds, for each device type, three sections:
``numerical_constraints`` (value ranges), ``feature_correlations`` (sign and
strength of a pair's correlation) and ``protocol_rules`` (implications such as
"when is_udp is 1 then every TCP flag is 0"). It comes from an LLM
(:mod:`~iotsynth.constraints.anthropic_backend`) or from the training data
alone (:mod:`~iotsynth.constraints.offline`), is validated by
:mod:`~iotsynth.constraints.model`, and is evaluated by one class,
:class:`ConstraintSet`, in NumPy and in PyTorch.
"""

from iotsynth.constraints.model import (
    ConstraintSet,
    ConstraintValidationError,
    check_document,
    check_sections,
    load_schema,
    sections_schema,
)

__all__ = [
    "ConstraintSet",
    "ConstraintValidationError",
    "check_document",
    "check_sections",
    "load_schema",
    "sections_schema",
]
