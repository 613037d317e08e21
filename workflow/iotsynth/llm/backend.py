"""One tool call per device type from the Messages API: send, check, repair and cache.

Both LLM stages send each device type's request to a Claude model with the
official ``anthropic`` SDK, and the reply must call the stage's tool. A reply
whose tool input fails the stage's check goes back to the model as an error
tool result listing every problem, up to ``max_repair_attempts`` times. After
that the stage fails with those problems.
HTTP 429 and 5xx responses, connection errors and timeouts are retried by the
SDK itself (``llm.max_retries``, exponential backoff that honours
``retry-after``).

``llm.tool_choice`` ``forced`` sends ``tool_choice`` type ``tool``, so the
model must call the tool. ``auto`` is the default, because the default model
rejects a forced choice. It lets the model reply without the call, and such
a reply counts as invalid.

Valid replies are cached (:class:`~iotsynth.llm.cache.ReplyCache`), keyed by
the hash of model and request, so a rerun sends nothing and needs no API key.

NOTE: no sampling temperature is sent, because SDK 2.x has no such
parameter and sends API version 2026-10-21, which rejects ``temperature`` on
every model. The reply cache makes reruns repeatable instead.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable

import anthropic

from iotsynth.documents import utc_now
from iotsynth.llm.cache import ReplyCache
from iotsynth.llm.prompt import ToolPrompt
from iotsynth.llm.settings import LLMSettings

LOGGER = logging.getLogger(__name__)


class LLMBackendError(RuntimeError):
    """A request to the LLM failed after the SDK's retries, or could not be sent."""


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
        "created": utc_now(),
        "requests": attempt,
        **content,
        "replies": replies,
    }
    cache.put(key, record)
    LOGGER.info("%s: valid reply after %d request(s), cached as %s", device_type, attempt, key)
    return {**record, "from_cache": False}


def forced_choice_hint(status_code: int, tool_choice: str) -> str:
    """Return the fix to append to an HTTP error message when a forced tool choice may be its cause, else ''."""
    if status_code == 400 and tool_choice == "forced":
        return (
            "; llm.tool_choice is forced, so if the message is about tool_choice, set llm.tool_choice to "
            "auto or llm.model to a model that accepts a forced tool choice"
        )
    return ""


