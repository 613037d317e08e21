"""The per-packet feature set and its dictionary.

The published feature list (Alyoubi et al., Sensors 25(24):7457, 2025) is not
public, so this set follows its description and the per-packet Scapy features
of IoTDevID (Kostas, Just and Lones, IEEE Internet of Things Journal, 2022):
header fields of every layer a packet of an IoT device carries, protocol
indicators, payload size and entropy, port classes, and the context of the
packet's flow and of the device's traffic so far in the capture.

Conventions shared by every feature:

- All values are numeric. A field of a layer that the packet lacks is 0, or -1
  for categorical features, and the layer's binary indicator (``is_tcp``, ...)
  tells "absent" from a real 0.
- Categorical features hold integer codes (EtherType, IP protocol number, ICMP
  type, port class code, ...), never strings.
- Times are in seconds, sizes in bytes.
- Addresses, capture names and absolute times are never features.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

KINDS = ("continuous", "discrete", "binary", "categorical")
LAYERS = ("packet", "flow", "device")

# Port classes, as in IoTDevID: IANA's well-known, registered and dynamic ranges.
PORT_CLASS_NONE = -1
PORT_CLASS_WELL_KNOWN = 0  # 0-1023
PORT_CLASS_REGISTERED = 1  # 1024-49151
PORT_CLASS_DYNAMIC = 2  # 49152-65535

# Scope of a destination IP address (IPv4 or IPv6).
SCOPE_NONE = -1
SCOPE_PRIVATE = 0
SCOPE_PUBLIC = 1
SCOPE_MULTICAST = 2
SCOPE_BROADCAST = 3
SCOPE_LINK_LOCAL = 4
SCOPE_LOOPBACK = 5
SCOPE_UNSPECIFIED = 6


@dataclass(frozen=True)
class Feature:
    """One column of the packet table.

    Attributes
    ----------
    name : str
        Column name.
    kind : str
        ``continuous``, ``discrete``, ``binary`` or ``categorical``.
    layer : str
        ``packet``, ``flow`` or ``device``.
    description : str
        Meaning and unit.
    session_identifying : bool
        True when the value can single out one session or capture.
    """

    name: str
    kind: str
    layer: str
    description: str
    session_identifying: bool = False


def _packet(name, kind, description, session_identifying=False):
    return Feature(name, kind, "packet", description, session_identifying)


FEATURES: tuple[Feature, ...] = (
    # Ethernet and 802.3/LLC
    _packet("pkt_size", "discrete", "Frame length on the wire in bytes"),
    _packet("eth_type", "categorical", "EtherType after any VLAN tags; -1 for an IEEE 802.3 frame (length field)"),
    _packet("eth_dst_broadcast", "binary", "Destination MAC is ff:ff:ff:ff:ff:ff"),
    _packet("eth_dst_multicast", "binary", "Destination MAC has the group bit set and is not broadcast"),
    _packet("eth_padding_len", "discrete", "Bytes of Ethernet padding after the last dissected layer"),
    _packet("vlan_tagged", "binary", "Frame carries an 802.1Q or 802.1ad tag"),
    _packet("is_llc", "binary", "IEEE 802.3 frame with an LLC header"),
    _packet("llc_dsap", "categorical", "LLC destination service access point"),
    _packet("llc_ssap", "categorical", "LLC source service access point"),
    _packet("llc_ctrl", "categorical", "LLC control field"),
    # EAPoL and ARP
    _packet("is_eapol", "binary", "EAP over LAN (EtherType 0x888e)"),
    _packet("eapol_version", "categorical", "EAPoL protocol version"),
    _packet("eapol_type", "categorical", "EAPoL packet type (0 EAP, 1 start, 3 key, ...)"),
    _packet("eapol_len", "discrete", "EAPoL body length in bytes"),
    _packet("is_arp", "binary", "ARP packet"),
    _packet("arp_op", "categorical", "ARP operation (1 request, 2 reply)"),
    # IPv4
    _packet("is_ip", "binary", "IPv4 packet"),
    _packet("ip_ihl", "discrete", "IPv4 header length in 32-bit words"),
    _packet("ip_tos", "categorical", "IPv4 type of service byte (DSCP and ECN)"),
    _packet("ip_len", "discrete", "IPv4 total length in bytes"),
    _packet("ip_id", "discrete", "IPv4 identification", True),
    _packet("ip_flag_df", "binary", "IPv4 don't-fragment flag"),
    _packet("ip_flag_mf", "binary", "IPv4 more-fragments flag"),
    _packet("ip_frag_offset", "discrete", "IPv4 fragment offset in 8-byte units"),
    _packet("ip_ttl", "discrete", "IPv4 time to live"),
    _packet("ip_proto", "categorical", "IPv4 protocol number"),
    _packet("ip_checksum", "discrete", "IPv4 header checksum", True),
    _packet("ip_options_len", "discrete", "Bytes of IPv4 options"),
    _packet("ip_opt_padding", "binary", "IPv4 options contain end-of-list or no-operation padding"),
    _packet("ip_opt_router_alert", "binary", "IPv4 options contain router alert"),
    _packet("ip_dst_scope", "categorical", "Destination IP scope: 0 private, 1 public, 2 multicast, 3 broadcast, 4 link-local, 5 loopback, 6 unspecified"),
    # IPv6
    _packet("is_ipv6", "binary", "IPv6 packet"),
    _packet("ipv6_tc", "categorical", "IPv6 traffic class"),
    _packet("ipv6_flow_label", "discrete", "IPv6 flow label", True),
    _packet("ipv6_plen", "discrete", "IPv6 payload length in bytes"),
    _packet("ipv6_nh", "categorical", "IPv6 next header of the fixed header"),
    _packet("ipv6_hlim", "discrete", "IPv6 hop limit"),
    _packet("ipv6_ext_headers", "discrete", "Number of IPv6 extension headers"),
    # ICMP, ICMPv6, IGMP
    _packet("is_icmp", "binary", "ICMP message"),
    _packet("icmp_type", "categorical", "ICMP type"),
    _packet("icmp_code", "categorical", "ICMP code"),
    _packet("icmp_checksum", "discrete", "ICMP checksum", True),
    _packet("is_icmpv6", "binary", "ICMPv6 message"),
    _packet("icmpv6_type", "categorical", "ICMPv6 type"),
    _packet("icmpv6_code", "categorical", "ICMPv6 code"),
    _packet("is_igmp", "binary", "IGMP message (IP protocol 2)"),
    _packet("igmp_type", "categorical", "IGMP message type"),
    # TCP
    _packet("is_tcp", "binary", "TCP segment"),
    _packet("tcp_seq", "discrete", "TCP sequence number", True),
    _packet("tcp_ack_num", "discrete", "TCP acknowledgement number", True),
    _packet("tcp_data_offset", "discrete", "TCP header length in 32-bit words"),
    _packet("tcp_flag_fin", "binary", "TCP FIN flag"),
    _packet("tcp_flag_syn", "binary", "TCP SYN flag"),
    _packet("tcp_flag_rst", "binary", "TCP RST flag"),
    _packet("tcp_flag_psh", "binary", "TCP PSH flag"),
    _packet("tcp_flag_ack", "binary", "TCP ACK flag"),
    _packet("tcp_flag_urg", "binary", "TCP URG flag"),
    _packet("tcp_flag_ece", "binary", "TCP ECE flag"),
    _packet("tcp_flag_cwr", "binary", "TCP CWR flag"),
    _packet("tcp_window", "discrete", "TCP window field (unscaled)"),
    _packet("tcp_checksum", "discrete", "TCP checksum", True),
    _packet("tcp_urgptr", "discrete", "TCP urgent pointer"),
    _packet("tcp_options_len", "discrete", "Bytes of TCP options"),
    _packet("tcp_opt_mss", "discrete", "TCP maximum segment size option value; 0 when absent"),
    _packet("tcp_opt_wscale", "discrete", "TCP window scale option shift count; 0 when absent"),
    _packet("tcp_opt_sack_permitted", "binary", "TCP SACK-permitted option present"),
    _packet("tcp_opt_timestamp", "binary", "TCP timestamp option present"),
    _packet("tcp_opt_nop_count", "discrete", "Number of TCP no-operation options"),
    # UDP
    _packet("is_udp", "binary", "UDP datagram"),
    _packet("udp_len", "discrete", "UDP length field in bytes"),
    _packet("udp_checksum", "discrete", "UDP checksum", True),
    # Ports
    _packet("sport", "discrete", "TCP or UDP source port; often an ephemeral port chosen per session", True),
    _packet("dport", "discrete", "TCP or UDP destination port"),
    _packet("sport_class", "categorical", "Source port class: 0 well-known, 1 registered, 2 dynamic"),
    _packet("dport_class", "categorical", "Destination port class: 0 well-known, 1 registered, 2 dynamic"),
    # Application protocols
    _packet("is_http", "binary", "HTTP: TCP payload starting with an HTTP method or status line"),
    _packet("is_tls", "binary", "HTTPS/TLS: TCP payload starting with a TLS record header"),
    _packet("is_dhcp", "binary", "DHCP message (BOOTP with the DHCP magic cookie)"),
    _packet("is_bootp", "binary", "BOOTP message (UDP ports 67/68)"),
    _packet("dhcp_message_type", "categorical", "DHCP message type option (1 discover, 3 request, ...)"),
    _packet("bootp_xid", "discrete", "BOOTP transaction id", True),
    _packet("is_ssdp", "binary", "SSDP (UDP port 1900)"),
    _packet("is_dns", "binary", "DNS (UDP or TCP port 53)"),
    _packet("is_mdns", "binary", "Multicast DNS (UDP port 5353)"),
    _packet("dns_id", "discrete", "DNS transaction id", True),
    _packet("dns_qr", "binary", "DNS message is a response"),
    _packet("dns_qdcount", "discrete", "DNS question count"),
    _packet("dns_ancount", "discrete", "DNS answer count"),
    _packet("dns_qtype", "categorical", "Type of the first DNS question (1 A, 28 AAAA, 12 PTR, ...)"),
    _packet("is_ntp", "binary", "NTP (UDP port 123)"),
    _packet("ntp_mode", "categorical", "NTP mode (3 client, 4 server, ...)"),
    # Payload
    _packet("payload_len", "discrete", "Bytes after the TCP or UDP header, padding excluded"),
    _packet("payload_entropy", "continuous", "Shannon entropy of the payload bytes in bits per byte"),
    # Flow context: the bidirectional flow (IP 5-tuple, or EtherType and MAC pair
    # for non-IP frames) up to and including this packet.
    Feature("flow_packets", "discrete", "flow", "Packets in the flow so far, both directions"),
    Feature("flow_bytes", "discrete", "flow", "Bytes in the flow so far, both directions"),
    Feature("flow_fwd_packets", "discrete", "flow", "Packets in the flow so far sent by the device"),
    Feature("flow_bwd_packets", "discrete", "flow", "Packets in the flow so far sent to the device or by the peer"),
    Feature("flow_bwd_bytes", "discrete", "flow", "Bytes in the flow so far not sent by the device"),
    Feature("flow_duration", "continuous", "flow", "Seconds from the flow's first packet to this one"),
    Feature("flow_iat_mean", "continuous", "flow", "Mean inter-arrival time in the flow so far, seconds"),
    Feature("flow_iat_std", "continuous", "flow", "Standard deviation of inter-arrival time in the flow so far, seconds"),
    Feature("flow_iat_last", "continuous", "flow", "Seconds since the flow's previous packet; 0 for its first"),
    Feature("flow_size_mean", "continuous", "flow", "Mean frame size in the flow so far, bytes"),
    Feature("flow_size_std", "continuous", "flow", "Standard deviation of frame size in the flow so far, bytes"),
    Feature("flow_size_min", "discrete", "flow", "Smallest frame in the flow so far, bytes"),
    Feature("flow_size_max", "discrete", "flow", "Largest frame in the flow so far, bytes"),
    # Device context: the device's own packets in this capture so far.
    Feature("dev_packets", "discrete", "device", "Packets the device has sent so far in the capture"),
    Feature("dev_time_since_prev", "continuous", "device", "Seconds since the device's previous packet; 0 for its first"),
    Feature("dev_distinct_dsts", "discrete", "device", "Distinct destinations (IP address, or MAC for non-IP) the device has sent to so far"),
    Feature("dev_distinct_dports", "discrete", "device", "Distinct TCP or UDP destination ports the device has sent to so far"),
    Feature("dst_ip_counter", "discrete", "device", "Packets the device has sent to this destination IP so far; 0 for non-IP"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)
METADATA_COLUMNS: tuple[str, ...] = ("capture", "device", "device_type", "frame")


def _check_features() -> None:
    """Fail at import when the feature table is inconsistent."""
    seen = set()
    for feature in FEATURES:
        if feature.name in seen:
            raise ValueError(f"feature {feature.name!r} is defined twice")
        if feature.kind not in KINDS:
            raise ValueError(f"feature {feature.name!r} has unknown kind {feature.kind!r}")
        if feature.layer not in LAYERS:
            raise ValueError(f"feature {feature.name!r} has unknown layer {feature.layer!r}")
        seen.add(feature.name)


_check_features()


def selected_features(session_identifying: str = "keep") -> tuple[Feature, ...]:
    """Return the features kept under the ``features.session_identifying`` setting.

    Parameters
    ----------
    session_identifying : {"keep", "drop"}
        Whether features that can single out one session stay in the table.
    """
    if session_identifying not in ("keep", "drop"):
        raise ValueError(
            f"features.session_identifying must be 'keep' or 'drop', got {session_identifying!r}"
        )
    if session_identifying == "keep":
        return FEATURES
    return tuple(feature for feature in FEATURES if not feature.session_identifying)


def feature_dictionary(features: tuple[Feature, ...] = FEATURES) -> pd.DataFrame:
    """Return the feature dictionary as a DataFrame, one row per feature."""
    return pd.DataFrame(
        {
            "name": [f.name for f in features],
            "kind": [f.kind for f in features],
            "layer": [f.layer for f in features],
            "description": [f.description for f in features],
            "session_identifying": [f.session_identifying for f in features],
        }
    )


def default_values(features: tuple[Feature, ...] = FEATURES) -> dict[str, int]:
    """Return each feature's value for a packet that lacks its layer."""
    return {f.name: (-1 if f.kind == "categorical" else 0) for f in features}
