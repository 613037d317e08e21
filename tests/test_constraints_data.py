"""Synthetic packet tables for the constraint tests, and checks of the tables themselves.

The other ``test_constraints_*`` files import :func:`make_frame`,
:func:`make_dictionary`, :func:`make_edges` and :func:`make_ranges`. Rows
follow the data contract: binary 0/1, categorical integer codes, and -1 or 0
for the fields of an absent layer. Protocol fields agree with each other, so
a UDP packet has no TCP flags and a well-known destination port has class 0.
"""

import numpy as np
import pandas as pd

from iotsynth.graph_measures import pearson_matrix

FEATURES = [
    ("pkt_size", "discrete"),
    ("eth_type", "categorical"),
    ("eth_padding_len", "discrete"),
    ("is_ip", "binary"),
    ("is_arp", "binary"),
    ("ip_proto", "categorical"),
    ("ip_ttl", "discrete"),
    ("is_tcp", "binary"),
    ("is_udp", "binary"),
    ("tcp_flag_syn", "binary"),
    ("tcp_flag_ack", "binary"),
    ("tcp_window", "discrete"),
    ("dport", "discrete"),
    ("dport_class", "categorical"),
    ("payload_len", "discrete"),
    ("payload_entropy", "continuous"),
    ("flow_packets", "discrete"),
    ("flow_bytes", "discrete"),
    ("flow_duration", "continuous"),
]

# Share of TCP, UDP and ARP packets per device type.
PROTOCOL_MIX = {
    "Aria": (0.7, 0.25, 0.05),
    "HueBridge": (0.3, 0.6, 0.1),
    "Withings": (0.0, 0.9, 0.1),
}


def make_dictionary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [name for name, _ in FEATURES],
            "kind": [kind for _, kind in FEATURES],
            "layer": ["flow" if name.startswith("flow") else "packet" for name, _ in FEATURES],
            "description": [f"synthetic {name}" for name, _ in FEATURES],
            "session_identifying": False,
        }
    )


def _device_rows(device_type: str, n_rows: int, rng: np.random.Generator) -> dict:
    tcp_share, udp_share, arp_share = PROTOCOL_MIX[device_type]
    protocol = rng.choice(["tcp", "udp", "arp"], n_rows, p=[tcp_share, udp_share, arp_share])
    is_tcp = (protocol == "tcp").astype(np.int64)
    is_udp = (protocol == "udp").astype(np.int64)
    is_arp = (protocol == "arp").astype(np.int64)
    is_ip = 1 - is_arp
    has_ports = is_tcp | is_udp

    well_known = rng.random(n_rows) < (0.8 if device_type != "Withings" else 0.3)
    dport = np.where(well_known, rng.choice([53, 80, 123, 443], n_rows), rng.integers(1024, 65536, n_rows))
    dport = np.where(has_ports == 1, dport, 0)
    dport_class = np.select([has_ports == 0, dport < 1024, dport < 49152], [-1, 0, 1], default=2)

    payload_len = np.where(has_ports == 1, rng.integers(0, 1200, n_rows), 0)
    header = np.where(is_tcp == 1, 54, np.where(is_udp == 1, 42, 42))
    flow_packets = rng.integers(1, 200, n_rows)
    syn = np.where(is_tcp == 1, (rng.random(n_rows) < 0.1).astype(np.int64), 0)
    ttl_base = {"Aria": 64, "HueBridge": 255, "Withings": 128}[device_type]

    return {
        "device_type": np.full(n_rows, device_type),
        "pkt_size": np.where(is_arp == 1, 60, header + payload_len),
        "eth_type": np.where(is_arp == 1, 2054, 2048),
        "eth_padding_len": np.zeros(n_rows, dtype=np.int64),
        "is_ip": is_ip,
        "is_arp": is_arp,
        "ip_proto": np.select([is_tcp == 1, is_udp == 1], [6, 17], default=-1),
        "ip_ttl": np.where(is_ip == 1, ttl_base, 0),
        "is_tcp": is_tcp,
        "is_udp": is_udp,
        "tcp_flag_syn": syn,
        "tcp_flag_ack": np.where(is_tcp == 1, 1 - syn, 0),
        "tcp_window": np.where(is_tcp == 1, rng.integers(1000, 65536, n_rows), 0),
        "dport": dport,
        "dport_class": dport_class,
        "payload_len": payload_len,
        "payload_entropy": np.where(payload_len > 0, rng.uniform(3.0, 8.0, n_rows), 0.0),
        "flow_packets": flow_packets,
        "flow_bytes": flow_packets * rng.integers(60, 300, n_rows) + rng.integers(0, 50, n_rows),
        "flow_duration": flow_packets * rng.uniform(0.05, 0.2, n_rows),
    }


def make_frame(n_rows_per_type: int = 600, seed: int = 0) -> pd.DataFrame:
    """Return packet rows of three device types with consistent protocol fields."""
    rng = np.random.default_rng(seed)
    parts = [pd.DataFrame(_device_rows(name, n_rows_per_type, rng)) for name in PROTOCOL_MIX]
    frame = pd.concat(parts, ignore_index=True)
    for name, kind in FEATURES:
        frame[name] = frame[name].astype(np.float64 if kind == "continuous" else np.int64)
    return frame


def make_edges(frame: pd.DataFrame) -> pd.DataFrame:
    """Return an edge table shaped like ``results/graph/edges.csv`` (Pearson weights only)."""
    names = [name for name, _ in FEATURES]
    kinds = dict(FEATURES)
    correlation = pearson_matrix(frame[names].to_numpy(dtype=np.float64))
    first, second = np.triu_indices(len(names), k=1)
    edges = pd.DataFrame(
        {
            "source": np.asarray(names)[first],
            "target": np.asarray(names)[second],
            "source_kind": [kinds[names[i]] for i in first],
            "target_kind": [kinds[names[i]] for i in second],
            "pearson": correlation[first, second],
            "spearman": correlation[first, second],
            "mutual_information": np.abs(correlation[first, second]),
            "weight": np.nan_to_num(np.abs(correlation[first, second])),
            "sign": np.sign(np.nan_to_num(correlation[first, second])).astype(int),
            "in_graph": True,
        }
    )
    return edges.sort_values("weight", ascending=False).reset_index(drop=True)


def make_ranges(frame: pd.DataFrame) -> dict:
    return {name: (float(frame[name].min()), float(frame[name].max())) for name, _ in FEATURES}


def test_frame_follows_contract():
    frame = make_frame(200)
    dictionary = make_dictionary()

    binary = dictionary.loc[dictionary["kind"] == "binary", "name"]
    assert frame[binary].isin([0, 1]).all().all()
    assert (frame.loc[frame["is_udp"] == 1, ["tcp_flag_syn", "tcp_flag_ack", "tcp_window"]] == 0).all().all()
    assert (frame.loc[frame["is_arp"] == 1, "dport_class"] == -1).all()
    assert (frame.loc[frame["dport"].between(1, 1023), "dport_class"] == 0).all()


def test_edges_cover_every_pair():
    frame = make_frame(100)
    edges = make_edges(frame)

    assert len(edges) == len(FEATURES) * (len(FEATURES) - 1) // 2
    assert edges["weight"].is_monotonic_decreasing
