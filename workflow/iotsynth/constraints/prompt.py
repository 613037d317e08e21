"""The LLM prompt for one device type: aggregated training statistics only.

The prompt carries, for one device type, per-feature quantiles, means and
category frequencies, the strongest edges of the feature graph with their
sign, and the device type's own correlation on those pairs. It never carries
a row, a payload byte, an IP address or a MAC address: feature descriptions
are scrubbed of address-shaped text, and :func:`build_prompt` raises if any
remains anywhere in the prompt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iotsynth.constraints.model import FORMAT_VERSION, sections_schema
from iotsynth.constraints.rules import CORRELATION_KINDS, pearson
from iotsynth.constraints.settings import ConstraintSettings
from iotsynth.llm.prompt import PACKET_ROWS, ToolPrompt, compact_number, describe_feature, feature_statistics, reject_identifiers

TOOL_NAME = "record_constraints"

SYSTEM_PROMPT = """\
You write constraints that synthetic network packets of one IoT device type \
must satisfy. A generator will be penalised for breaking them and a filter \
will reject rows that break them, so every constraint must hold for nearly \
all real packets of this device type.

""" + PACKET_ROWS + """
You receive statistics of the device type's training packets: per feature, \
quantiles or category shares, the strongest feature-graph edges over all \
device types, and this device type's own Pearson correlation on those pairs.

Call the tool {tool} exactly once, with three sections:
1. numerical_constraints: for every feature, "min" and "max" (the allowed \
range) and "typical" ([low, high], the usual range inside [min, max]). For \
binary and categorical features also "allowed", the list of values that may \
occur.
2. feature_correlations: pairs of two different non-categorical features \
with "direction" (positive or negative) and "strength" (the expected absolute \
Pearson correlation within this device type, 0 to 1).
3. protocol_rules: implications. Each rule has an "id" (letters, digits, \
_ . : = -), "if" (conditions that must all hold; an empty list applies to \
every packet), "then" (conditions that must all hold when "if" does), and \
optionally "description", "support" (training packets where "if" holds) and \
"confidence" (share of them where "then" holds). A condition is \
{{"feature": name, "op": op, "value": value}} with op one of ==, !=, <=, >= \
(value a number), between (value [low, high]), in or not_in (value a list \
of numbers). Example: when is_udp == 1 then tcp_flag_syn == 0 and \
tcp_flag_ack == 0.

Use only feature names from the statistics. Never invert a range. Prefer \
rules that reflect protocol semantics (layer indicators, port classes, \
header fields of absent layers) and hold on at least 99% of the packets.\
"""


@dataclass(frozen=True)
class Prompt(ToolPrompt):
    """The constraint request for one device type; the tool's ``input_schema`` is the constraint sections schema."""

    def key_fields(self, model: str) -> dict:
        """Return model, prompt and constraint format version, the fields the cache key covers."""
        return {**super().key_fields(model), "format_version": FORMAT_VERSION}

    def to_json(self) -> dict:
        """Return the prompt as a JSON-ready dict for the audit folder."""
        return {
            "device_type": self.device_type,
            "system": self.system,
            "messages": self.messages(),
            "tools": [self.tool],
        }


def graph_edges(rows: pd.DataFrame, edges: pd.DataFrame, kinds: Mapping[str, str], limit: int) -> list[dict]:
    """Return the strongest graph edges, with this device type's Pearson correlation where defined."""
    top = edges.sort_values("weight", ascending=False, kind="stable").head(limit)
    result = []
    for edge in top.itertuples(index=False):
        item = {
            "features": [edge.source, edge.target],
            "weight": compact_number(edge.weight),
            "sign": int(edge.sign) if "sign" in edges.columns and pd.notna(edge.sign) else 0,
        }
        for measure in ("pearson", "spearman", "mutual_information"):
            value = getattr(edge, measure, np.nan)
            if pd.notna(value):
                item[measure] = compact_number(value)
        if kinds.get(edge.source) in CORRELATION_KINDS and kinds.get(edge.target) in CORRELATION_KINDS:
            item["device_type_pearson"] = compact_number(pearson(rows[edge.source], rows[edge.target]))
        result.append(item)
    return result


def build_prompt(
    device_type: str,
    rows: pd.DataFrame,
    dictionary: pd.DataFrame,
    edges: pd.DataFrame,
    ranges: Mapping[str, tuple[float, float]],
    settings: ConstraintSettings,
) -> Prompt:
    """Build the prompt for one device type from its training rows.

    Parameters
    ----------
    device_type : str
        Device type name.
    rows : pandas.DataFrame
        The device type's training rows with every feature column.
    dictionary : pandas.DataFrame
        Feature dictionary (``name``, ``kind``, ``description``, ``layer``).
    edges : pandas.DataFrame
        Graph edge table.
    ranges : mapping of str to (float, float)
        Training range of each feature over all device types.
    settings : ConstraintSettings
        Limits on categories, edges, correlations and rules.

    Raises
    ------
    ValueError
        If an address-shaped string is found in the finished prompt.
    """
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    features = []
    for entry in dictionary.itertuples(index=False):
        features.append(
            {
                **describe_feature(entry),
                "training_range_all_device_types": [compact_number(v) for v in ranges[entry.name]],
                "statistics": feature_statistics(rows[entry.name], entry.kind, settings.prompt_top_categories),
            }
        )
    content = {
        "device_type": device_type,
        "n_packets": len(rows),
        "limits": {
            "numerical_constraints": "one entry per feature",
            "max_feature_correlations": settings.correlation_max_per_device_type,
            "max_protocol_rules": settings.rule_max_per_device_type,
        },
        "features": features,
        "graph_edges": graph_edges(rows, edges, kinds, settings.prompt_top_edges),
    }
    user = "Training statistics of one device type:\n" + json.dumps(content, indent=1)
    prompt = Prompt(
        device_type=device_type,
        system=SYSTEM_PROMPT.format(tool=TOOL_NAME),
        user=user,
        tool={
            "name": TOOL_NAME,
            "description": "Record the constraints of this device type: numerical_constraints, feature_correlations and protocol_rules.",
            "input_schema": sections_schema(),
        },
    )

    reject_identifiers(prompt, "prompt", "aggregated statistics")
    return prompt
