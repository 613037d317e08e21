"""Anthropic backend: ask a Claude model for one device type's constraints.

One request per device type with the official ``anthropic`` SDK. The reply
must be a call of the tool ``record_constraints`` whose input schema is the
constraint sections schema. A reply that fails validation goes back to the
model as an error tool result listing every problem, up to
``llm.max_repair_attempts`` times. After that the run fails with those
problems.
HTTP 429 and 5xx answers, connection errors and timeouts are retried by the
SDK itself (``llm.max_retries``, exponential backoff that honours
``retry-after``).

NOTE: no sampling temperature is sent. SDK 2.x has no such parameter and
sends API version 2026-10-21, which rejects ``temperature`` on every model;
reruns are made repeatable by the reply cache instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone

import anthropic

from iotsynth.constraints.cache import ReplyCache
from iotsynth.constraints.model import ConstraintValidationError, check_sections
from iotsynth.constraints.prompt import TOOL_NAME, Prompt
from iotsynth.constraints.settings import LLMSettings

LOGGER = logging.getLogger(__name__)


class ConstraintBackendError(RuntimeError):
    """A request to the LLM failed after the SDK's retries, or could not be sent."""


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def request_until_valid(send, read, messages: list[dict], max_repair_attempts: int, device_type: str):
    """Send a conversation until a reply passes the checks, sending each invalid one back with its problems.

    Parameters
    ----------
    send : callable
        ``send(messages)`` returns one reply of the Messages API.
    read : callable
        ``read(reply)`` returns ``(content, errors, feedback)``: the parsed
        tool input, its problems (empty when valid) and the user content
        that explains them to the model.
    messages : list of dict
        The first request's messages.
    max_repair_attempts : int
        Invalid replies sent back before giving up.
    device_type : str
        For the log.

    Returns
    -------
    content : object
        The last reply's parsed content.
    attempt : int
        Requests sent.
    replies : list of dict
        Every raw reply, for the audit record.
    errors : list of str
        The last reply's problems; empty when it is valid.
    """
    replies, errors, content = [], [], None
    for attempt in range(1, max_repair_attempts + 2):
        reply = send(messages)
        replies.append(reply.model_dump(mode="json", exclude_none=True))
        content, errors, feedback = read(reply)
        if not errors:
            return content, attempt, replies, []
        LOGGER.warning(
            "%s: reply %d of at most %d is invalid (%d problems), e.g. %s",
            device_type, attempt, max_repair_attempts + 1, len(errors), errors[0],
        )
        assistant = [block.model_dump(mode="json", exclude_none=True) for block in reply.content]
        messages = [*messages, {"role": "assistant", "content": assistant}, {"role": "user", "content": feedback}]
    return content, max_repair_attempts + 1, replies, errors


def store_reply(cache, key: str, device_type: str, model: str, attempt: int, content: dict,
                replies: list[dict]) -> dict:
    """Cache a valid reply with its audit fields and return the record, marked as not from the cache.

    ``content`` contains the parsed reply under the name the stage reads back
    (``sections`` or ``reply``).
    """
    record = {
        "key": key,
        "device_type": device_type,
        "model": model,
        "created": _utc_now(),
        "requests": attempt,
        **content,
        "replies": replies,
    }
    cache.put(key, record)
    LOGGER.info("%s: valid reply after %d request(s), cached as %s", device_type, attempt, key)
    return {**record, "from_cache": False}


