"""The code both LLM stages share: settings, requests, prompts and the reply cache.

The constraint stage (:mod:`iotsynth.constraints`) and the validation stage
(:mod:`iotsynth.validation`) each send one request per device type to a
Claude model and read back one tool call:

- :mod:`~iotsynth.llm.settings`: the ``llm`` config section and the choice
  between the ``anthropic`` and ``offline`` backends;
- :mod:`~iotsynth.llm.backend`: sending, checking, repairing and caching
  the tool call (:class:`~iotsynth.llm.backend.ToolBackend`);
- :mod:`~iotsynth.llm.prompt`: the request's shape, cache key and feature
  statistics;
- :mod:`~iotsynth.llm.identifiers`: finding and redacting addresses;
- :mod:`~iotsynth.llm.cache`: validated replies on disk.

This package imports none of its modules here, so reading the settings does
not load the ``anthropic`` SDK.
"""
