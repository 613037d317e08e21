"""Anthropic backend of the validation stage: one tool call per device type.

:class:`iotsynth.llm.backend.ToolBackend` sends the request, with the SDK
client, its retries (``llm.max_retries`` after HTTP 429 and 5xx, connection
errors and timeouts), ``llm.tool_choice`` and the reply cache that the
constraint stage uses too. The reply must call the plausibility tool. A
reply whose tool input fails :func:`~iotsynth.validation.prompt.check_reply`
goes back to the model as an error tool result listing every problem,
``validation.max_repair_attempts`` times; after that the stage fails with
those problems.

Validated replies are cached under ``<llm.cache_dir>/validation/``, keyed by
the hash of model and request, so a rerun sends nothing and needs no API key.
"""

from __future__ import annotations

from iotsynth.llm.backend import LLMBackendError, ToolBackend
from iotsynth.llm.cache import ReplyCache
from iotsynth.llm.settings import LLMSettings
from iotsynth.validation.prompt import TOOL_NAME, ValidationPrompt, check_reply


class ValidationBackendError(LLMBackendError):
    """A validation request failed after the SDK's retries, or could not be sent."""


class ValidationReplyError(ValueError):
    """The last permitted reply is still invalid.

    Attributes
    ----------
    errors : list of str
        One line per problem.
    """

    def __init__(self, message: str, errors: list[str]):
        self.errors = list(errors)
        super().__init__(f"{message}: " + "; ".join(self.errors))


class AnthropicValidator(ToolBackend):
    """Request, check and cache plausibility scores from the Messages API.

    Parameters
    ----------
    settings, cache, api_key, max_repair_attempts, client
        As for :class:`~iotsynth.llm.backend.ToolBackend`. The cache is
        ``ReplyCache(llm.cache_dir, "validation")`` and the repair attempts
        come from ``validation.max_repair_attempts``.
    max_doubted : int
        Most doubted features a reply may list.
    """

    tool_name = TOOL_NAME
    reply_field = "reply"
    request_name = "validation request"
    reply_name = "validation reply"
    error_type = ValidationBackendError
    missing_key_message = (
        "the validation backend is anthropic and a reply is not in the cache, but ANTHROPIC_API_KEY is not "
        "set; set it, or set validation.backend to offline"
    )
    tool_input_hint = "score and doubted_features"
    invalid_heading = "The reply is invalid:"

    def __init__(
        self,
        settings: LLMSettings,
        cache: ReplyCache,
        api_key: str | None,
        max_doubted: int,
        max_repair_attempts: int,
        client=None,
    ):
        super().__init__(settings, cache, api_key, max_repair_attempts, client=client)
        self.max_doubted = max_doubted

    def score(self, prompt: ValidationPrompt) -> tuple[dict, dict]:
        """Return the validated tool input of one device type and an audit record.

        Returns
        -------
        reply : dict
            ``score``, ``doubted_features`` and optionally ``comment``.
        record : dict
            ``key`` (the request hash), ``device_type``, ``model``,
            ``created``, ``requests``, ``from_cache`` and ``replies`` (raw
            API replies).

        Raises
        ------
        ValidationReplyError
            If the last permitted reply is still invalid.
        ValidationBackendError
            If a request fails after the SDK's retries.
        """
        return self.request(prompt, lambda reply: check_reply(reply, prompt.features, self.max_doubted))

    def invalid_reply_error(self, prompt: ValidationPrompt, requests: int, errors: list[str]) -> ValidationReplyError:
        """Return the error for a reply that is still invalid after ``requests`` requests."""
        message = (
            f"{self.settings.model} validation reply for device type {prompt.device_type!r} is invalid after "
            f"{requests} requests"
        )
        return ValidationReplyError(message, errors)
