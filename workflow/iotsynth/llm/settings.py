"""Settings of the Messages API shared by the LLM stages (config section ``llm``), and the backend choice.

``config/README.md`` gives each field's meaning and the reason for its
default. The checks here repeat the config schema, so the library rejects bad
values when it is called without Snakemake too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

LOGGER = logging.getLogger(__name__)

BACKENDS = ("auto", "anthropic", "offline")
TOOL_CHOICES = ("forced", "auto")


@dataclass(frozen=True)
class LLMSettings:
    """Backend choice and Messages API settings (config section ``llm``)."""

    backend: str = "auto"
    model: str = "claude-sonnet-5-5"
    max_tokens: int = 32000
    timeout: float = 600.0
    max_retries: int = 4
    max_repair_attempts: int = 2
    tool_choice: str = "auto"
    base_url: str | None = None
    cache_dir: str = "resources/llm-cache"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"llm.backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.tool_choice not in TOOL_CHOICES:
            raise ValueError(f"llm.tool_choice must be one of {list(TOOL_CHOICES)}, got {self.tool_choice!r}")
        if not self.model:
            raise ValueError("llm.model must be a model id such as 'claude-sonnet-5-5'")
        if self.max_tokens < 1:
            raise ValueError(f"llm.max_tokens must be at least 1, got {self.max_tokens!r}")
        if self.timeout <= 0:
            raise ValueError(f"llm.timeout must be above 0 seconds, got {self.timeout!r}")
        if self.max_retries < 0 or self.max_repair_attempts < 0:
            raise ValueError("llm.max_retries and llm.max_repair_attempts must be 0 or more")

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> LLMSettings:
        return settings_from_section(cls, section, "llm")


def settings_from_section(cls, section: Mapping[str, Any] | None, name: str):
    """Build the settings dataclass ``cls`` from a flat config section; absent keys keep their defaults.

    Raises
    ------
    ValueError
        If the section has a key that is not a field of ``cls``; ``name`` is
        the section's name in the message.
    """
    section = dict(section or {})
    allowed = {field.name for field in fields(cls)}
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ValueError(f"{name} has unknown keys {unknown}; allowed are {sorted(allowed)}")
    return cls(**section)


def choose_backend(requested: str, environ: Mapping[str, str] | None = None, stage: str = "constraint",
                   setting: str = "llm.backend") -> str:
    """Resolve a backend setting; for ``auto``, log which backend was taken and why.

    ``stage`` and ``setting`` name the stage and the config key in the log.
    """
    environ = os.environ if environ is None else environ
    if requested != "auto":
        LOGGER.info("%s backend: %s (%s)", stage, requested, setting)
        return requested
    if environ.get("ANTHROPIC_API_KEY"):
        LOGGER.info("%s backend: anthropic (%s is auto and ANTHROPIC_API_KEY is set)", stage, setting)
        return "anthropic"
    LOGGER.info("%s backend: offline (%s is auto and ANTHROPIC_API_KEY is not set)", stage, setting)
    return "offline"
