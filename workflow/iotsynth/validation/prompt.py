"""The LLM request of one device type: a summary and a few rows of its synthetic sample.

The request carries, per feature, aggregated statistics of the device
type's real training rows and of the synthetic sample, and the first
``prompt_rows`` rows of the sample. Real rows are never sent, only their
statistics. Features marked ``session_identifying`` in the feature
dictionary (IP id, checksums, TCP sequence numbers, DNS id, BOOTP xid) are
left out of all of it, in statistics and rows alike. Feature descriptions
are scrubbed of address-shaped text, and :func:`build_validation_prompt`
raises if any remains anywhere in the request.

The reply must call the tool ``record_plausibility`` (forced when
``llm.tool_choice`` is ``forced``) with a score from 0 to 1 and the doubted
features.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import jsonschema
import numpy as np
import pandas as pd

from iotsynth.llm.prompt import PACKET_ROWS, ToolPrompt, compact_number, describe_feature, feature_statistics, reject_identifiers

TOOL_NAME = "record_plausibility"
# Part of the cache key: change it when the prompt or the reply format changes meaning.
FORMAT_VERSION = 1
MAX_REASON_CHARACTERS = 300
MAX_COMMENT_CHARACTERS = 1000

SYSTEM_PROMPT = """\
You check how plausible synthetic network packets of one IoT device type \
are. A generator made them to stand in for real packets of this device type \
in the training data of a device classifier.

""" + PACKET_ROWS + """\
Features that could single out one session or capture (IP id, checksums, \
sequence numbers and the like) are left out.

You receive, per feature, statistics of the device type's real training \
packets and of the synthetic sample, and the first rows of the sample.

Judge whether this device type could have sent the synthetic packets: \
protocol fields that agree with each other (layer indicators, ports and \
port classes, flags of the right protocol, sizes that add up), values \
inside the device type's real ranges and categories, and distributions \
close to the real ones.

Call the tool {tool} exactly once with:
- score: from 0 (no packet is plausible) to 1 (indistinguishable from real \
packets of this device type);
- doubted_features: at most {max_doubted} features whose synthetic values \
look implausible, most doubtful first, each with a one-sentence reason; an \
empty list when none is;
- comment (optional): at most two sentences on the sample as a whole.\
"""


@dataclass(frozen=True)
class ValidationPrompt(ToolPrompt):
    """The validation request for one device type; the tool's ``input_schema`` is :func:`reply_schema`.

    Attributes
    ----------
    features : tuple of str
        Feature names the request shows, the only ones a reply may doubt.
    """

    features: tuple[str, ...]

    def key_fields(self, model: str) -> dict:
        """Return stage, model, request and validation format version, the fields the cache key covers."""
        return {"stage": "validation", **super().key_fields(model), "format_version": FORMAT_VERSION}


def reply_schema(max_doubted: int) -> dict:
    """Return the JSON schema of the tool input: score, doubted features and an optional comment."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["score", "doubted_features"],
        "properties": {
            "score": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Plausibility of the synthetic packets: 0 none is plausible, 1 indistinguishable from real ones.",
            },
            "doubted_features": {
                "type": "array",
                "maxItems": max_doubted,
                "description": "Features whose synthetic values look implausible, most doubtful first.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["feature", "reason"],
                    "properties": {
                        "feature": {"type": "string", "minLength": 1, "description": "Feature name from the statistics."},
                        "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARACTERS},
                    },
                },
            },
            "comment": {"type": "string", "maxLength": MAX_COMMENT_CHARACTERS},
        },
    }


def check_reply(reply: object, features: Sequence[str], max_doubted: int) -> list[str]:
    """List the problems of a tool input; empty when it is valid.

    Besides the schema, every doubted feature must be one the request
    showed, and none may be listed twice.
    """
    validator = jsonschema.Draft202012Validator(reply_schema(max_doubted))
    errors = []
    for error in sorted(validator.iter_errors(reply), key=lambda e: list(map(str, e.absolute_path))):
        location = "/".join(map(str, error.absolute_path)) or "top level"
        errors.append(f"{location}: {error.message}")
    if errors:
        return errors

    known, seen = set(features), set()
    for index, item in enumerate(reply["doubted_features"]):
        name = item["feature"]
        if name not in known:
            errors.append(f"doubted_features/{index}/feature: unknown feature {name!r}; use a name from the statistics")
        elif name in seen:
            errors.append(f"doubted_features/{index}/feature: {name!r} is listed twice")
        seen.add(name)
    return errors


def sent_features(dictionary: pd.DataFrame) -> pd.DataFrame:
    """Return the dictionary rows of the features a request may show (not session-identifying)."""
    if "session_identifying" not in dictionary.columns:
        raise ValueError(
            "the feature dictionary has no session_identifying column; rerun the merge rule, "
            "because without it the stage cannot tell which features must not be sent"
        )
    flags = dictionary["session_identifying"].map(_as_flag)
    return dictionary[~flags].reset_index(drop=True)


def _as_flag(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"session_identifying must be true or false in the feature dictionary, got {value!r}")


def build_validation_prompt(
    device_type: str,
    synthetic: pd.DataFrame,
    real: pd.DataFrame,
    n_synthetic: int,
    dictionary: pd.DataFrame,
    prompt_rows: int,
    max_doubted: int,
    top_categories: int,
) -> ValidationPrompt:
    """Build the request of one device type.

    Parameters
    ----------
    device_type : str
        Device type name.
    synthetic : pandas.DataFrame
        The synthetic sample, feature columns in original units.
    real : pandas.DataFrame
        The device type's real training rows (only their statistics are sent).
    n_synthetic : int
        Synthetic rows of the device type in the checked split.
    dictionary : pandas.DataFrame
        Feature dictionary with ``name``, ``kind``, ``layer``,
        ``description`` and ``session_identifying``.
    prompt_rows : int
        Rows of the sample listed one by one.
    max_doubted : int
        Most doubted features a reply may list.
    top_categories : int
        Most frequent categories listed per categorical feature.

    Raises
    ------
    ValueError
        If address-shaped text is found in the finished request.
    """
    sent = sent_features(dictionary)
    names = [str(name) for name in sent["name"]]
    features = []
    for entry in sent.itertuples(index=False):
        features.append(
            {
                **describe_feature(entry),
                "real": feature_statistics(real[entry.name], entry.kind, top_categories),
                "synthetic": feature_statistics(synthetic[entry.name], entry.kind, top_categories),
            }
        )
    listed = synthetic[names].head(prompt_rows).to_numpy(dtype=np.float64)
    content = {
        "device_type": device_type,
        "real_training_packets": len(real),
        "synthetic_packets": n_synthetic,
        "synthetic_sample_size": len(synthetic),
        "features": features,
        "sample_rows": {"columns": names, "rows": [[compact_number(value) for value in row] for row in listed]},
    }
    user = "Statistics of one device type's real and synthetic packets:\n" + json.dumps(content, separators=(",", ":"))
    prompt = ValidationPrompt(
        device_type=device_type,
        system=SYSTEM_PROMPT.format(tool=TOOL_NAME, max_doubted=max_doubted),
        user=user,
        tool={
            "name": TOOL_NAME,
            "description": "Record how plausible the synthetic packets of this device type are and which features look implausible.",
            "input_schema": reply_schema(max_doubted),
        },
        features=tuple(names),
    )

    reject_identifiers(prompt, "validation request", "statistics and synthetic feature values")
    return prompt
