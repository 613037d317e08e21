"""The LLM prompt for one device type: aggregated training statistics only.

The prompt carries, for one device type, per-feature quantiles, means and
category frequencies, the strongest edges of the feature graph with their
sign, and the device type's own correlation on those pairs. It never carries
a row, a payload byte, an IP address or a MAC address: feature descriptions
are scrubbed of address-shaped text, and :func:`build_prompt` raises if any
remains anywhere in the prompt.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iotsynth.constraints.model import FORMAT_VERSION, sections_schema
from iotsynth.constraints.rules import CORRELATION_KINDS, pearson
from iotsynth.constraints.settings import ConstraintSettings

LOGGER = logging.getLogger(__name__)

TOOL_NAME = "record_constraints"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

MAC_PATTERN = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![0-9A-Fa-f])"
)
IPV4_CANDIDATE = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
IPV6_CANDIDATE = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")

SYSTEM_PROMPT = """\
You write constraints that synthetic network packets of one IoT device type \
must satisfy. A generator will be penalised for breaking them and a filter \
will reject rows that break them, so every constraint must hold for nearly \
all real packets of this device type.

Each row is one packet sent by the device. Every feature is a number:
- continuous and discrete features in the units of their description;
- binary features are 0 or 1;
- categorical features hold integer codes (EtherType, IP protocol number, \
port class, ...); their order means nothing;
- a field of a layer the packet lacks is 0, or -1 for categorical features, \
and the layer's binary indicator (is_tcp, is_udp, ...) is 0.

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
class Prompt:
    """The request for one device type.

    Attributes
    ----------
    device_type : str
        The device type the prompt describes.
    system : str
        System prompt.
    user : str
        The statistics, as JSON text.
    tool : dict
        Tool definition whose ``input_schema`` is the constraint sections schema.
    """

    device_type: str
    system: str
    user: str
    tool: dict

    def messages(self) -> list[dict]:
        """Return the first message list of the conversation."""
        return [{"role": "user", "content": self.user}]

    def cache_key(self, model: str) -> str:
        """Return the SHA-256 of model, prompt and constraint format version."""
        canonical = json.dumps(
            {
                "model": model,
                "system": self.system,
                "messages": self.messages(),
                "tool": self.tool,
                "format_version": FORMAT_VERSION,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_json(self) -> dict:
        """Return the prompt as a JSON-ready dict for the audit folder."""
        return {
            "device_type": self.device_type,
            "system": self.system,
            "messages": self.messages(),
            "tools": [self.tool],
        }


def find_identifiers(text: str) -> list[str]:
    """Return every substring shaped like a MAC, IPv4 or IPv6 address."""
    found = [match.group(0) for match in MAC_PATTERN.finditer(text)]
    for pattern in (IPV4_CANDIDATE, IPV6_CANDIDATE):
        for match in pattern.finditer(text):
            candidate = match.group(0)
            if pattern is IPV6_CANDIDATE and candidate.count(":") < 2:
                continue
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            found.append(candidate)
    return found


def redact_identifiers(text: str) -> str:
    """Replace every address-shaped substring with ``<address>``."""
    for identifier in sorted(set(find_identifiers(text)), key=len, reverse=True):
        text = text.replace(identifier, "<address>")
    return text


def _number(value: float) -> float | int:
    """Return a compact JSON number with 6 significant digits."""
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
            "min": _number(column.min()),
            **{f"q{int(round(q * 100)):02d}": _number(v) for q, v in zip(QUANTILES, quantiles)},
            "max": _number(column.max()),
            "mean": _number(column.mean()),
            "std": _number(column.std()),
            "share_zero": _number((column == 0).mean()),
        }
    if kind == "binary":
        return {"share_one": _number(column.mean())}

    unique, counts = np.unique(column, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shown = order[:top_categories]
    return {
        "categories": [[_number(unique[i]), _number(counts[i] / len(column))] for i in shown],
        "other_share": _number(counts[order[top_categories:]].sum() / len(column)),
        "n_categories": int(len(unique)),
    }


def graph_edges(rows: pd.DataFrame, edges: pd.DataFrame, kinds: Mapping[str, str], limit: int) -> list[dict]:
    """Return the strongest graph edges, with this device type's Pearson correlation where defined."""
    top = edges.sort_values("weight", ascending=False, kind="stable").head(limit)
    result = []
    for edge in top.itertuples(index=False):
        item = {
            "features": [edge.source, edge.target],
            "weight": _number(edge.weight),
            "sign": int(edge.sign) if "sign" in edges.columns and pd.notna(edge.sign) else 0,
        }
        for measure in ("pearson", "spearman", "mutual_information"):
            value = getattr(edge, measure, np.nan)
            if pd.notna(value):
                item[measure] = _number(value)
        if kinds.get(edge.source) in CORRELATION_KINDS and kinds.get(edge.target) in CORRELATION_KINDS:
            item["device_type_pearson"] = _number(pearson(rows[edge.source], rows[edge.target]))
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
        original = str(getattr(entry, "description", ""))
        description = redact_identifiers(original)
        if description != original:
            LOGGER.debug("feature %s: replaced address-shaped text in its description with <address>", entry.name)
        features.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "layer": str(getattr(entry, "layer", "")),
                "description": description,
                "training_range_all_device_types": [_number(v) for v in ranges[entry.name]],
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

    leaked = find_identifiers(prompt.system + prompt.user + json.dumps(prompt.tool))
    if leaked:
        raise ValueError(
            f"the prompt for device type {device_type!r} contains address-shaped text {leaked[:3]}; "
            "prompts carry aggregated statistics only, so find where it came from before sending"
        )
    return prompt