class ToolBackend(abc.ABC):
    """Request, check and cache one stage's tool call per device type from the Messages API.

    A stage subclasses it, sets the class attributes below and implements
    :meth:`invalid_reply_error`. :meth:`request` does the rest.

    Parameters
    ----------
    settings : LLMSettings
        Model, token limit, timeout, retries, ``tool_choice`` and base URL.
    cache : ReplyCache
        Where validated replies are kept.
    api_key : str or None
        The key sent with requests. None is allowed while every reply comes
        from the cache; the first request then fails with a clear message.
    max_repair_attempts : int
        Times an invalid reply is sent back with its problems.
    client : anthropic.Anthropic, optional
        A ready client, e.g. one pointed at a test server. By default one is
        made on the first request from ``settings`` and ``api_key``.

    Attributes
    ----------
    tool_name : str
        The tool the reply must call.
    reply_field : str
        Key of the tool input in a cache record.
    request_name, reply_name : str
        What error messages call a request and a reply.
    error_type : type
        The :class:`LLMBackendError` subclass raised when a request fails.
    missing_key_message : str
        Error message for a request that is due while no API key is set.
    tool_input_hint : str
        What the tool call must contain, for the message to a reply without one.
    invalid_heading : str
        First line of the message that lists an invalid tool input's problems.
    """

    tool_name: str
    reply_field: str
    request_name: str
    reply_name: str
    error_type: type[LLMBackendError] = LLMBackendError
    missing_key_message: str
    tool_input_hint: str
    invalid_heading: str

    def __init__(self, settings: LLMSettings, cache: ReplyCache, api_key: str | None, max_repair_attempts: int,
                 client=None):
        self.settings = settings
        self.cache = cache
        self.api_key = api_key
        self.max_repair_attempts = max_repair_attempts
        self._client = client

    def client(self):
        """Return the SDK client, creating it on first use."""
        if self._client is None:
            if not self.api_key:
                raise self.error_type(self.missing_key_message)
            # The key is passed explicitly, so the SDK reads no credential
            # files or profiles.
            self._client = anthropic.Anthropic(
                api_key=self.api_key,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout,
                max_retries=self.settings.max_retries,
            )
        return self._client

    def request(self, prompt: ToolPrompt, check: Callable[[object], list[str]]) -> tuple[object, dict]:
        """Return the checked tool input of one device type and an audit record.

        Parameters
        ----------
        prompt : ToolPrompt
            The device type's request.
        check : callable
            ``check(tool_input)`` returns the input's problems, empty when
            it is valid. Cached replies are checked again.

        Returns
        -------
        content : object
            The tool input.
        record : dict
            ``key`` (the request hash), ``device_type``, ``model``,
            ``created``, ``requests``, ``from_cache``, ``replies`` (raw API
            replies) and the tool input under :attr:`reply_field`.

        Raises
        ------
        Exception
            :meth:`invalid_reply_error` if the last permitted reply is still
            invalid.
        LLMBackendError
            Of type :attr:`error_type`, if a request fails after the SDK's
            retries or no API key is set.
        """
        model = self.settings.model
        key = prompt.cache_key(model)
        cached = self._from_cache(key, prompt.device_type, check)
        if cached is not None:
            return cached

        content, attempt, replies, errors = request_until_valid(
            lambda messages: self._send(prompt, messages),
            lambda reply: self._read_reply(reply, check),
            prompt.messages(), self.max_repair_attempts, prompt.device_type,
        )
        if errors:
            raise self.invalid_reply_error(prompt, len(replies), errors)
        record = store_reply(self.cache, key, prompt.device_type, model, attempt, {self.reply_field: content}, replies)
        return content, record

    @abc.abstractmethod
    def invalid_reply_error(self, prompt: ToolPrompt, requests: int, errors: list[str]) -> Exception:
        """Return the stage's error for a reply that is still invalid after ``requests`` requests."""

    def _from_cache(self, key: str, device_type: str, check) -> tuple[object, dict] | None:
        record = self.cache.get(key)
        if record is None:
            return None
        errors = check(record.get(self.reply_field))
        if errors:
            LOGGER.warning(
                "%s: cached reply %s no longer validates (%s); sending the request again",
                device_type, self.cache.path(key), errors[0],
            )
            return None
        LOGGER.info("%s: reply read from cache %s, no request sent", device_type, self.cache.path(key))
        return record[self.reply_field], {**record, "from_cache": True}

    def _send(self, prompt: ToolPrompt, messages: list[dict]):
        """Send one request; the SDK retries 429, 5xx, connection errors and timeouts."""
        settings = self.settings
        tool_choice = {"type": "tool", "name": self.tool_name} if settings.tool_choice == "forced" else {"type": "auto"}
        client = self.client()
        subject = f"{self.request_name} for device type {prompt.device_type!r}"
        try:
            reply = client.messages.create(
                model=settings.model,
                max_tokens=settings.max_tokens,
                system=prompt.system,
                messages=messages,
                tools=[prompt.tool],
                tool_choice=tool_choice,
            )
        except anthropic.APITimeoutError as error:
            raise self.error_type(
                f"{subject} to {client.base_url} timed out after {settings.timeout} s, "
                f"{settings.max_retries} retries included; raise llm.timeout or try later"
            ) from error
        except anthropic.APIConnectionError as error:
            raise self.error_type(
                f"{subject} could not reach {client.base_url} after {settings.max_retries} retries: {error}"
            ) from error
        except anthropic.APIStatusError as error:
            hint = forced_choice_hint(error.status_code, settings.tool_choice)
            raise self.error_type(
                f"{subject} failed with HTTP {error.status_code} after {settings.max_retries} retries: "
                f"{error.message}{hint}"
            ) from error

        if reply.stop_reason == "max_tokens":
            raise self.error_type(
                f"{self.reply_name} for device type {prompt.device_type!r} stopped at llm.max_tokens = "
                f"{settings.max_tokens} before it was complete; raise llm.max_tokens"
            )
        return reply

    def _read_reply(self, reply, check) -> tuple[object, list[str], list[dict]]:
        """Return the tool input, its problems, and the feedback content to send back if any."""
        calls = [block for block in reply.content if block.type == "tool_use" and block.name == self.tool_name]
        if not calls:
            message = f"The reply did not call the tool {self.tool_name}. Call it once with {self.tool_input_hint}."
            return None, [message], [{"type": "text", "text": message}]

        feedback = [
            {"type": "tool_result", "tool_use_id": call.id, "is_error": True, "content": "Ignored: call the tool once."}
            for call in calls[1:]
        ]
        content = calls[0].input
        errors = check(content)
        if len(calls) > 1:
            errors = [f"the reply called {self.tool_name} {len(calls)} times; call it once", *errors]
        text = (
            f"{self.invalid_heading}\n- " + "\n- ".join(errors) + f"\nCall {self.tool_name} again with every problem fixed."
        )
        feedback.insert(0, {"type": "tool_result", "tool_use_id": calls[0].id, "is_error": True, "content": text})
        return content, errors, feedback
