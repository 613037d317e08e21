"""Reading and writing the JSON documents that stages exchange, and their creation time."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path


def utc_now() -> str:
    """Return the current UTC time in ISO 8601 with seconds, for ``created`` fields."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_json(path: str | Path, description: str, rule: str) -> object:
    """Read a JSON document that the rule ``rule`` writes.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    description : str
        What the message calls the file, e.g. ``constraint file``.
    rule : str
        The rule to run when the file is missing.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not valid JSON.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{description} {path} not found; run the {rule} rule") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def write_json(path: str | Path, content: object, indent: int = 1) -> None:
    """Write ``content`` as JSON with a final newline, creating parent folders; NaN and infinity raise ValueError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=indent, allow_nan=False) + "\n", encoding="utf-8")
