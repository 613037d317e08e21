"""Training checkpoints: write, find, prune, and the fingerprint that ties them to a run.

A checkpoint ``epoch_<NNNN>.pt`` contains everything a killed training needs to
continue as if it had never stopped: both networks, both Adam states, the
random generator state and the loss rows so far. It also holds a fingerprint
of the inputs and settings; a checkpoint whose fingerprint differs (other
data, other graph, other hyperparameters) is never resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

LOGGER = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "iotsynth-wgan-checkpoint"
CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d{4,})\.pt$")
# Settings that may change between a checkpoint and its resumption: more
# epochs extend a run, and where or how often it is saved changes no result.
RESUMABLE_SETTINGS = ("epochs", "checkpoint_every", "keep_checkpoints", "device")


def fingerprint(settings: Mapping[str, Any], seed: int, arrays: Mapping[str, np.ndarray],
                documents: Mapping[str, Any]) -> str:
    """Return a SHA-256 over the settings, seed, training arrays and JSON documents.

    Parameters
    ----------
    settings : mapping
        ``WGANSettings.to_dict()``; the keys in ``RESUMABLE_SETTINGS`` are
        left out.
    seed : int
    arrays : mapping of str to numpy.ndarray
        Training rows, class indices, adjacency.
    documents : mapping of str to JSON-friendly values
        Layout, class names, constraint document.
    """
    digest = hashlib.sha256()
    compared = {key: value for key, value in settings.items() if key not in RESUMABLE_SETTINGS}
    digest.update(json.dumps({"settings": compared, "seed": seed, "documents": documents}, sort_keys=True,
                             default=str).encode("utf-8"))
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def checkpoint_path(folder: str | Path, epoch: int) -> Path:
    """Return the path of the checkpoint written after ``epoch`` epochs."""
    return Path(folder) / f"epoch_{epoch:04d}.pt"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """Return ``(epoch, path)`` of every checkpoint in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(folder: str | Path, epoch: int, state: Mapping[str, Any], keep: int) -> Path:
    """Write a checkpoint atomically and delete all but the ``keep`` newest.

    Parameters
    ----------
    folder : str or pathlib.Path
        Created when missing.
    epoch : int
        Epochs completed.
    state : mapping
        Tensors, state dicts and plain values; tensors are moved to the CPU.
    keep : int
        Checkpoints kept, this one included.
    """
    path = checkpoint_path(folder, epoch)
    save_atomically({"format": CHECKPOINT_FORMAT, "epoch": epoch, **_to_cpu(dict(state))}, path)

    for _, old in list_checkpoints(folder)[:-keep]:
        old.unlink()
    return path


def save_atomically(document: Mapping[str, Any], path: str | Path) -> None:
    """Write ``document`` with ``torch.save``, creating parent folders.

    The file is written as ``<name>.partial`` and renamed over ``path``, so
    a killed process never leaves a truncated ``path`` behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    torch.save(document, temporary)
    temporary.replace(path)


def load_latest(folder: str | Path, expected_fingerprint: str, max_epoch: int) -> dict[str, Any] | None:
    """Return the newest usable checkpoint, or None to start from scratch.

    A checkpoint is usable when its fingerprint matches and it lies at or
    before ``max_epoch``. Other checkpoints (other inputs or settings, or
    more epochs than this run trains) are deleted with a log line, so they
    cannot mix with this run's.

    Parameters
    ----------
    folder : str or pathlib.Path
    expected_fingerprint : str
        :func:`fingerprint` of the current run.
    max_epoch : int
        Epochs the current run trains for.
    """
    usable = None
    for epoch, path in reversed(list_checkpoints(folder)):
        try:
            document = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as error:
            LOGGER.warning("ignoring unreadable checkpoint %s: %s", path, error)
            continue
        if document.get("format") != CHECKPOINT_FORMAT or document.get("fingerprint") != expected_fingerprint:
            LOGGER.info("deleting checkpoint %s: it belongs to other inputs or settings", path)
            path.unlink()
            continue
        if epoch > max_epoch:
            # Kept, it would outrank this run's own checkpoints when they are pruned.
            LOGGER.info("deleting checkpoint %s: it is past the %d epochs of this run", path, max_epoch)
            path.unlink()
            continue
        if usable is None:
            usable = document
    return usable


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_cpu(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(item) for item in value)
    return value
