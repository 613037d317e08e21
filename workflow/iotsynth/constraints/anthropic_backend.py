"""Anthropic backend: ask a Claude model for one device type's constraints.

One request per device type through :class:`iotsynth.llm.backend.ToolBackend`,
which also sends invalid replies back, retries and caches. The reply must be
a call of the tool ``record_constraints`` whose input schema is the
constraint sections schema. A reply that fails validation goes back to the
model as an error tool result listing every problem, up to
``llm.max_repair_attempts`` times. After that the run fails with those
problems.
"""

from __future__ import annotations

from collections.abc import Mapping

from iotsynth.constraints.model import ConstraintValidationError, check_sections
from iotsynth.constraints.prompt import TOOL_NAME, Prompt
from iotsynth.llm.backend import LLMBackendError, ToolBackend
from iotsynth.llm.cache import ReplyCache
from iotsynth.llm.settings import LLMSettings


class ConstraintBackendError(LLMBackendError):
    """A request to the LLM failed after the SDK's retries, or could not be sent."""


class AnthropicBackend(ToolBackend):
    """Request, validate and cache constraints from the Messages API.

    The parameters are those of :class:`~iotsynth.llm.backend.ToolBackend`
    less ``max_repair_attempts``, which comes from
    ``settings.max_repair_attempts`` (``llm.max_repair_attempts``).
    """

    tool_name = TOOL_NAME
    reply_field = "sections"
    request_name = "request"
    reply_name = "reply"
    error_type = ConstraintBackendError
    missing_key_message = (
        "llm.backend is anthropic and a reply is not in the cache, but ANTHROPIC_API_KEY is not set; "
        "set it, or use llm.backend: offline"
    )
    tool_input_hint = "all three sections"
    invalid_heading = "The constraints are invalid:"

    def __init__(self, settings: LLMSettings, cache: ReplyCache, api_key: str | None, client=None):
        super().__init__(settings, cache, api_key, settings.max_repair_attempts, client=client)

    def constraints_for(self, prompt: Prompt, kinds: Mapping[str, str]) -> tuple[dict, dict]:
        """Return the validated sections of one device type and an audit record.

        Parameters
        ----------
        prompt : Prompt
            The device type's prompt.
        kinds : mapping of str to str
            Feature kind by name, for validation.

        Returns
        -------
        sections : dict
            ``numerical_constraints``, ``feature_correlations`` and
            ``protocol_rules``.
        record : dict
            ``key`` (the prompt hash), ``model``, ``created``,
            ``from_cache``, ``requests`` and ``replies`` (raw API replies).

        Raises
        ------
        ConstraintValidationError
            If the last permitted reply is still invalid.
        ConstraintBackendError
            If a request fails after the SDK's retries.
        """
        return self.request(prompt, lambda sections: check_sections(sections, kinds))

    def invalid_reply_error(self, prompt: Prompt, requests: int, errors: list[str]) -> ConstraintValidationError:
        """Return the error for a reply that is still invalid after ``requests`` requests."""
        source = f"{self.settings.model} reply for device type {prompt.device_type!r} after {requests} requests"
        return ConstraintValidationError(source, errors)
