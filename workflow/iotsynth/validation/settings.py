"""Settings of the validation stage, read from the ``validation`` config section.

``config/README.md`` gives each key's meaning and the reason for its
default. The checks here repeat the config schema, so the library rejects
bad values when it is called without Snakemake too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iotsynth.llm.settings import BACKENDS, settings_from_section

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ValidationSettings:
    """Sample sizes, scoring and LLM settings of the validation stage (config section ``validation``).

    Attributes
    ----------
    backend : str or None
        ``auto``, ``anthropic`` or ``offline``; None takes ``llm.backend``.
    split : str
        Split whose synthetic rows are checked.
    sample_rows : int
        Synthetic rows drawn per device type.
    prompt_rows : int
        Rows of that sample listed one by one in the LLM prompt.
    reference_rows : int
        Real training rows per device type that distances are measured to.
    distance_quantile : float
        Quantile of the real-to-real nearest-neighbour distances that a
        synthetic row's distance is compared with.
    max_doubted_features : int
        Most doubted features per device type.
    min_excess_violation : float
        Offline backend: smallest excess of the share of sampled rows over
        the share of real rows on which a feature's rule conditions fail
        that makes it doubted.
    min_excess_deviation : float
        Offline backend: smallest excess of a feature's mean deviation from
        the nearest real row, in scaled units, that makes it doubted.
    max_repair_attempts : int
        Times an invalid LLM reply is sent back with its errors.
    """

    backend: str | None = None
    split: str = "train"
    sample_rows: int = 200
    prompt_rows: int = 20
    reference_rows: int = 2000
    distance_quantile: float = 0.95
    max_doubted_features: int = 5
    min_excess_violation: float = 0.02
    min_excess_deviation: float = 0.1
    max_repair_attempts: int = 1

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"validation.backend must be null or one of {list(BACKENDS)}, got {self.backend!r}")
        if self.split not in SPLITS:
            raise ValueError(f"validation.split must be one of {list(SPLITS)}, got {self.split!r}")
        for name in ("sample_rows", "max_doubted_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"validation.{name} must be at least 1, got {getattr(self, name)!r}")
        # The real-to-real distances need a second reference row.
        if self.reference_rows < 2:
            raise ValueError(f"validation.reference_rows must be at least 2, got {self.reference_rows!r}")
        if self.prompt_rows < 0 or self.max_repair_attempts < 0:
            raise ValueError("validation.prompt_rows and validation.max_repair_attempts must be 0 or more")
        if not 0.0 < self.distance_quantile <= 1.0:
            raise ValueError(f"validation.distance_quantile must lie in (0, 1], got {self.distance_quantile!r}")
        if not 0.0 <= self.min_excess_violation <= 1.0:
            raise ValueError(f"validation.min_excess_violation must lie in [0, 1], got {self.min_excess_violation!r}")
        if self.min_excess_deviation < 0:
            raise ValueError(f"validation.min_excess_deviation must be 0 or more, got {self.min_excess_deviation!r}")

    def requested_backend(self, llm_backend: str) -> str:
        """Return ``backend``, or ``llm_backend`` when ``backend`` is None."""
        return llm_backend if self.backend is None else self.backend

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> ValidationSettings:
        """Read the ``validation`` config section; absent keys keep their defaults."""
        return settings_from_section(cls, section, "validation")
