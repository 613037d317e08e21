"""Settings of the constraint stage, read from the ``constraints`` config section.

``config/README.md`` gives each field's meaning and the reason for its
default. The checks here repeat the config schema, so the library rejects bad
values when it is called without Snakemake too. The ``llm`` section, which
the validation stage reads too, is :class:`iotsynth.llm.settings.LLMSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Re-exported, so that importing LLMSettings from this module keeps working.
from iotsynth.llm.settings import LLMSettings  # noqa: F401


def _check_range(name: str, value: float, low: float, high: float, inclusive_low: bool = True) -> None:
    below = value < low if inclusive_low else value <= low
    if below or value > high:
        bracket = "[" if inclusive_low else "("
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")


def _check_quantile_pair(name: str, pair: tuple[float, float]) -> None:
    if len(pair) != 2 or not 0.0 <= pair[0] < pair[1] <= 1.0:
        raise ValueError(f"{name} must be two quantiles 0 <= low < high <= 1, got {list(pair)!r}")


@dataclass(frozen=True)
class ConstraintSettings:
    """Derivation, prompt and evaluation settings of constraints (config section ``constraints``)."""

    range_quantiles: tuple[float, float] = (0.001, 0.999)
    range_margin: float = 0.05
    typical_quantiles: tuple[float, float] = (0.05, 0.95)
    category_min_share: float = 0.001
    correlation_candidates: int = 200
    correlation_min_strength: float = 0.5
    correlation_min_varying_share: float = 0.05
    correlation_max_per_device_type: int = 15
    correlation_fraction: float = 0.5
    correlation_min_rows: int = 8
    rule_min_support: int = 20
    rule_min_confidence: float = 0.995
    rule_max_per_device_type: int = 40
    rule_narrow_fraction: float = 0.5
    prompt_top_categories: int = 10
    prompt_top_edges: int = 40
    relative_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        _check_quantile_pair("constraints.ranges.quantiles", self.range_quantiles)
        _check_quantile_pair("constraints.ranges.typical_quantiles", self.typical_quantiles)
        _check_range("constraints.ranges.margin", self.range_margin, 0.0, 10.0)
        _check_range("constraints.ranges.category_min_share", self.category_min_share, 0.0, 0.5)
        _check_range("constraints.correlations.min_strength", self.correlation_min_strength, 0.0, 1.0)
        _check_range("constraints.correlations.min_varying_share", self.correlation_min_varying_share, 0.0, 0.5)
        _check_range("constraints.correlations.fraction", self.correlation_fraction, 0.0, 1.0, inclusive_low=False)
        _check_range("constraints.rules.min_confidence", self.rule_min_confidence, 0.5, 1.0)
        _check_range("constraints.rules.narrow_fraction", self.rule_narrow_fraction, 0.0, 1.0, inclusive_low=False)
        for name in ("correlation_candidates", "correlation_max_per_device_type", "rule_max_per_device_type",
                     "prompt_top_categories", "prompt_top_edges"):
            if getattr(self, name) < 0:
                raise ValueError(f"constraints setting {name} must be 0 or more, got {getattr(self, name)!r}")
        if self.correlation_min_rows < 3:
            raise ValueError(f"constraints.correlations.min_rows must be at least 3, got {self.correlation_min_rows!r}")
        if self.rule_min_support < 1:
            raise ValueError(f"constraints.rules.min_support must be at least 1, got {self.rule_min_support!r}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> ConstraintSettings:
        """Read the nested ``constraints`` config section."""
        section = section or {}

        known = {"ranges", "correlations", "rules", "prompt"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"constraints has unknown keys {unknown}; allowed are {sorted(known)}")
        ranges = section.get("ranges", {})
        correlations = section.get("correlations", {})
        rules = section.get("rules", {})
        prompt = section.get("prompt", {})

        flat = {
            "range_quantiles": ranges.get("quantiles"),
            "range_margin": ranges.get("margin"),
            "typical_quantiles": ranges.get("typical_quantiles"),
            "category_min_share": ranges.get("category_min_share"),
            "correlation_candidates": correlations.get("candidates"),
            "correlation_min_strength": correlations.get("min_strength"),
            "correlation_min_varying_share": correlations.get("min_varying_share"),
            "correlation_max_per_device_type": correlations.get("max_per_device_type"),
            "correlation_fraction": correlations.get("fraction"),
            "correlation_min_rows": correlations.get("min_rows"),
            "rule_min_support": rules.get("min_support"),
            "rule_min_confidence": rules.get("min_confidence"),
            "rule_max_per_device_type": rules.get("max_per_device_type"),
            "rule_narrow_fraction": rules.get("narrow_fraction"),
            "prompt_top_categories": prompt.get("top_categories"),
            "prompt_top_edges": prompt.get("top_edges"),
        }

        values = {key: value for key, value in flat.items() if value is not None}
        for key in ("range_quantiles", "typical_quantiles"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)

