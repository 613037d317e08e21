"""The parts of a per-device-type LLM request that both LLM stages build the same way.

A request is a system prompt, one user message of JSON statistics and one
tool. Feature statistics are aggregates (quantiles, shares, frequent
categories) with numbers cut to 6 significant digits. Feature descriptions
are scrubbed of address-shaped text, and :func:`reject_identifiers` raises if
any remains in the finished request.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iotsynth.llm.identifiers import find_identifiers, redact_identifiers

LOGGER = logging.getLogger(__name__)

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

# The encoding of a packet as feature values, part of both stages' system prompts.
PACKET_ROWS = """\
Each row is one packet sent by the device. Every feature is a number:
- continuous and discrete features in the units of their description;
- binary features are 0 or 1;
- categorical features hold integer codes (EtherType, IP protocol number, \
port class, ...); their order means nothing;
- a field of a layer the packet lacks is 0, or -1 for categorical features, \
and the layer's binary indicator (is_tcp, is_udp, ...) is 0.
"""


@dataclass(frozen=True)
class ToolPrompt:
    """The request for one device type: a system prompt, one user message and one tool.

    Attributes
    ----------
    device_type : str
        The device type the request describes.
    system : str
        System prompt.
    user : str
        The user message, as JSON text after a one-line heading.
    tool : dict
        Tool definition with its ``input_schema``.
    """

    device_type: str
    system: str
    user: str
    tool: dict

    def messages(self) -> list[dict]:
        """Return the first message list of the conversation."""
        return [{"role": "user", "content": self.user}]

    def cache_key(self, model: str) -> str:
        """Return the SHA-256 of :meth:`key_fields` as canonical JSON (sorted keys, no spaces)."""
        canonical = json.dumps(self.key_fields(model), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def key_fields(self, model: str) -> dict:
        """Return what the cache key covers: model, system prompt, messages and tool.

        A stage adds its reply format version, so that a change of format
        sends the request again.
        """
        return {"model": model, "system": self.system, "messages": self.messages(), "tool": self.tool}


def compact_number(value: float) -> float | int:
    """Return a JSON number with 6 significant digits, an int when whole."""
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return float(f"{value:.6g}")


def feature_statistics(values: pd.Series, kind: str, top_categories: int) -> dict:
    """Summarize one feature on one device type's rows."""
    column = values.to_numpy(dtype=np.float64)
    if kind in ("continuous", "discrete"):
        quantiles = np.quantile(column, QUANTILES)
        return {
            "min": compact_number(column.min()),
            **{f"q{int(round(q * 100)):02d}": compact_number(v) for q, v in zip(QUANTILES, quantiles)},
            "max": compact_number(column.max()),
            "mean": compact_number(column.mean()),
            "std": compact_number(column.std()),
            "share_zero": compact_number((column == 0).mean()),
        }
    if kind == "binary":
        return {"share_one": compact_number(column.mean())}

    unique, counts = np.unique(column, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    listed = order[:top_categories]
    return {
        "categories": [[compact_number(unique[i]), compact_number(counts[i] / len(column))] for i in listed],
        "other_share": compact_number(counts[order[top_categories:]].sum() / len(column)),
        "n_categories": int(len(unique)),
    }


def describe_feature(entry) -> dict:
    """Return the name, kind, layer and description of one feature dictionary row, in that key order.

    Address-shaped text in the description becomes ``<address>``.
    """
    original = str(getattr(entry, "description", ""))
    description = redact_identifiers(original)
    if description != original:
        LOGGER.debug("feature %s: replaced address-shaped text in its description with <address>", entry.name)
    return {"name": entry.name, "kind": entry.kind, "layer": str(getattr(entry, "layer", "")), "description": description}


def reject_identifiers(prompt: ToolPrompt, subject: str, contents: str) -> None:
    """Raise if the finished request contains address-shaped text.

    Parameters
    ----------
    prompt : ToolPrompt
        The request.
    subject : str
        What the message calls the request, e.g. ``prompt``.
    contents : str
        What the request may carry, for the message.

    Raises
    ------
    ValueError
        Naming the device type and up to three of the addresses found.
    """
    leaked = find_identifiers(prompt.system + prompt.user + json.dumps(prompt.tool))
    if leaked:
        raise ValueError(
            f"the {subject} for device type {prompt.device_type!r} contains address-shaped text {leaked[:3]}, "
            f"but it may carry {contents} only. Find where the text came from before sending"
        )
