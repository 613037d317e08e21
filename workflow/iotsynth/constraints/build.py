"""Build ``constraints.json`` from the training split with the chosen backend.

``llm.backend`` picks the backend: ``anthropic`` asks a Claude model for each
device type, ``offline`` derives the constraints from the training rows, and
``auto`` takes ``anthropic`` when ``ANTHROPIC_API_KEY`` is set and
``offline`` otherwise, with one log line that says which. Both write the
prompt of every device type under ``prompts/`` and the raw replies under
``replies/`` for audit (the offline backend sends no prompt and has no
replies, and says so in those files).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from iotsynth.constraints import offline
from iotsynth.constraints.anthropic_backend import AnthropicBackend
from iotsynth.constraints.model import FORMAT_NAME, FORMAT_VERSION, SECTIONS, ConstraintSet
from iotsynth.constraints.prompt import build_prompt
from iotsynth.constraints.settings import ConstraintSettings
from iotsynth.documents import utc_now, write_json
from iotsynth.llm.cache import ReplyCache
from iotsynth.llm.settings import LLMSettings, choose_backend

LOGGER = logging.getLogger(__name__)

SCALED_KINDS = ("continuous", "discrete")


def feature_ranges(train: pd.DataFrame, kinds: Mapping[str, str], layout: list[dict] | None) -> dict[str, tuple[float, float]]:
    """Return each feature's training range, checked against the preprocessor's.

    Raises
    ------
    ValueError
        If the preprocessor lists other features or other ranges, i.e. it
        was fitted on other rows or another dictionary.
    """
    ranges = {name: (float(train[name].min()), float(train[name].max())) for name in kinds}
    if layout is None:
        return ranges

    entries = {entry["name"]: entry for entry in layout}
    if list(entries) != list(kinds):
        raise ValueError(
            "the preprocessor's features differ from the feature dictionary; rerun the preprocess rule"
        )
    for name, entry in entries.items():
        if entry["kind"] in SCALED_KINDS and (entry["minimum"], entry["maximum"]) != ranges[name]:
            raise ValueError(
                f"feature {name!r} has training range {list(ranges[name])} but the preprocessor has "
                f"[{entry['minimum']}, {entry['maximum']}]; fit both on the same training split"
            )
    return ranges


def _safe_name(device_type: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", device_type)


def assemble_document(
    device_sections: Mapping[str, dict],
    kinds: Mapping[str, str],
    ranges: Mapping[str, tuple[float, float]],
    settings: ConstraintSettings,
    backend: str,
    model: str | None,
) -> dict:
    """Return the constraint document from each device type's sections and metadata."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "metadata": {"backend": backend, "model": model, "created": utc_now()},
        "evaluation": {
            "correlation_fraction": settings.correlation_fraction,
            "correlation_min_rows": settings.correlation_min_rows,
            "relative_tolerance": settings.relative_tolerance,
        },
        "features": [
            {"name": name, "kind": kind, "minimum": _json_number(ranges[name][0]), "maximum": _json_number(ranges[name][1])}
            for name, kind in kinds.items()
        ],
        "device_types": {name: device_sections[name] for name in sorted(device_sections)},
    }


def _json_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def build_constraints(
    train: pd.DataFrame,
    dictionary: pd.DataFrame,
    edges: pd.DataFrame,
    llm: LLMSettings,
    settings: ConstraintSettings,
    audit_dir: str | Path,
    layout: list[dict] | None = None,
    environ: Mapping[str, str] | None = None,
    client=None,
) -> ConstraintSet:
    """Build and validate the constraint set of every device type in ``train``.

    Parameters
    ----------
    train : pandas.DataFrame
        Training split with ``device_type`` and every feature column.
    dictionary : pandas.DataFrame
        Feature dictionary.
    edges : pandas.DataFrame
        Graph edge table.
    llm : LLMSettings
        Backend choice and API settings.
    settings : ConstraintSettings
        Derivation, prompt and evaluation settings.
    audit_dir : str or pathlib.Path
        Folder that receives ``prompts/`` and ``replies/``.
    layout : list of dict, optional
        ``Preprocessor.layout_``; its ranges are checked against the data.
    environ : mapping, optional
        Environment to read ``ANTHROPIC_API_KEY`` from (default ``os.environ``).
    client : anthropic.Anthropic, optional
        Client for the anthropic backend (tests point one at a local server).

    Returns
    -------
    ConstraintSet
        Validated against the schema and the feature dictionary.
    """
    environ = os.environ if environ is None else environ
    kinds = dict(zip(dictionary["name"].astype(str), dictionary["kind"].astype(str)))
    ranges = feature_ranges(train, kinds, layout)
    backend = choose_backend(llm.backend, environ)
    prompts_dir, replies_dir = Path(audit_dir) / "prompts", Path(audit_dir) / "replies"
    prompts_dir.mkdir(parents=True, exist_ok=True)
    replies_dir.mkdir(parents=True, exist_ok=True)

    groups = dict(tuple(train.groupby("device_type", sort=True)))
    prompts = {}
    for device_type, rows in groups.items():
        prompt = build_prompt(str(device_type), rows, dictionary, edges, ranges, settings)
        prompts[str(device_type)] = prompt
        sent = backend == "anthropic"
        write_json(
            prompts_dir / f"{_safe_name(str(device_type))}.json",
            {"backend": backend, "sent": sent, "model": llm.model if sent else None,
             "prompt_hash": prompt.cache_key(llm.model) if sent else None, **prompt.to_json()},
        )

    if backend == "offline":
        device_sections = _offline_sections(train, kinds, ranges, edges, settings, replies_dir)
        model = None
    else:
        device_sections = _anthropic_sections(prompts, groups, kinds, llm, environ, client, replies_dir)
        model = llm.model

    document = assemble_document(device_sections, kinds, ranges, settings, backend, model)
    return ConstraintSet.from_document(document, kinds, source=f"constraints built by the {backend} backend")


