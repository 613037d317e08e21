"""The ``validate`` rule: score one generator's synthetic rows per device type and write the JSON.

``validation.backend`` (or ``llm.backend`` when it is null) picks the
backend: ``anthropic`` sends a request to a Claude model, ``offline`` scores from
constraint violations and nearest-real-row distances
(:mod:`~iotsynth.validation.offline`), and ``auto`` takes ``anthropic``
when ``ANTHROPIC_API_KEY`` is set and ``offline`` otherwise. The offline
score is computed with either backend and stored beside the LLM's, so the
two can be compared.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from iotsynth.constraints.model import ConstraintSet
from iotsynth.documents import utc_now, write_json
from iotsynth.llm.cache import ReplyCache
from iotsynth.llm.settings import LLMSettings, choose_backend
from iotsynth.validation.anthropic_backend import AnthropicValidator
from iotsynth.validation.offline import score_device_type
from iotsynth.validation.prompt import build_validation_prompt
from iotsynth.validation.sample import DeviceSample, device_samples
from iotsynth.validation.settings import ValidationSettings

LOGGER = logging.getLogger(__name__)

FORMAT_NAME = "iotsynth-validation"
FORMAT_VERSION = 1


def _skipped_entry(reason: str, backend: str, model: str | None) -> dict:
    return {
        "status": "skipped",
        "reason": reason,
        "score": None,
        "doubted_features": [],
        "backend": backend,
        "model": model,
        "sample_size": 0,
        "cache_key": None,
    }


def _summary(entries: Mapping[str, dict]) -> dict:
    scores = [entry["score"] for entry in entries.values() if entry["status"] == "scored"]
    offline = [entry["offline"]["score"] for entry in entries.values() if entry["status"] == "scored"]
    return {
        "device_types_scored": len(scores),
        "device_types_skipped": len(entries) - len(scores),
        "mean_score": round(float(np.mean(scores)), 6) if scores else None,
        "min_score": round(float(np.min(scores)), 6) if scores else None,
        "mean_offline_score": round(float(np.mean(offline)), 6) if offline else None,
    }


def _score_sample(
    sample: DeviceSample,
    constraint_set: ConstraintSet,
    preprocessor,
    dictionary: pd.DataFrame,
    settings: ValidationSettings,
    validator: AnthropicValidator | None,
    top_categories: int,
) -> dict:
    """Return the JSON entry of one device type."""
    offline = score_device_type(sample, constraint_set, preprocessor, settings)
    entry = {
        "status": "scored",
        "score": round(offline.score, 6),
        "doubted_features": offline.doubted_features,
        "backend": "offline",
        "model": None,
        "sample_size": len(sample.synthetic),
        "synthetic_rows": sample.n_synthetic,
        "reference_rows": len(sample.reference),
        "cache_key": None,
        "offline": {**offline.to_json(), "doubted_features": [item["feature"] for item in offline.doubted_features]},
    }
    if validator is None:
        return entry

    prompt = build_validation_prompt(
        sample.device_type, sample.synthetic, sample.real, sample.n_synthetic, dictionary,
        settings.prompt_rows, settings.max_doubted_features, top_categories,
    )
    reply, record = validator.score(prompt)
    entry.update(
        score=round(float(reply["score"]), 6),
        doubted_features=[{"feature": item["feature"], "reason": item["reason"]} for item in reply["doubted_features"]],
        backend="anthropic",
        model=validator.settings.model,
        cache_key=record["key"],
        from_cache=record["from_cache"],
        requests=0 if record["from_cache"] else record["requests"],
        comment=reply.get("comment"),
    )
    return entry


def validate_generator(
    synthetic: pd.DataFrame,
    train: pd.DataFrame,
    dictionary: pd.DataFrame,
    constraint_set: ConstraintSet,
    preprocessor,
    settings: ValidationSettings,
    llm: LLMSettings,
    generator: str,
    seed: int,
    top_categories: int,
    environ: Mapping[str, str] | None = None,
    client=None,
) -> dict:
    """Score every device type of one generator's synthetic rows.

    Parameters
    ----------
    synthetic : pandas.DataFrame
        The generator's synthetic rows with ``split``, ``device_type`` and
        every feature column.
    train : pandas.DataFrame
        Real training rows with ``device_type`` and every feature column.
    dictionary : pandas.DataFrame
        Feature dictionary (with ``session_identifying``).
    constraint_set : ConstraintSet
        The constraint set.
    preprocessor : iotsynth.preprocess.Preprocessor
        Fitted on the training split.
    settings : ValidationSettings
        The ``validation`` section.
    llm : LLMSettings
        The ``llm`` section (client, model and reply cache).
    generator : str
        Generator name, written to the document.
    seed : int
        The workflow seed.
    top_categories : int
        Most frequent categories listed per categorical feature in a request.
    environ : mapping, optional
        Environment to read ``ANTHROPIC_API_KEY`` from (default ``os.environ``).
    client : anthropic.Anthropic, optional
        Client for the anthropic backend (tests point one at a local server).

    Returns
    -------
    dict
        The validation document; see ``docs/validation.md``.
    """
    environ = os.environ if environ is None else environ
    backend = choose_backend(
        settings.requested_backend(llm.backend), environ, stage="validation",
        setting="validation.backend (or llm.backend when that is null)",
    )
    model = llm.model if backend == "anthropic" else None
    validator = None
    if backend == "anthropic":
        validator = AnthropicValidator(
            llm, ReplyCache(llm.cache_dir, "validation"), environ.get("ANTHROPIC_API_KEY"),
            settings.max_doubted_features, settings.max_repair_attempts, client=client,
        )

    names = [str(name) for name in dictionary["name"]]
    checked = synthetic[synthetic["split"] == settings.split]
    samples, skipped = device_samples(checked, train, names, settings.sample_rows, settings.reference_rows, seed)
    entries = {name: _skipped_entry(reason, backend, model) for name, reason in skipped.items()}
    for position, sample in enumerate(samples, start=1):
        if sample.device_type not in constraint_set.device_types:
            entries[sample.device_type] = _skipped_entry("no constraints for this device type", backend, model)
            continue
        started = time.perf_counter()
        entry = _score_sample(sample, constraint_set, preprocessor, dictionary, settings, validator, top_categories)
        entries[sample.device_type] = entry
        LOGGER.info(
            "%s (%d of %d): score %.3f (offline %.3f) on %d of %d synthetic rows, doubted %s, %.1f s",
            sample.device_type, position, len(samples), entry["score"], entry["offline"]["score"],
            entry["sample_size"], sample.n_synthetic, [item["feature"] for item in entry["doubted_features"]],
            time.perf_counter() - started,
        )
    for name, reason in sorted(skipped.items()):
        LOGGER.info("%s: skipped, %s", name, reason)

    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": generator,
        "backend": backend,
        "model": model,
        "split": settings.split,
        "seed": seed,
        "created": utc_now(),
        "settings": {
            "sample_rows": settings.sample_rows,
            "prompt_rows": settings.prompt_rows,
            "reference_rows": settings.reference_rows,
            "distance_quantile": settings.distance_quantile,
            "max_doubted_features": settings.max_doubted_features,
            "min_excess_violation": settings.min_excess_violation,
            "min_excess_deviation": settings.min_excess_deviation,
        },
        "summary": _summary(entries),
        "device_types": {name: entries[name] for name in sorted(entries)},
    }


def _read_synthetic(path: str | Path, names: list[str]) -> pd.DataFrame:
    columns = ["split", "device_type", *names]
    try:
        return pd.read_parquet(path, columns=columns)
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"{path} lacks columns the validation stage reads ({error}); it must have split, device_type and every "
            "feature of the feature dictionary, so rerun the rule that wrote it"
        ) from error


def run_validation_stage(
    synthetic: str | Path,
    train: str | Path,
    preprocessor: str | Path,
    constraints: str | Path,
    dictionary: str | Path,
    output: str | Path,
    validation_section: Mapping | None,
    llm_section: Mapping | None,
    generator: str,
    seed: int,
    top_categories: int,
) -> dict:
    """Run the ``validate`` rule for one generator: read the inputs, score and write the JSON.

    Parameters
    ----------
    synthetic, train, preprocessor, constraints, dictionary : str or pathlib.Path
        ``results/synthetic/<generator>.parquet``, the training split, the
        preprocessor JSON, the constraint file and the feature dictionary.
    output : str or pathlib.Path
        ``results/validation/<generator>.json``.
    validation_section, llm_section : mapping
        The ``validation`` and ``llm`` config sections.
    generator : str
    seed : int
    top_categories : int
        ``constraints.prompt.top_categories``.
    """
    from iotsynth.preprocess import Preprocessor

    started = time.perf_counter()
    settings = ValidationSettings.from_config(validation_section)
    llm = LLMSettings.from_config(llm_section)
    feature_dictionary = pd.read_csv(dictionary)
    names = [str(name) for name in feature_dictionary["name"]]
    synthetic_frame = _read_synthetic(synthetic, names)
    train_frame = pd.read_parquet(train, columns=["device_type", *names])
    constraint_set = ConstraintSet.load(constraints, feature_dictionary)
    fitted = Preprocessor.load(preprocessor)
    LOGGER.info(
        "read %s (%d synthetic rows, %d in split %s), %s (%d rows), %s, %s and %s (%d features)",
        synthetic, len(synthetic_frame), int((synthetic_frame["split"] == settings.split).sum()), settings.split,
        train, len(train_frame), constraints, preprocessor, dictionary, len(names),
    )

    document = validate_generator(
        synthetic_frame, train_frame, feature_dictionary, constraint_set, fitted, settings, llm, generator, seed,
        top_categories,
    )
    write_json(output, document)
    LOGGER.info("wrote %s: summary %s; took %.1f s", output, document["summary"], time.perf_counter() - started)
    return document
