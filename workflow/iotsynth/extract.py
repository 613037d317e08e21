"""Per-capture feature extraction.

Every frame of a capture updates the flow and device context (so a flow's
statistics include the packets the device received), but only frames whose
source MAC equals the device's MAC become samples. That decision is made from
the raw bytes, and Scapy dissects only the device's frames, which is what keeps
extraction fast: about half of the frames in the IoT Sentinel captures are not
sent by the device.
"""

from __future__ import annotations

import logging
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iotsynth import features as F
from iotsynth.context import CaptureContext, parse_flow_key
from iotsynth.dissect import dissect_features
from iotsynth.pcap import CaptureError, TruncatedCapture, read_frames

log = logging.getLogger(__name__)

_MAC_PATTERN = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


class MacAddressError(ValueError):
    """A device MAC address, or the file holding it, is missing or malformed."""


@dataclass
class CaptureResult:
    """Result of extracting one capture.

    Attributes
    ----------
    columns : dict[str, numpy.ndarray]
        Feature columns, one value per packet sent by the device.
    frames : numpy.ndarray
        1-based frame numbers of those packets.
    dropped : collections.Counter
        Frames that did not become samples, per reason.
    skipped : str or None
        Why the whole capture yielded no samples, or None.
    """

    columns: dict[str, np.ndarray]
    frames: np.ndarray
    dropped: Counter = field(default_factory=Counter)
    skipped: str | None = None

    @property
    def n_packets(self) -> int:
        return len(self.frames)


def parse_mac(text: str, source: str) -> bytes:
    """Parse a MAC address written as ``aa:bb:cc:dd:ee:ff``, ``aa-bb-...`` or 12 hex digits.

    Parameters
    ----------
    text : str
        The address, surrounding whitespace allowed.
    source : str
        Where the text came from, for the error message.
    """
    value = text.strip().lower()
    if not _MAC_PATTERN.match(value):
        raise MacAddressError(
            f"{source}: {text.strip()!r} is not a MAC address; write it as aa:bb:cc:dd:ee:ff"
        )
    return bytes.fromhex(value.replace(":", "").replace("-", ""))


def read_mac_file(path: str | Path) -> bytes:
    """Read the device MAC address from an IoT Sentinel ``_iotdevice-mac.txt`` file."""
    path = Path(path)
    if not path.is_file():
        raise MacAddressError(f"{path}: MAC file not found; put the device's MAC address in it")
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) != 1:
        raise MacAddressError(f"{path}: expected one MAC address, found {len(lines)} non-empty lines")
    return parse_mac(lines[0], str(path))


def extract_capture(path: str | Path, mac: bytes, selected=F.FEATURES) -> CaptureResult:
    """Extract the features of every packet that ``mac`` sent in one capture.

    Parameters
    ----------
    path : str or pathlib.Path
        A pcap or pcapng file.
    mac : bytes of length 6
        The device's MAC address.
    selected : tuple of Feature
        The features to return, in order.

    Returns
    -------
    CaptureResult
        ``skipped`` is set when the capture cannot be read or contains no packet
        from the device. A truncated capture keeps the packets before the cut
        and counts the rest as dropped.
    """
    names = [feature.name for feature in selected]
    defaults = F.default_values()
    rows: list[list[float]] = []
    frames: list[int] = []
    dropped: Counter = Counter()
    context = CaptureContext(mac)
    skipped = None

    try:
        for frame in read_frames(path):
            data = frame.data
            key = parse_flow_key(data, context)
            from_device = data[6:12] == mac
            values = context.update(key, frame.time, frame.wire_length, from_device)
            if not from_device:
                dropped["not_from_device"] += 1
                continue

            row = dict(defaults)
            try:
                dissect_features(data, frame.wire_length, row)
            except (struct.error, IndexError, ValueError, TypeError) as error:
                # Scapy raises these on malformed headers; one bad frame does
                # not spoil the capture.
                dropped["malformed_frame"] += 1
                log.debug("%s frame %d: dissection failed: %s", path, frame.number, error)
                continue
            row.update(values)
            rows.append([row[name] for name in names])
            frames.append(frame.number)
    except TruncatedCapture as error:
        dropped["truncated_record"] += 1
        log.warning("%s: capture is truncated (%s); kept the %d packets before the cut", path, error, len(rows))
    except CaptureError as error:
        skipped = str(error)

    if skipped is None and not rows:
        skipped = f"no packet sent by the device MAC {format_mac(mac)}"
    return CaptureResult(_to_columns(rows, selected), np.asarray(frames, dtype=np.int64), dropped, skipped)


def format_mac(mac: bytes) -> str:
    """Return ``mac`` as ``aa:bb:cc:dd:ee:ff``."""
    return ":".join(f"{byte:02x}" for byte in mac)


def _to_columns(rows: list[list[float]], selected) -> dict[str, np.ndarray]:
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(selected))
    columns = {}
    for index, feature in enumerate(selected):
        column = table[:, index]
        if feature.kind == "continuous":
            columns[feature.name] = column
        else:
            columns[feature.name] = column.astype(np.int64)
    return columns
