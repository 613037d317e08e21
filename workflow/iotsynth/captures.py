"""Finding the captures to extract and their device labels.

Three sources, in order of precedence:

1. a CSV list of the user's own captures (``dataset.capture_list``) with the
   columns ``capture`` (path to a pcap or pcapng file, relative to the CSV's
   folder or absolute), ``mac`` and ``device_type``, and optionally ``device``
   (the physical device; ``device_type`` when absent);
2. a local folder in the IoT Sentinel layout (``dataset.captures_dir``):
   ``<DeviceFolder>/*.pcap`` with the device MAC in
   ``<DeviceFolder>/_iotdevice-mac.txt``;
3. the downloaded IoT Sentinel folder, whose capture list comes from the
   SHA-256 manifest, so it is known before the download runs.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from iotsynth.download import read_manifest

MAC_FILE_NAME = "_iotdevice-mac.txt"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")


class CaptureListError(ValueError):
    """The capture list or folder cannot be used; the message names the file."""


@dataclass(frozen=True)
class Capture:
    """One capture file and its labels.

    Attributes
    ----------
    device : str
        Device (folder) name; with ``name`` it forms the capture id.
    name : str
        File name without its suffix.
    device_type : str
        The label of the device's packets.
    path : str
        Path to the capture file.
    mac : str or None
        The device MAC when the capture list gives it; None when it is read
        from the device folder's MAC file.
    mac_file : str or None
        The device folder's MAC file, or None.
    """

    device: str
    name: str
    device_type: str
    path: str
    mac: str | None = None
    mac_file: str | None = None

    @property
    def capture_id(self) -> str:
        return f"{self.device}/{self.name}"


def from_folder(root: str | Path, device_types: dict[str, str]) -> list[Capture]:
    """List the captures of a folder in the IoT Sentinel layout.

    A device folder without a MAC file is still listed, so that extraction
    reports it as skipped with the reason instead of silently losing it.
    """
    root = Path(root)
    if not root.is_dir():
        raise CaptureListError(
            f"dataset.captures_dir {str(root)!r} is not a folder; point it at the folder "
            "that holds the device folders"
        )
    captures = []
    for device_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(device_dir.iterdir()):
            if path.suffix.lower() in CAPTURE_SUFFIXES and path.is_file():
                captures.append(_capture(device_dir.name, path, device_types, mac_file=device_dir / MAC_FILE_NAME))
    if not captures:
        raise CaptureListError(f"no capture files ({', '.join(CAPTURE_SUFFIXES)}) found under {root}/<device>/")
    return captures


def from_manifest(manifest: str | Path, root: str | Path, device_types: dict[str, str]) -> list[Capture]:
    """List the captures named in a SHA-256 manifest, as they will lie under ``root``."""
    root = Path(root)
    captures = []
    for relative in read_manifest(manifest):
        parts = Path(relative).parts
        if len(parts) == 2 and Path(relative).suffix.lower() in CAPTURE_SUFFIXES:
            device = parts[0]
            captures.append(_capture(device, root / relative, device_types, mac_file=root / device / MAC_FILE_NAME))
    return sorted(captures, key=lambda c: c.capture_id)


def from_list(list_path: str | Path) -> list[Capture]:
    """Read a CSV list of captures (see the module docstring for its columns)."""
    list_path = Path(list_path)
    if not list_path.is_file():
        raise CaptureListError(f"dataset.capture_list {str(list_path)!r} not found")
    with list_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"capture", "mac", "device_type"} - set(reader.fieldnames or ())
        if missing:
            raise CaptureListError(
                f"{list_path}: missing column(s) {', '.join(sorted(missing))}; "
                "the header must name capture, mac and device_type (device is optional)"
            )
        captures = []
        seen: dict[str, int] = {}
        for number, record in enumerate(reader, start=2):
            path = Path(record["capture"].strip())
            if not path.is_absolute():
                path = list_path.parent / path
            device_type = record["device_type"].strip()
            device = (record.get("device") or "").strip() or device_type
            if not device_type:
                raise CaptureListError(f"{list_path}:{number}: device_type is empty")
            capture = _capture(device, path, {device: device_type}, mac=record["mac"].strip())
            if capture.capture_id in seen:
                raise CaptureListError(
                    f"{list_path}:{number}: capture id {capture.capture_id!r} repeats line "
                    f"{seen[capture.capture_id]}; give the files distinct names or devices"
                )
            seen[capture.capture_id] = number
            captures.append(capture)
    if not captures:
        raise CaptureListError(f"{list_path}: the list contains no capture; add one line per capture file")
    return captures


def select(captures: list[Capture], devices: list[str], max_per_device: int | None) -> list[Capture]:
    """Keep the captures of ``devices`` (all when empty), at most ``max_per_device`` each."""
    known = {c.device for c in captures}
    unknown = sorted(set(devices) - known)
    if unknown:
        raise CaptureListError(
            f"dataset.devices names device(s) not found in the input: {', '.join(unknown)}; "
            f"known devices: {', '.join(sorted(known))}"
        )
    chosen = [c for c in captures if not devices or c.device in devices]
    if max_per_device is None:
        return chosen
    counts: dict[str, int] = {}
    kept = []
    for capture in chosen:
        counts[capture.device] = counts.get(capture.device, 0) + 1
        if counts[capture.device] <= max_per_device:
            kept.append(capture)
    return kept


def _capture(device, path, device_types, mac=None, mac_file=None) -> Capture:
    path = Path(path)
    name = path.stem
    for label, value in (("device", device), ("capture name", name)):
        if not _SAFE_NAME.match(value):
            raise CaptureListError(
                f"{path}: {label} {value!r} may hold only letters, digits and . _ + -; rename it"
            )
    return Capture(
        device=device,
        name=name,
        device_type=device_types.get(device, device),
        path=str(path),
        mac=mac,
        mac_file=None if mac_file is None else str(mac_file),
    )