def _offline_sections(train, kinds, ranges, edges, settings, replies_dir: Path) -> dict[str, dict]:
    derived = offline.derive_constraints(train, kinds, ranges, edges, settings)
    created = utc_now()
    result = {}
    for device_type, sections in derived.items():
        metadata = {"backend": "offline", "model": None, "prompt_hash": None, "created": created, "n_rows": sections["n_rows"]}
        result[device_type] = {"metadata": metadata, **{key: sections[key] for key in SECTIONS}}
        write_json(
            replies_dir / f"{_safe_name(device_type)}.json",
            {"device_type": device_type, "backend": "offline", "note": "derived from the training rows; no request was sent", "replies": []},
        )
    return result


def _anthropic_sections(prompts, groups, kinds, llm: LLMSettings, environ, client, replies_dir: Path) -> dict[str, dict]:
    backend = AnthropicBackend(llm, ReplyCache(llm.cache_dir, "constraints"), environ.get("ANTHROPIC_API_KEY"), client=client)
    result = {}
    for position, (device_type, prompt) in enumerate(prompts.items(), start=1):
        started = time.perf_counter()
        sections, record = backend.constraints_for(prompt, kinds)
        LOGGER.info(
            "%s (%d of %d): %d numerical constraints, %d correlations, %d protocol rules in %.1f s",
            device_type, position, len(prompts), len(sections["numerical_constraints"]),
            len(sections["feature_correlations"]), len(sections["protocol_rules"]), time.perf_counter() - started,
        )
        metadata = {
            "backend": "anthropic",
            "model": llm.model,
            "prompt_hash": record["key"],
            "created": record["created"],
            "n_rows": len(groups[device_type]),
            "from_cache": record["from_cache"],
            "requests": 0 if record["from_cache"] else record["requests"],
        }
        result[device_type] = {"metadata": metadata, **{key: sections[key] for key in SECTIONS}}
        write_json(
            replies_dir / f"{_safe_name(device_type)}.json",
            {"device_type": device_type, "backend": "anthropic", "model": llm.model, "prompt_hash": record["key"],
             "from_cache": record["from_cache"], "replies": record["replies"]},
        )
    return result


def run_constraints_stage(
    train: str | Path,
    dictionary: str | Path,
    preprocessor: str | Path,
    edges: str | Path,
    constraints: str | Path,
    counts: str | Path,
    audit_dir: str | Path,
    llm_section: Mapping | None,
    constraints_section: Mapping | None,
) -> ConstraintSet:
    """Run the ``constraints`` rule: read the inputs, build, validate and write.

    Parameters
    ----------
    train, dictionary, preprocessor, edges : str or pathlib.Path
        Training split, feature dictionary, preprocessor JSON and graph edges.
    constraints : str or pathlib.Path
        Output ``constraints.json``.
    counts : str or pathlib.Path
        Output CSV with the number of constraints per device type and section.
    audit_dir : str or pathlib.Path
        Folder for ``prompts/`` and ``replies/``.
    llm_section, constraints_section : mapping
        The ``llm`` and ``constraints`` config sections.
    """
    from iotsynth.preprocess import Preprocessor

    started = time.perf_counter()
    llm = LLMSettings.from_config(llm_section)
    settings = ConstraintSettings.from_config(constraints_section)
    feature_dictionary = pd.read_csv(dictionary)
    names = [str(name) for name in feature_dictionary["name"]]
    train_frame = pd.read_parquet(train, columns=["device_type", *names])
    edge_table = pd.read_csv(edges)
    layout = Preprocessor.load(preprocessor).layout_
    LOGGER.info(
        "read %s (%d rows, %d device types), %s (%d features), %s (%d edges), %s",
        train, len(train_frame), train_frame["device_type"].nunique(), dictionary, len(names), edges, len(edge_table), preprocessor,
    )

    constraint_set = build_constraints(train_frame, feature_dictionary, edge_table, llm, settings, audit_dir, layout=layout)
    constraint_set.save(constraints)
    table = constraint_set.counts()
    Path(counts).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(counts, index=False)

    totals = table[list(SECTIONS)].sum().to_dict()
    LOGGER.info("wrote %s: %d device types, constraints per section %s", constraints, len(table), totals)
    _log_training_fit(constraint_set, train_frame)
    LOGGER.info("constraints stage took %.1f s", time.perf_counter() - started)
    return constraint_set


def _log_training_fit(constraint_set: ConstraintSet, train: pd.DataFrame) -> None:
    """Log how well the constraints hold on the rows they came from."""
    from iotsynth.constraints.evaluate import summarize_rates

    rates = constraint_set.violation_rates(train, train["device_type"].to_numpy())
    for row in summarize_rates(rates).itertuples(index=False):
        LOGGER.info(
            "training rows, %s rules: %d rules, violation rate %.5f, worst rule %.5f",
            row.section, row.rules, row.violation_rate, row.max_rate if not np.isnan(row.max_rate) else 0.0,
        )
