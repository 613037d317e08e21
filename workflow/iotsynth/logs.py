"""Logging set-up shared by the workflow scripts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to_file(path: str | Path, level: int = logging.INFO) -> None:
    """Send log records and uncaught errors of this process to ``path``.

    Snakemake gives every rule a log file; the scripts call this first so
    that what a stage read, wrote and skipped ends up there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)

    def log_uncaught(kind, error, trace):
        logging.getLogger("iotsynth").error("failed: %s", error, exc_info=(kind, error, trace))
        sys.__excepthook__(kind, error, trace)

    sys.excepthook = log_uncaught
