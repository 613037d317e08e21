"""On-disk cache of validated LLM replies, keyed by the hash of model, prompt and format version.

The cache lives outside ``results/`` (``llm.cache_dir``, by default
``resources/llm-cache``) because Snakemake deletes a rule's outputs before it
reruns the rule. A rerun then finds every reply here, sends no request and
needs neither network nor API key.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

LOGGER = logging.getLogger(__name__)


class ReplyCache:
    """One JSON file per reply, ``<directory>/<stage>/<key>.json``.

    Parameters
    ----------
    directory : str or pathlib.Path
        Cache root; created on the first write.
    stage : str
        Folder of the stage's replies: ``constraints`` or ``validation``.
    """

    def __init__(self, directory: str | Path, stage: str):
        self.directory = Path(directory) / stage

    def path(self, key: str) -> Path:
        """Return the file that contains the reply for ``key``."""
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """Return the cached record for ``key``, or None when absent or unreadable."""
        path = self.path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            LOGGER.warning("ignoring unreadable cache file %s (%s); the request is sent again", path, error)
            return None

    def put(self, key: str, record: dict) -> Path:
        """Write ``record`` for ``key`` atomically, so an interrupted run leaves no partial file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(record, stream, indent=1, allow_nan=False)
                stream.write("\n")
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
