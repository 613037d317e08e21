"""Plausibility scores of synthetic traffic, per generator and device type.

For each device type, a seeded sample of a generator's synthetic rows is
scored from 0 to 1 with a list of doubted features. The ``anthropic``
backend sends a summary and a few rows of the sample to a Claude model as a
tool call (:mod:`~iotsynth.validation.prompt`,
:mod:`~iotsynth.validation.anthropic_backend`). The ``offline`` backend
scores from constraint violations and nearest-real-row distances
(:mod:`~iotsynth.validation.offline`). :mod:`~iotsynth.validation.stage`
runs the ``validate`` rule and :mod:`~iotsynth.validation.table` the
``validation_table`` rule.
"""

from iotsynth.validation.offline import OfflineScore, score_device_type
from iotsynth.validation.settings import ValidationSettings
from iotsynth.validation.stage import run_validation_stage, validate_generator
from iotsynth.validation.table import run_validation_table_stage, validation_table

__all__ = [
    "OfflineScore",
    "ValidationSettings",
    "run_validation_stage",
    "run_validation_table_stage",
    "score_device_type",
    "validate_generator",
    "validation_table",
]
