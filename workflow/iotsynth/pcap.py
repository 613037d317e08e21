"""Streaming capture reader that yields Ethernet frames as bytes.

Classic libpcap files are read record by record with ``struct`` (no packet is
kept after it is yielded, so memory stays flat for any file size); pcapng files
go through Scapy's ``RawPcapNgReader``. Frames of the supported link types are
returned as Ethernet frames:

- DLT 1, Ethernet (with or without 802.1Q tags, Ethernet II or 802.3/LLC);
- DLT 113 and 276, Linux cooked capture v1 and v2: the cooked header carries
  the sender's MAC address and the packet type, from which an Ethernet header
  is rebuilt (destination ff:ff:ff:ff:ff:ff for broadcast, 01:00:5e:00:00:00
  for multicast, 00:00:00:00:00:00 otherwise, because the cooked header does
  not keep the destination MAC).

Other link types (raw IP, 802.11 with radiotap, ...) carry no source MAC that
could tell the device's packets apart, so the reader raises
:class:`UnsupportedCapture` for them and the caller skips the capture.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_NAMES = {
    0: "BSD loopback",
    1: "Ethernet",
    101: "raw IP",
    105: "IEEE 802.11",
    113: "Linux cooked capture v1",
    127: "IEEE 802.11 with radiotap",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked capture v2",
}
SUPPORTED_LINKTYPES = (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2)

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

# Linux cooked capture packet types (the sender's view of the destination).
_SLL_BROADCAST = 1
_SLL_MULTICAST = 2
_ETHERTYPE_LLC = 0x0004  # SLL protocol value for 802.2 LLC frames


class CaptureError(Exception):
    """A capture that cannot be read; the message names the reason."""


class UnsupportedCapture(CaptureError):
    """A readable capture whose link type gives no source MAC address."""


class TruncatedCapture(CaptureError):
    """The capture ends inside a record; the frames before it were read."""


@dataclass
class Frame:
    """One frame of a capture, converted to Ethernet.

    Attributes
    ----------
    number : int
        1-based position in the capture.
    time : float
        Capture timestamp in seconds since the epoch.
    wire_length : int
        Length of the frame on the wire in bytes.
    data : bytes
        The captured bytes as an Ethernet frame.
    """

    number: int
    time: float
    wire_length: int
    data: bytes


def linktype_name(linktype: int) -> str:
    """Return a readable name for a libpcap link type number."""
    return f"{LINKTYPE_NAMES.get(linktype, 'unknown')} (DLT {linktype})"


def read_frames(path: str | Path) -> Iterator[Frame]:
    """Yield the frames of a pcap or pcapng file as Ethernet frames.

    Raises
    ------
    CaptureError
        The file is empty or neither pcap nor pcapng.
    UnsupportedCapture
        The link type carries no source MAC (see the module docstring).
    TruncatedCapture
        The file ends inside a record header or body. Raised after every
        complete frame before the cut was yielded.
    """
    path = Path(path)
    with path.open("rb") as handle:
        magic = handle.read(4)
        if not magic:
            raise CaptureError("the file is empty")
        if magic in _PCAP_MAGICS:
            yield from _read_pcap(handle, magic)
        elif magic == _PCAPNG_MAGIC:
            handle.close()
            yield from _read_pcapng(path)
        else:
            raise CaptureError(
                f"not a pcap or pcapng file (first bytes {magic.hex()}); "
                "convert it with editcap or tshark, or remove it from the input"
            )


def _read_pcap(handle, magic: bytes) -> Iterator[Frame]:
    endian, resolution = _PCAP_MAGICS[magic]
    header = handle.read(20)
    if len(header) < 20:
        raise CaptureError("the pcap global header is truncated")
    linktype = struct.unpack(endian + "HHiIII", header)[5] & 0x0FFFFFFF
    _check_linktype(linktype)

    record = struct.Struct(endian + "IIII")
    number = 0
    while True:
        head = handle.read(16)
        if not head:
            return
        if len(head) < 16:
            raise TruncatedCapture(f"record header of frame {number + 1} is cut short")
        seconds, fraction, captured, wire = record.unpack(head)
        data = handle.read(captured)
        if len(data) < captured:
            raise TruncatedCapture(
                f"frame {number + 1} is truncated: {len(data)} of its {captured} bytes are present"
            )
        number += 1
        frame = _to_ethernet(linktype, data)
        if frame is not None:
            yield Frame(number, seconds + fraction * resolution, wire, frame)


def _read_pcapng(path: Path) -> Iterator[Frame]:
    # Imported here because Scapy's pcapng reader is needed only for pcapng.
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader

    try:
        reader = RawPcapNgReader(str(path))
    except Scapy_Exception as error:
        raise CaptureError(f"unreadable pcapng file: {error}") from error
    number = 0
    with reader:
        while True:
            try:
                data, meta = reader._read_packet()
            except EOFError:
                return
            except (Scapy_Exception, struct.error) as error:
                raise TruncatedCapture(f"pcapng block after frame {number} is damaged: {error}") from error
            number += 1
            linktype = meta.linktype
            _check_linktype(linktype)
            resolution = meta.tsresol or 1_000_000
            timestamp = ((meta.tshigh << 32) | meta.tslow) / resolution
            frame = _to_ethernet(linktype, data)
            if frame is not None:
                yield Frame(number, timestamp, meta.wirelen or len(data), frame)


def _check_linktype(linktype: int) -> None:
    if linktype not in SUPPORTED_LINKTYPES:
        raise UnsupportedCapture(
            f"link type {linktype_name(linktype)} carries no source MAC address, "
            "so the device's packets cannot be told apart; capture on the wired "
            "side (Ethernet) or convert the file"
        )


def _to_ethernet(linktype: int, data: bytes) -> bytes | None:
    """Return ``data`` as an Ethernet frame, or None when it is too short."""
    if linktype == LINKTYPE_ETHERNET:
        return data if len(data) >= 14 else None
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        packet_type, _, address_length = struct.unpack_from(">HHH", data, 0)
        source = data[6 : 6 + min(address_length, 6)].ljust(6, b"\0")
        protocol = data[14:16]
        payload = data[16:]
    else:
        if len(data) < 20:
            return None
        protocol = data[0:2]
        packet_type, address_length = data[10], data[11]
        source = data[12 : 12 + min(address_length, 6)].ljust(6, b"\0")
        payload = data[20:]

    if packet_type == _SLL_BROADCAST:
        destination = b"\xff" * 6
    elif packet_type == _SLL_MULTICAST:
        destination = b"\x01\x00\x5e\x00\x00\x00"
    else:
        destination = b"\0" * 6
    if int.from_bytes(protocol, "big") == _ETHERTYPE_LLC:
        # 802.3 frame: a length field where the EtherType would be.
        protocol = len(payload).to_bytes(2, "big")
    return destination + source + protocol + payload