class AnthropicBackend:
    """Request, validate and cache constraints from the Messages API.

    Parameters
    ----------
    settings : LLMSettings
        Model, token limit, timeout, retries, repair attempts, tool choice
        and base URL.
    cache : ReplyCache
        Where validated replies are kept.
    api_key : str or None
        The key sent with requests. None is allowed while every reply comes
        from the cache; the first request then fails with a clear message.
    client : anthropic.Anthropic, optional
        A ready client, e.g. one pointed at a test server. By default one is
        made on the first request from ``settings`` and ``api_key``.
    """

    def __init__(self, settings: LLMSettings, cache: ReplyCache, api_key: str | None, client=None):
        self.settings = settings
        self.cache = cache
        self.api_key = api_key
        self._client = client

    def client(self):
        """Return the SDK client, creating it on first use."""
        if self._client is None:
            if not self.api_key:
                raise ConstraintBackendError(
                    "llm.backend is anthropic and a reply is not in the cache, but ANTHROPIC_API_KEY is not set; "
                    "set it, or use llm.backend: offline"
                )
            # The key is passed explicitly, so the SDK reads no credential
            # files or profiles.
            self._client = anthropic.Anthropic(
                api_key=self.api_key,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout,
                max_retries=self.settings.max_retries,
            )
        return self._client

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
        model = self.settings.model
        key = prompt.cache_key(model)
        cached = self._from_cache(key, prompt.device_type, kinds)
        if cached is not None:
            return cached

        sections, attempt, replies, errors = request_until_valid(
            lambda messages: self._send(prompt, messages),
            lambda reply: self._read_reply(reply, kinds, prompt.device_type),
            prompt.messages(), self.settings.max_repair_attempts, prompt.device_type,
        )
        if errors:
            raise ConstraintValidationError(
                f"{model} reply for device type {prompt.device_type!r} after {len(replies)} requests", errors
            )
        return sections, store_reply(self.cache, key, prompt.device_type, model, attempt, {"sections": sections},
                                     replies)

    def _from_cache(self, key: str, device_type: str, kinds: Mapping[str, str]) -> tuple[dict, dict] | None:
        record = self.cache.get(key)
        if record is None:
            return None
        errors = check_sections(record.get("sections"), kinds)
        if errors:
            LOGGER.warning(
                "%s: cached reply %s no longer validates (%s); sending the request again",
                device_type, self.cache.path(key), errors[0],
            )
            return None
        LOGGER.info("%s: reply read from cache %s, no request sent", device_type, self.cache.path(key))
        return record["sections"], {**record, "from_cache": True}

    def _send(self, prompt: Prompt, messages: list[dict]):
        """Send one request; the SDK retries 429, 5xx, connection errors and timeouts."""
        tool_choice = {"type": "tool", "name": TOOL_NAME} if self.settings.tool_choice == "forced" else {"type": "auto"}
        client = self.client()
        try:
            reply = client.messages.create(
                model=self.settings.model,
                max_tokens=self.settings.max_tokens,
                system=prompt.system,
                messages=messages,
                tools=[prompt.tool],
                tool_choice=tool_choice,
            )
        except anthropic.APITimeoutError as error:
            raise ConstraintBackendError(
                f"request for device type {prompt.device_type!r} to {client.base_url} timed out after "
                f"{self.settings.timeout} s, {self.settings.max_retries} retries included; raise llm.timeout or try later"
            ) from error
        except anthropic.APIConnectionError as error:
            raise ConstraintBackendError(
                f"request for device type {prompt.device_type!r} could not reach {client.base_url} "
                f"after {self.settings.max_retries} retries: {error}"
            ) from error
        except anthropic.APIStatusError as error:
            raise ConstraintBackendError(
                f"request for device type {prompt.device_type!r} failed with HTTP {error.status_code} "
                f"after {self.settings.max_retries} retries: {error.message}"
            ) from error

        if reply.stop_reason == "max_tokens":
            raise ConstraintBackendError(
                f"reply for device type {prompt.device_type!r} stopped at llm.max_tokens = "
                f"{self.settings.max_tokens} before it was complete; raise llm.max_tokens"
            )
        return reply

    @staticmethod
    def _read_reply(reply, kinds: Mapping[str, str], device_type: str) -> tuple[dict | None, list[str], list[dict]]:
        """Return the tool input, its problems, and the feedback content to send back if any."""
        calls = [block for block in reply.content if block.type == "tool_use" and block.name == TOOL_NAME]
        if not calls:
            message = f"The reply did not call the tool {TOOL_NAME}. Call it once with all three sections."
            return None, [message], [{"type": "text", "text": message}]

        feedback = []
        for call in calls[1:]:
            feedback.append({"type": "tool_result", "tool_use_id": call.id, "is_error": True, "content": "Ignored: call the tool once."})
        sections = calls[0].input
        errors = check_sections(sections, kinds)
        if len(calls) > 1:
            errors = [f"the reply called {TOOL_NAME} {len(calls)} times; call it once", *errors]
        text = "The constraints are invalid:\n- " + "\n- ".join(errors) + f"\nCall {TOOL_NAME} again with every problem fixed."
        feedback.insert(0, {"type": "tool_result", "tool_use_id": calls[0].id, "is_error": True, "content": text})
        return sections, errors, feedback
