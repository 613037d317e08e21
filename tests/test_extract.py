"""Feature extraction from captures that Scapy writes for each case."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.dot11 import Dot11, RadioTap
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert, fragment
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, LLC, CookedLinux, CookedLinuxV2, Dot1Q, Dot3, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap, wrpcapng

from iotsynth import features as F
from iotsynth.captures import Capture
from iotsynth.extract import MacAddressError, extract_capture, parse_mac, read_mac_file
from iotsynth.packets import SkippedCaptureError, extract_to_files, merge_captures

DEVICE = "02:00:00:00:00:01"
PEER = "02:00:00:00:00:99"
DEVICE_MAC = bytes.fromhex("020000000001")


def stamp(packets, start=1000.0, step=0.5):
    for index, packet in enumerate(packets):
        packet.time = start + index * step
    return packets


def conversation():
    """A DNS query and a TCP handshake with replies, plus an ARP request."""
    return stamp([
        Ether(src=DEVICE, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=DEVICE, psrc="192.168.1.20", pdst="192.168.1.1"),
        Ether(src=DEVICE, dst=PEER) / IP(src="192.168.1.20", dst="192.168.1.1") / UDP(sport=40000, dport=53) / DNS(id=77, qd=DNSQR(qname="example.org", qtype=1)),
        Ether(src=PEER, dst=DEVICE) / IP(src="192.168.1.1", dst="192.168.1.20") / UDP(sport=53, dport=40000) / DNS(id=77, qr=1),
        Ether(src=DEVICE, dst=PEER) / IP(src="192.168.1.20", dst="93.184.216.34", flags="DF") / TCP(sport=50000, dport=443, flags="S", options=[("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b"")]),
        Ether(src=PEER, dst=DEVICE) / IP(src="93.184.216.34", dst="192.168.1.20") / TCP(sport=443, dport=50000, flags="SA"),
        Ether(src=DEVICE, dst=PEER) / IP(src="192.168.1.20", dst="93.184.216.34", flags="DF") / TCP(sport=50000, dport=443, flags="PA") / Raw(b"\x16\x03\x01\x00\x05hello"),
    ])


def extract_frame(packets, tmp_path, **write):
    path = tmp_path / "capture.pcap"
    wrpcap(str(path), packets, **write)
    result = extract_capture(path, DEVICE_MAC)
    return result, pd.DataFrame(result.columns)


def test_conversation_keeps_device_packets_only(tmp_path):
    result, frame = extract_frame(conversation(), tmp_path)

    assert result.skipped is None
    assert list(result.frames) == [1, 2, 4, 6]
    assert result.dropped["not_from_device"] == 2
    assert list(frame.columns) == list(F.FEATURE_NAMES)


def test_conversation_packet_features(tmp_path):
    _, frame = extract_frame(conversation(), tmp_path)
    arp, dns, syn, tls = (frame.iloc[i] for i in range(4))

    assert arp["is_arp"] == 1
    assert arp["arp_op"] == 1
    assert arp["eth_dst_broadcast"] == 1
    assert arp["is_ip"] == 0
    assert arp["ip_proto"] == -1
    assert arp["eth_type"] == 0x0806
    assert dns["is_dns"] == 1
    assert dns["dns_id"] == 77
    assert dns["dns_qtype"] == 1
    assert dns["dport"] == 53
    assert dns["dport_class"] == F.PORT_CLASS_WELL_KNOWN
    assert dns["sport_class"] == F.PORT_CLASS_REGISTERED
    assert dns["ip_dst_scope"] == F.SCOPE_PRIVATE
    assert syn["tcp_flag_syn"] == 1
    assert syn["tcp_flag_ack"] == 0
    assert syn["tcp_opt_mss"] == 1460
    assert syn["tcp_opt_wscale"] == 7
    assert syn["tcp_opt_sack_permitted"] == 1
    assert syn["tcp_opt_nop_count"] == 1
    assert syn["ip_flag_df"] == 1
    assert syn["ip_dst_scope"] == F.SCOPE_PUBLIC
    assert syn["sport_class"] == F.PORT_CLASS_DYNAMIC
    assert tls["is_tls"] == 1
    assert tls["payload_len"] == 10
    assert tls["tcp_flag_psh"] == 1
    assert tls["tcp_flag_ack"] == 1
    assert 0 < tls["payload_entropy"] <= 8


def test_flow_context_counts_both_directions(tmp_path):
    _, frame = extract_frame(conversation(), tmp_path)
    syn, tls = frame.iloc[2], frame.iloc[3]

    assert syn["flow_packets"] == 1
    assert syn["flow_duration"] == 0
    assert tls["flow_packets"] == 3
    assert tls["flow_fwd_packets"] == 2
    assert tls["flow_bwd_packets"] == 1
    assert tls["flow_duration"] == pytest.approx(1.0)
    assert tls["flow_iat_mean"] == pytest.approx(0.5)
    assert tls["flow_iat_last"] == pytest.approx(0.5)


def test_device_context(tmp_path):
    _, frame = extract_frame(conversation(), tmp_path)

    assert list(frame["dev_packets"]) == [1, 2, 3, 4]
    assert list(frame["dev_time_since_prev"]) == pytest.approx([0.0, 0.5, 1.0, 1.0])
    # ARP goes to the broadcast MAC, DNS to the router, TCP twice to one server.
    assert list(frame["dev_distinct_dsts"]) == [1, 2, 3, 3]
    assert list(frame["dst_ip_counter"]) == [0, 1, 1, 2]


def test_vlan_tagged_frames(tmp_path):
    packet = Ether(src=DEVICE, dst=PEER) / Dot1Q(vlan=10) / IP(dst="10.0.0.1") / UDP(sport=1234, dport=123) / Raw(b"\x23" + b"\0" * 47)
    result, frame = extract_frame(stamp([packet]), tmp_path)

    assert result.n_packets == 1
    assert frame.loc[0, "vlan_tagged"] == 1
    assert frame.loc[0, "eth_type"] == 0x0800
    assert frame.loc[0, "is_ntp"] == 1
    assert frame.loc[0, "dport"] == 123


def test_ipv6_icmpv6(tmp_path):
    packet = Ether(src=DEVICE, dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6EchoRequest()
    _, frame = extract_frame(stamp([packet]), tmp_path)
    row = frame.loc[0]

    assert row["is_ipv6"] == 1
    assert row["ipv6_hlim"] == 255
    assert row["ipv6_nh"] == 58
    assert row["is_icmpv6"] == 1
    assert row["icmpv6_type"] == 128
    assert row["ip_dst_scope"] == F.SCOPE_MULTICAST
    assert row["eth_dst_multicast"] == 1


def test_ip_fragments_share_the_flow(tmp_path):
    datagram = IP(src="192.168.1.20", dst="192.168.1.1", id=4242) / UDP(sport=5000, dport=6000) / Raw(b"x" * 3000)
    packets = stamp([Ether(src=DEVICE, dst=PEER) / piece for piece in fragment(datagram, fragsize=1000)])
    result, frame = extract_frame(packets, tmp_path)

    assert result.n_packets == len(packets) == 4
    assert list(frame["ip_flag_mf"]) == [1, 1, 1, 0]
    assert frame["ip_frag_offset"].iloc[1] > 0
    # Later fragments carry no UDP header but belong to the first one's flow.
    assert list(frame["flow_packets"]) == [1, 2, 3, 4]


def test_router_alert_and_llc(tmp_path):
    igmp = Ether(src=DEVICE, dst="01:00:5e:00:00:16") / IP(dst="224.0.0.22", proto=2, options=[IPOption_Router_Alert()]) / Raw(b"\x22" + b"\0" * 7)
    stp = Dot3(src=DEVICE, dst="01:80:c2:00:00:00") / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\0" * 35)
    _, frame = extract_frame(stamp([igmp, stp]), tmp_path)

    assert frame.loc[0, "ip_opt_router_alert"] == 1
    assert frame.loc[0, "ip_options_len"] == 4
    assert frame.loc[0, "is_igmp"] == 1
    assert frame.loc[0, "igmp_type"] == 0x22
    assert frame.loc[1, "is_llc"] == 1
    assert frame.loc[1, "eth_type"] == -1
    assert frame.loc[1, "llc_dsap"] == 0x42


def test_icmp_error_quote_ignored(tmp_path):
    quoted = IP(src="192.168.1.1", dst="192.168.1.20") / UDP(sport=53, dport=9999)
    packet = Ether(src=DEVICE, dst=PEER) / IP(src="192.168.1.20", dst="192.168.1.1") / ICMP(type=3, code=3) / quoted
    _, frame = extract_frame(stamp([packet]), tmp_path)

    assert frame.loc[0, "is_icmp"] == 1
    assert frame.loc[0, "icmp_type"] == 3
    assert frame.loc[0, "is_udp"] == 0
    assert frame.loc[0, "dport"] == 0


def test_pcapng_is_read(tmp_path):
    path = tmp_path / "capture.pcapng"
    wrpcapng(str(path), conversation())
    result = extract_capture(path, DEVICE_MAC)

    assert result.skipped is None
    assert list(result.frames) == [1, 2, 4, 6]


@pytest.mark.parametrize("layer", [CookedLinux, CookedLinuxV2])
def test_linux_cooked_captures(tmp_path, layer):
    device = layer(pkttype=4, lladdrtype=1, lladdrlen=6, src=DEVICE_MAC + b"\0\0", proto=0x0800)
    peer = layer(pkttype=0, lladdrtype=1, lladdrlen=6, src=bytes.fromhex(PEER.replace(":", "")) + b"\0\0", proto=0x0800)
    packets = stamp([
        device / IP(src="192.168.1.20", dst="192.168.1.1") / UDP(sport=1000, dport=53),
        peer / IP(src="192.168.1.1", dst="192.168.1.20") / UDP(sport=53, dport=1000),
        device / IP(src="192.168.1.20", dst="192.168.1.1") / UDP(sport=1000, dport=53),
    ])
    path = tmp_path / "cooked.pcap"
    wrpcap(str(path), packets)
    result = extract_capture(path, DEVICE_MAC)
    frame = pd.DataFrame(result.columns)

    assert result.skipped is None
    assert list(result.frames) == [1, 3]
    assert list(frame["flow_packets"]) == [1, 3]
    assert list(frame["is_dns"]) == [1, 1]


@pytest.mark.parametrize(
    "packet, linktype, reason",
    [
        (IP(dst="192.168.1.1") / UDP(), 101, "raw IP"),
        (RadioTap() / Dot11(addr1=PEER, addr2=DEVICE, addr3=PEER), 127, "radiotap"),
    ],
)
def test_link_types_without_source_mac_are_skipped(tmp_path, packet, linktype, reason):
    path = tmp_path / "capture.pcap"
    wrpcap(str(path), [packet], linktype=linktype)
    result = extract_capture(path, DEVICE_MAC)

    assert result.n_packets == 0
    assert reason in result.skipped
    assert "source MAC" in result.skipped


def test_truncated_capture_keeps_complete_frames(tmp_path):
    path = tmp_path / "capture.pcap"
    wrpcap(str(path), conversation())
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    result = extract_capture(path, DEVICE_MAC)

    assert result.skipped is None
    assert list(result.frames) == [1, 2, 4]
    assert result.dropped["truncated_record"] == 1


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"<html>not a capture</html>", "not a pcap or pcapng file")],
)
def test_unreadable_files_are_skipped(tmp_path, content, reason):
    path = tmp_path / "capture.pcap"
    path.write_bytes(content)
    result = extract_capture(path, DEVICE_MAC)

    assert result.n_packets == 0
    assert reason in result.skipped


def test_capture_without_device_packets_is_skipped(tmp_path):
    packets = stamp([Ether(src=PEER, dst=DEVICE) / IP() / UDP()])
    result, _ = extract_frame(packets, tmp_path)

    assert result.n_packets == 0
    assert "no packet sent by the device MAC 02:00:00:00:00:01" in result.skipped


@pytest.mark.parametrize("text", ["02:00:00:00:00:01\n", "02-00-00-00-00-01", "020000000001 "])
def test_mac_formats(text):
    assert parse_mac(text, "test") == DEVICE_MAC


@pytest.mark.parametrize("text", ["02:00:00:00:01", "zz:00:00:00:00:01", "02:00-00:00:00:01", ""])
def test_malformed_mac_rejected(text):
    with pytest.raises(MacAddressError, match="not a MAC address"):
        parse_mac(text, "test")


def test_mac_file_missing(tmp_path):
    with pytest.raises(MacAddressError, match="MAC file not found"):
        read_mac_file(tmp_path / "_iotdevice-mac.txt")


def write_device(tmp_path, mac_text, packets=None, name="Setup-A-1-STA"):
    folder = tmp_path / "captures" / "Plug"
    folder.mkdir(parents=True, exist_ok=True)
    if mac_text is not None:
        (folder / "_iotdevice-mac.txt").write_text(mac_text)
    path = folder / f"{name}.pcap"
    wrpcap(str(path), packets if packets is not None else conversation())
    return Capture(device="Plug", name=name, device_type="Plug", path=str(path), mac_file=str(folder / "_iotdevice-mac.txt"))


@pytest.mark.parametrize("mac_text, reason", [(None, "MAC file not found"), ("not-a-mac\n", "not a MAC address")])
def test_bad_mac_file_skips_capture(tmp_path, caplog, mac_text, reason):
    capture = write_device(tmp_path, mac_text)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        report = extract_to_files(capture, out / "t.parquet", out / "t.json")

    assert reason in report["skipped"]
    assert reason in caplog.text
    assert "Plug/Setup-A-1-STA" in caplog.text
    assert pd.read_parquet(out / "t.parquet").empty


def test_strict_turns_skip_into_error(tmp_path):
    capture = write_device(tmp_path, "not-a-mac")
    out = tmp_path / "out"
    with pytest.raises(SkippedCaptureError, match="dataset.strict"):
        extract_to_files(capture, out / "t.parquet", out / "t.json", strict=True)


def test_merge_lists_skips_and_drops(tmp_path):
    good = write_device(tmp_path, DEVICE)
    empty = write_device(tmp_path, DEVICE, packets=stamp([Ether(src=PEER) / IP()]), name="Setup-A-2-STA")
    out = tmp_path / "out"
    paths = []
    for capture in (good, empty):
        parquet, report = out / f"{capture.name}.parquet", out / f"{capture.name}.json"
        extract_to_files(capture, parquet, report)
        paths.append((str(parquet), str(report)))
    merge_captures(
        [p for p, _ in paths], [r for _, r in paths],
        out / "packets.parquet", out / "dictionary.csv", out / "skipped.csv", out / "dropped.csv",
        session_identifying="drop",
    )
    packets = pd.read_parquet(out / "packets.parquet")
    dictionary = pd.read_csv(out / "dictionary.csv")
    skipped = pd.read_csv(out / "skipped.csv")
    dropped = pd.read_csv(out / "dropped.csv").set_index("reason")["frames"]

    assert len(packets) == 4
    assert list(packets.columns[:4]) == list(F.METADATA_COLUMNS)
    assert list(packets.columns[4:]) == list(dictionary["name"])
    assert "tcp_seq" not in dictionary["name"].values
    assert not dictionary["session_identifying"].any()
    assert list(skipped["capture"]) == ["Plug/Setup-A-2-STA"]
    assert dropped["not_from_device"] == 3
    report = json.loads((out / "Setup-A-1-STA.json").read_text())
    assert report["packets"] == 4
    assert report["mac"] == DEVICE
