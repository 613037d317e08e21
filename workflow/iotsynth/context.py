"""Flow and device context computed from raw Ethernet frames.

A flow is bidirectional: an IP flow is keyed by protocol and the unordered pair
of (address, port) ends; a non-IP frame (ARP, EAPoL, LLC) belongs to the flow of
its EtherType and unordered MAC pair. Non-first IPv4 fragments carry no ports,
so the ports of the first fragment are remembered by (source, destination,
protocol, IP id) and reused for the later ones.

Context values describe the flow and the device's traffic up to and including
the current frame, so they never look ahead in the capture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_IPV6_EXTENSIONS = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH
_IPV6_FRAGMENT = 44
_PORTED = (6, 17)  # TCP, UDP


@dataclass(frozen=True)
class FrameKey:
    """Flow key, destination and port of one frame, read from its raw bytes.

    Attributes
    ----------
    flow : tuple
        Bidirectional flow key.
    destination : bytes
        Destination IP address, or destination MAC for non-IP frames.
    is_ip : bool
        True for IPv4 and IPv6 frames.
    dport : int
        TCP or UDP destination port, or -1.
    """

    flow: tuple
    destination: bytes
    is_ip: bool
    dport: int


@dataclass
class _FlowState:
    first: float
    last: float
    packets: int = 0
    bytes: int = 0
    fwd_packets: int = 0
    bwd_packets: int = 0
    bwd_bytes: int = 0
    size_sum: float = 0.0
    size_sumsq: float = 0.0
    size_min: int = 0
    size_max: int = 0
    iat_sum: float = 0.0
    iat_sumsq: float = 0.0
    iat_last: float = 0.0


def parse_flow_key(data: bytes, context: "CaptureContext") -> FrameKey:
    """Return the flow key of an Ethernet frame from its raw bytes."""
    dst_mac, src_mac = data[0:6], data[6:12]
    offset = 12
    ethertype = int.from_bytes(data[12:14], "big")
    while ethertype in _ETH_VLAN and len(data) >= offset + 6:
        offset += 4
        ethertype = int.from_bytes(data[offset : offset + 2], "big")
    offset += 2

    if ethertype == _ETH_IPV4 and len(data) >= offset + 20:
        return _ipv4_key(data, offset, context)
    if ethertype == _ETH_IPV6 and len(data) >= offset + 40:
        return _ipv6_key(data, offset)
    # Non-IP frames; 802.3 frames (a length field) share one "EtherType" of 0.
    if ethertype <= 1500:
        ethertype = 0
    ends = (src_mac, dst_mac) if src_mac <= dst_mac else (dst_mac, src_mac)
    return FrameKey(("l2", ethertype) + ends, dst_mac, False, -1)


def _ipv4_key(data: bytes, offset: int, context: "CaptureContext") -> FrameKey:
    ihl = (data[offset] & 0x0F) * 4
    protocol = data[offset + 9]
    source = data[offset + 12 : offset + 16]
    destination = data[offset + 16 : offset + 20]
    flags_fragment = int.from_bytes(data[offset + 6 : offset + 8], "big")
    more_fragments = bool(flags_fragment & 0x2000)
    fragment_offset = flags_fragment & 0x1FFF
    ip_id = data[offset + 4 : offset + 6]

    sport = dport = -1
    if protocol in _PORTED:
        fragment_key = (source, destination, protocol, ip_id)
        if fragment_offset == 0:
            start = offset + ihl
            if len(data) >= start + 4:
                sport = int.from_bytes(data[start : start + 2], "big")
                dport = int.from_bytes(data[start + 2 : start + 4], "big")
            if more_fragments:
                context.fragment_ports[fragment_key] = (sport, dport)
        else:
            sport, dport = context.fragment_ports.get(fragment_key, (-1, -1))
    return _ip_key(4, protocol, source, sport, destination, dport)


def _ipv6_key(data: bytes, offset: int) -> FrameKey:
    next_header = data[offset + 6]
    source = data[offset + 8 : offset + 24]
    destination = data[offset + 24 : offset + 40]
    position = offset + 40
    first_fragment = True
    while next_header in _IPV6_EXTENSIONS + (_IPV6_FRAGMENT,) and len(data) >= position + 8:
        if next_header == _IPV6_FRAGMENT:
            first_fragment = (int.from_bytes(data[position + 2 : position + 4], "big") >> 3) == 0
            length = 8
        elif next_header == 51:
            length = (data[position + 1] + 2) * 4
        else:
            length = (data[position + 1] + 1) * 8
        next_header = data[position]
        position += length

    sport = dport = -1
    if next_header in _PORTED and first_fragment and len(data) >= position + 4:
        sport = int.from_bytes(data[position : position + 2], "big")
        dport = int.from_bytes(data[position + 2 : position + 4], "big")
    return _ip_key(6, next_header, source, sport, destination, dport)


def _ip_key(version, protocol, source, sport, destination, dport) -> FrameKey:
    a, b = (source, sport), (destination, dport)
    ends = (a, b) if a <= b else (b, a)
    return FrameKey((version, protocol) + ends, destination, True, dport)


class CaptureContext:
    """Running flow and device statistics of one capture.

    Parameters
    ----------
    mac : bytes of length 6
        The device's MAC address.
    """

    def __init__(self, mac: bytes):
        self.mac = mac
        self.fragment_ports: dict[tuple, tuple[int, int]] = {}
        self._flows: dict[tuple, _FlowState] = {}
        self._device_packets = 0
        self._device_last: float | None = None
        self._destinations: dict[bytes, int] = {}
        self._dports: set[int] = set()

    def update(self, key: FrameKey, time: float, size: int, from_device: bool) -> dict[str, float] | None:
        """Add one frame and return the context features when the device sent it.

        Parameters
        ----------
        key : FrameKey
            From :func:`parse_flow_key`.
        time : float
            Capture timestamp in seconds.
        size : int
            Frame length on the wire in bytes.
        from_device : bool
            Whether the device sent the frame.
        """
        flow = self._flows.get(key.flow)
        if flow is None:
            flow = _FlowState(first=time, last=time, size_min=size, size_max=size)
            self._flows[key.flow] = flow
        else:
            # Captures are not always in time order; a negative gap counts as 0.
            gap = max(time - flow.last, 0.0)
            flow.iat_sum += gap
            flow.iat_sumsq += gap * gap
            flow.iat_last = gap
            flow.last = max(time, flow.last)
        flow.packets += 1
        flow.bytes += size
        flow.size_sum += size
        flow.size_sumsq += size * size
        flow.size_min = min(flow.size_min, size)
        flow.size_max = max(flow.size_max, size)
        if from_device:
            flow.fwd_packets += 1
        else:
            flow.bwd_packets += 1
            flow.bwd_bytes += size
            return None

        return {**self._flow_values(flow), **self._device_values(key, time)}

    @staticmethod
    def _flow_values(flow: _FlowState) -> dict[str, float]:
        n = flow.packets
        size_mean = flow.size_sum / n
        gaps = n - 1
        iat_mean = flow.iat_sum / gaps if gaps else 0.0
        iat_var = flow.iat_sumsq / gaps - iat_mean * iat_mean if gaps else 0.0
        return {
            "flow_packets": n,
            "flow_bytes": flow.bytes,
            "flow_fwd_packets": flow.fwd_packets,
            "flow_bwd_packets": flow.bwd_packets,
            "flow_bwd_bytes": flow.bwd_bytes,
            "flow_duration": flow.last - flow.first,
            "flow_iat_mean": iat_mean,
            "flow_iat_std": math.sqrt(max(iat_var, 0.0)),
            "flow_iat_last": flow.iat_last if gaps else 0.0,
            "flow_size_mean": size_mean,
            "flow_size_std": math.sqrt(max(flow.size_sumsq / n - size_mean * size_mean, 0.0)),
            "flow_size_min": flow.size_min,
            "flow_size_max": flow.size_max,
        }

    def _device_values(self, key: FrameKey, time: float) -> dict[str, float]:
        self._device_packets += 1
        since = 0.0 if self._device_last is None else max(time - self._device_last, 0.0)
        self._device_last = time if self._device_last is None else max(time, self._device_last)
        count = self._destinations.get(key.destination, 0) + 1
        self._destinations[key.destination] = count
        if key.dport >= 0:
            self._dports.add(key.dport)
        return {
            "dev_packets": self._device_packets,
            "dev_time_since_prev": since,
            "dev_distinct_dsts": len(self._destinations),
            "dev_distinct_dports": len(self._dports),
            "dst_ip_counter": count if key.is_ip else 0,
        }
