"""Packet-layer features of one frame, dissected with Scapy.

Only the Scapy layers the features need are loaded (not ``scapy.all``), which
keeps the start-up of one extraction job short.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS
from scapy.layers.eap import EAPOL
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, _ICMPv6
from scapy.layers.l2 import ARP, LLC, SNAP, Dot1AD, Dot1Q, Dot3, Ether
from scapy.layers.ntp import NTP
from scapy.packet import NoPayload, Padding, Raw

from iotsynth import features as F

_IPV6_EXTENSIONS = (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)
_HTTP_STARTS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"NOTIFY ", b"M-SEARCH ", b"SUBSCRIBE ", b"HTTP/1.")
_TLS_CONTENT_TYPES = (0x14, 0x15, 0x16, 0x17)
_DHCP_MAGIC = b"\x63\x82\x53\x63"
# Layers Scapy places inside an ICMP error message (the quoted packet); their
# fields describe another packet and are not read.
_QUOTED = (IPerror, TCPerror, UDPerror)


def port_class(port: int) -> int:
    """Return the IANA port class code of a TCP or UDP port."""
    if port < 1024:
        return F.PORT_CLASS_WELL_KNOWN
    if port < 49152:
        return F.PORT_CLASS_REGISTERED
    return F.PORT_CLASS_DYNAMIC


def ip_scope(address: str) -> int:
    """Return the scope code of an IPv4 or IPv6 address (see ``features.SCOPE_*``)."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        return F.SCOPE_UNSPECIFIED
    if ip.is_loopback:
        return F.SCOPE_LOOPBACK
    if ip.is_multicast:
        return F.SCOPE_MULTICAST
    if ip.version == 4 and int(ip) == 0xFFFFFFFF:
        return F.SCOPE_BROADCAST
    if ip.is_link_local:
        return F.SCOPE_LINK_LOCAL
    if ip.is_private:
        return F.SCOPE_PRIVATE
    return F.SCOPE_PUBLIC


def dissect_features(data: bytes, wire_length: int, row: dict) -> None:
    """Fill ``row`` with the packet-layer features of one Ethernet frame.

    Parameters
    ----------
    data : bytes
        The frame, from the Ethernet header on.
    wire_length : int
        Frame length on the wire in bytes (may exceed ``len(data)`` when the
        capture was cut at a snap length).
    row : dict
        Feature values, pre-filled with the defaults for absent layers; only
        the features of layers present in the frame are written.
    """
    packet = Ether(data)
    row["pkt_size"] = wire_length
    destination = data[0:6]
    row["eth_dst_broadcast"] = int(destination == b"\xff" * 6)
    row["eth_dst_multicast"] = int(bool(destination[0] & 1) and not row["eth_dst_broadcast"])

    transport = None
    layer = packet
    while not isinstance(layer, NoPayload):
        if isinstance(layer, _QUOTED):
            break
        handler = _HANDLERS.get(type(layer))
        if handler is not None:
            result = handler(layer, row)
            if result is not None:
                transport = result
        elif isinstance(layer, _ICMPv6):
            _icmpv6(layer, row)
        elif isinstance(layer, NTP):
            _ntp(layer, row)
        elif isinstance(layer, Padding):
            row["eth_padding_len"] += len(layer.load)
        layer = layer.payload

    if transport is not None:
        _payload(transport, row)


def _ether(layer, row):
    row["eth_type"] = layer.type


def _dot3(layer, row):
    row["eth_type"] = -1


def _vlan(layer, row):
    row["vlan_tagged"] = 1
    row["eth_type"] = layer.type


def _llc(layer, row):
    row["is_llc"] = 1
    row["llc_dsap"] = layer.dsap
    row["llc_ssap"] = layer.ssap
    row["llc_ctrl"] = layer.ctrl


def _snap(layer, row):
    row["eth_type"] = layer.code


def _eapol(layer, row):
    row["is_eapol"] = 1
    row["eapol_version"] = layer.version
    row["eapol_type"] = layer.type
    row["eapol_len"] = layer.len or 0


def _arp(layer, row):
    row["is_arp"] = 1
    row["arp_op"] = layer.op


def _ip(layer, row):
    row["is_ip"] = 1
    row["ip_ihl"] = layer.ihl
    row["ip_tos"] = layer.tos
    row["ip_len"] = layer.len
    row["ip_id"] = layer.id
    flags = int(layer.flags)
    row["ip_flag_df"] = int(bool(flags & 0x2))
    row["ip_flag_mf"] = int(bool(flags & 0x1))
    row["ip_frag_offset"] = layer.frag
    row["ip_ttl"] = layer.ttl
    row["ip_proto"] = layer.proto
    row["ip_checksum"] = layer.chksum
    options_len = max(layer.ihl * 4 - 20, 0)
    row["ip_options_len"] = options_len
    for option in layer.options:
        number = option.option
        if number in (0, 1):  # end of options list, no operation
            row["ip_opt_padding"] = 1
        elif number == 20:  # router alert
            row["ip_opt_router_alert"] = 1
    row["ip_dst_scope"] = ip_scope(layer.dst)
    if layer.proto == 2:
        row["is_igmp"] = 1
        body = bytes(layer.payload)
        row["igmp_type"] = body[0] if body else -1


def _ipv6(layer, row):
    row["is_ipv6"] = 1
    row["ipv6_tc"] = layer.tc
    row["ipv6_flow_label"] = layer.fl
    row["ipv6_plen"] = layer.plen
    row["ipv6_nh"] = layer.nh
    row["ipv6_hlim"] = layer.hlim
    row["ip_dst_scope"] = ip_scope(layer.dst)


