"""Anthropic backend of the validation stage: one tool call per device type.

The SDK client, its retries (``llm.max_retries`` after HTTP 429 and 5xx,
connection errors and timeouts) and the reply cache come from the
constraint stage (:mod:`iotsynth.constraints.anthropic_backend`,
:mod:`iotsynth.constraints.cache`), and so does ``llm.tool_choice``.
``forced`` sends ``tool_choice`` type ``tool``, so the model must call the
plausibility tool. ``auto`` is the default, because the default model
rejects a forced choice. It lets the model answer without the call, and
such a reply counts as invalid.
A reply whose tool input fails
:func:`~iotsynth.validation.prompt.check_reply` goes back to the model as an
error tool result listing every problem, ``validation.max_repair_attempts``
times; after that the stage fails with those problems.

Validated replies are cached under ``<llm.cache_dir>/validation/``, keyed by
the hash of model and request, so a rerun sends nothing and needs no API key.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anthropic

from iotsynth.constraints.anthropic_backend import (
    AnthropicBackend,
    ConstraintBackendError,
    request_until_valid,
    store_reply,
)
from iotsynth.constraints.cache import ReplyCache
from iotsynth.constraints.settings import LLMSettings
from iotsynth.validation.prompt import TOOL_NAME, ValidationPrompt, check_reply

LOGGER = logging.getLogger(__name__)


class ValidationBackendError(ConstraintBackendError):
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


class ValidationCache(ReplyCache):
    """The constraint stage's reply cache, in the folder ``<directory>/validation``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory) / "validation"


def tool_choice_of(settings: LLMSettings) -> dict:
    """Return the request's ``tool_choice`` for ``llm.tool_choice``: the plausibility tool when forced, else auto."""
    return {"type": "tool", "name": TOOL_NAME} if settings.tool_choice == "forced" else {"type": "auto"}


class AnthropicValidator:
    """Request, check and cache plausibility scores from the Messages API.

    Parameters
    ----------
    settings : LLMSettings
        Model, token limit, timeout, retries, base URL and ``tool_choice``.
    cache : ValidationCache
        Where validated replies are kept.
    api_key : str or None
        The key sent with requests. None is allowed while every reply comes
        from the cache; the first request then fails with a clear message.
    max_doubted : int
        Most doubted features a reply may list.
    max_repair_attempts : int
        Times an invalid reply is sent back with its problems.
    client : anthropic.Anthropic, optional
        A ready client, e.g. one pointed at a test server.
    """

    def __init__(
        self,
        settings: LLMSettings,
        cache: ValidationCache,
        api_key: str | None,
        max_doubted: int,
        max_repair_attempts: int,
        client=None,
    ):
        self.settings = settings
        self.cache = cache
        self.max_doubted = max_doubted
        self.max_repair_attempts = max_repair_attempts
        # Only its client factory is used: key check, base URL, timeout and retries.
        self._connection = AnthropicBackend(settings, cache, api_key, client=client)

    def client(self):
        """Return the SDK client, creating it on first use."""
        try:
            return self._connection.client()
        except ConstraintBackendError as error:
            raise ValidationBackendError(
                "the validation backend is anthropic and a reply is not in the cache, but ANTHROPIC_API_KEY is not "
                "set; set it, or set validation.backend to offline"
            ) from error

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
        model = self.settings.model
        key = prompt.cache_key(model)
        cached = self._from_cache(key, prompt)
        if cached is not None:
            return cached

        content, attempt, replies, errors = request_until_valid(
            lambda messages: self._send(prompt, messages),
            lambda reply: self._read_reply(reply, prompt),
            prompt.messages(), self.max_repair_attempts, prompt.device_type,
        )
        if errors:
            raise ValidationReplyError(
                f"{model} validation reply for device type {prompt.device_type!r} is invalid after "
                f"{len(replies)} requests",
                errors,
            )
        return content, store_reply(self.cache, key, prompt.device_type, model, attempt, {"reply": content}, replies)

    def _from_cache(self, key: str, prompt: ValidationPrompt) -> tuple[dict, dict] | None:
        record = self.cache.get(key)
        if record is None:
            return None
        errors = check_reply(record.get("reply"), prompt.features, self.max_doubted)
        if errors:
            LOGGER.warning(
                "%s: cached reply %s no longer validates (%s); sending the request again",
                prompt.device_type, self.cache.path(key), errors[0],
            )
            return None
        LOGGER.info("%s: reply read from cache %s, no request sent", prompt.device_type, self.cache.path(key))
        return record["reply"], {**record, "from_cache": True}

    def _send(self, prompt: ValidationPrompt, messages: list[dict]):
        """Send one request; the SDK retries 429, 5xx, connection errors and timeouts."""
        client = self.client()
        device_type = prompt.device_type
        try:
            reply = client.messages.create(
                model=self.settings.model,
                max_tokens=self.settings.max_tokens,
                system=prompt.system,
                messages=messages,
                tools=[prompt.tool],
                tool_choice=tool_choice_of(self.settings),
            )
        except anthropic.APITimeoutError as error:
            raise ValidationBackendError(
                f"validation request for device type {device_type!r} to {client.base_url} timed out after "
                f"{self.settings.timeout} s, {self.settings.max_retries} retries included; raise llm.timeout or try later"
            ) from error
        except anthropic.APIConnectionError as error:
            raise ValidationBackendError(
                f"validation request for device type {device_type!r} could not reach {client.base_url} "
                f"after {self.settings.max_retries} retries: {error}"
            ) from error
        except anthropic.APIStatusError as error:
            hint = ""
            if error.status_code == 400 and self.settings.tool_choice == "forced":
                hint = (
                    "; llm.tool_choice is forced, so if the message is about tool_choice, set llm.tool_choice to "
                    "auto or llm.model to a model that accepts a forced tool choice"
                )
            raise ValidationBackendError(
                f"validation request for device type {device_type!r} failed with HTTP {error.status_code} "
                f"after {self.settings.max_retries} retries: {error.message}{hint}"
            ) from error

        if reply.stop_reason == "max_tokens":
            raise ValidationBackendError(
                f"validation reply for device type {device_type!r} stopped at llm.max_tokens = "
                f"{self.settings.max_tokens} before it was complete; raise llm.max_tokens"
            )
        return reply

    def _read_reply(self, reply, prompt: ValidationPrompt) -> tuple[dict | None, list[str], list[dict]]:
        """Return the tool input, its problems, and the feedback content to send back if any."""
        calls = [block for block in reply.content if block.type == "tool_use" and block.name == TOOL_NAME]
        if not calls:
            message = f"The reply did not call the tool {TOOL_NAME}. Call it once with score and doubted_features."
            return None, [message], [{"type": "text", "text": message}]

        feedback = [
            {"type": "tool_result", "tool_use_id": call.id, "is_error": True, "content": "Ignored: call the tool once."}
            for call in calls[1:]
        ]
        content = calls[0].input
        errors = check_reply(content, prompt.features, self.max_doubted)
        if len(calls) > 1:
            errors = [f"the reply called {TOOL_NAME} {len(calls)} times; call it once", *errors]
        text = "The reply is invalid:\n- " + "\n- ".join(errors) + f"\nCall {TOOL_NAME} again with every problem fixed."
        feedback.insert(0, {"type": "tool_result", "tool_use_id": calls[0].id, "is_error": True, "content": text})
        return content, errors, feedback