def _ipv6_extension(layer, row):
    row["ipv6_ext_headers"] += 1


def _icmp(layer, row):
    row["is_icmp"] = 1
    row["icmp_type"] = layer.type
    row["icmp_code"] = layer.code
    row["icmp_checksum"] = layer.chksum


def _icmpv6(layer, row):
    row["is_icmpv6"] = 1
    row["icmpv6_type"] = layer.type
    row["icmpv6_code"] = getattr(layer, "code", 0)


def _tcp(layer, row):
    row["is_tcp"] = 1
    row["tcp_seq"] = layer.seq
    row["tcp_ack_num"] = layer.ack
    row["tcp_data_offset"] = layer.dataofs
    flags = int(layer.flags)
    row["tcp_flag_fin"] = flags & 1
    row["tcp_flag_syn"] = flags >> 1 & 1
    row["tcp_flag_rst"] = flags >> 2 & 1
    row["tcp_flag_psh"] = flags >> 3 & 1
    row["tcp_flag_ack"] = flags >> 4 & 1
    row["tcp_flag_urg"] = flags >> 5 & 1
    row["tcp_flag_ece"] = flags >> 6 & 1
    row["tcp_flag_cwr"] = flags >> 7 & 1
    row["tcp_window"] = layer.window
    row["tcp_checksum"] = layer.chksum
    row["tcp_urgptr"] = layer.urgptr
    row["tcp_options_len"] = max((layer.dataofs or 5) * 4 - 20, 0)
    for name, value in layer.options:
        if name == "MSS":
            row["tcp_opt_mss"] = value
        elif name == "WScale":
            row["tcp_opt_wscale"] = value
        elif name == "SAckOK":
            row["tcp_opt_sack_permitted"] = 1
        elif name == "Timestamp":
            row["tcp_opt_timestamp"] = 1
        elif name == "NOP":
            row["tcp_opt_nop_count"] += 1
    _ports(layer, row)
    return layer


def _udp(layer, row):
    row["is_udp"] = 1
    row["udp_len"] = layer.len
    row["udp_checksum"] = layer.chksum
    _ports(layer, row)
    ports = (layer.sport, layer.dport)
    if 1900 in ports:
        row["is_ssdp"] = 1
    if 123 in ports:
        row["is_ntp"] = 1
    return layer


def _ports(layer, row):
    sport, dport = layer.sport, layer.dport
    row["sport"] = sport
    row["dport"] = dport
    row["sport_class"] = port_class(sport)
    row["dport_class"] = port_class(dport)
    if 53 in (sport, dport):
        row["is_dns"] = 1
    if 5353 in (sport, dport):
        row["is_mdns"] = 1


def _bootp(layer, row):
    row["is_bootp"] = 1
    row["bootp_xid"] = layer.xid


def _dhcp(layer, row):
    row["is_dhcp"] = 1
    for option in layer.options:
        if isinstance(option, tuple) and option[0] == "message-type":
            row["dhcp_message_type"] = option[1]
            break


def _dns(layer, row):
    row["dns_id"] = layer.id
    row["dns_qr"] = layer.qr
    row["dns_qdcount"] = layer.qdcount
    row["dns_ancount"] = layer.ancount
    questions = layer.qd
    if questions:
        row["dns_qtype"] = questions[0].qtype


def _ntp(layer, row):
    row["is_ntp"] = 1
    mode = getattr(layer, "mode", None)
    if mode is not None:
        row["ntp_mode"] = mode


def _payload(transport, row):
    """Fill the payload features from the bytes after the TCP or UDP header."""
    payload = transport.payload
    padding = payload.getlayer(Padding) if not isinstance(payload, NoPayload) else None
    body = bytes(payload)
    if padding is not None:
        body = body[: len(body) - len(padding.load)]
    row["payload_len"] = len(body)
    row["payload_entropy"] = byte_entropy(body)
    if isinstance(transport, TCP) and body:
        if body.startswith(_HTTP_STARTS):
            row["is_http"] = 1
        elif len(body) >= 3 and body[0] in _TLS_CONTENT_TYPES and body[1] == 3:
            row["is_tls"] = 1
    if isinstance(transport, UDP) and row["is_bootp"] and body[236:240] == _DHCP_MAGIC:
        row["is_dhcp"] = 1


def byte_entropy(payload: bytes) -> float:
    """Return the Shannon entropy of ``payload`` in bits per byte (0 for no bytes)."""
    if not payload:
        return 0.0
    total = len(payload)
    counts = Counter(payload).values()
    return -sum(count / total * math.log2(count / total) for count in counts)


_HANDLERS = {
    Ether: _ether,
    Dot3: _dot3,
    Dot1Q: _vlan,
    Dot1AD: _vlan,
    LLC: _llc,
    SNAP: _snap,
    EAPOL: _eapol,
    ARP: _arp,
    IP: _ip,
    IPv6: _ipv6,
    IPv6ExtHdrHopByHop: _ipv6_extension,
    IPv6ExtHdrRouting: _ipv6_extension,
    IPv6ExtHdrDestOpt: _ipv6_extension,
    IPv6ExtHdrFragment: _ipv6_extension,
    ICMP: _icmp,
    TCP: _tcp,
    UDP: _udp,
    BOOTP: _bootp,
    DHCP: _dhcp,
    DNS: _dns,
}
