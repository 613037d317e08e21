"""Packet-like tables with known structure, for the generator tests and the speed benchmark.

:func:`make_packet_table` draws rows per device type with protocol logic
(TCP fields are 0 unless ``is_tcp``, and ``ip_proto`` agrees with the flags),
correlated sizes, class-dependent categories and imbalanced class sizes.
Extra features of each kind, driven by one latent value per row, let the
benchmark reach the width of the real feature table. :func:`build_inputs`
derives the preprocessor, the feature graph and an offline constraint set
from such a table with the same library code as the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iotsynth.constraints import ConstraintSet
from iotsynth.constraints.build import assemble_document
from iotsynth.constraints.model import SECTIONS
from iotsynth.constraints.offline import derive_constraints
from iotsynth.constraints.settings import ConstraintSettings
from iotsynth.graph import build_feature_graph
from iotsynth.preprocess import Preprocessor

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
TTL_VALUES = np.array([64, 128, 255])
CORE_KINDS = {
    "packet_size": "continuous",
    "payload_size": "continuous",
    "payload_entropy": "continuous",
    "is_tcp": "binary",
    "is_udp": "binary",
    "ip_proto": "categorical",
    "tcp_window": "discrete",
    "tcp_flag_syn": "binary",
    "udp_length": "discrete",
    "ttl": "discrete",
    "port_class": "categorical",
}


@dataclass
class ToyInputs:
    """Inputs of the generator stages, built from one table.

    Attributes
    ----------
    preprocessor : Preprocessor
    names : list of str
        Feature names in adjacency order.
    adjacency : numpy.ndarray of shape (n_features, n_features)
    constraints : ConstraintSet
    """

    preprocessor: Preprocessor
    names: list[str]
    adjacency: np.ndarray
    constraints: ConstraintSet


def make_packet_table(n_rows: int, n_device_types: int = 4, seed: int = 0, extra_continuous: int = 0,
                      extra_discrete: int = 0, extra_binary: int = 0, extra_categorical: int = 0,
                      categories: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw a packet table and its feature dictionary.

    Parameters
    ----------
    n_rows : int
        Rows in total; device type ``k`` gets a share proportional to
        ``0.6 ** k``, with at least 20 rows.
    n_device_types : int, default 4
    seed : int, default 0
    extra_continuous, extra_discrete, extra_binary, extra_categorical : int
        Extra features of each kind on top of the 11 core features.
    categories : int, default 4
        Categories of each extra categorical feature.

    Returns
    -------
    frame : pandas.DataFrame
        ``capture``, ``device``, ``device_type``, ``frame`` and the features.
    dictionary : pandas.DataFrame
        ``name`` and ``kind`` of every feature.
    """
    rng = np.random.default_rng(seed)
    shares = 0.6 ** np.arange(n_device_types)
    sizes = np.maximum(20, np.floor(n_rows * shares / shares.sum()).astype(int))
    sizes[0] += max(0, n_rows - sizes.sum())
    parts = [_device_rows(f"device{index:02d}", size, rng, index) for index, size in enumerate(sizes)]
    frame = pd.concat(parts, ignore_index=True)

    kinds = dict(CORE_KINDS)
    latent = frame.pop("latent").to_numpy()
    extra = {}
    for index in range(extra_continuous):
        extra[f"extra_continuous_{index}"] = (1.0 + index % 3) * latent + rng.normal(size=len(frame))
        kinds[f"extra_continuous_{index}"] = "continuous"
    for index in range(extra_discrete):
        extra[f"extra_discrete_{index}"] = np.rint(np.abs(10 * latent + rng.normal(0, 3, len(frame)))).astype(np.int64)
        kinds[f"extra_discrete_{index}"] = "discrete"
    for index in range(extra_binary):
        threshold = (index % 5 - 2) / 2.0
        extra[f"extra_binary_{index}"] = (latent + rng.normal(size=len(frame)) > threshold).astype(np.int64)
        kinds[f"extra_binary_{index}"] = "binary"
    cuts = np.linspace(-1.5, 1.5, categories - 1)
    for index in range(extra_categorical):
        codes = np.digitize(latent + rng.normal(0, 0.7, len(frame)), cuts)
        extra[f"extra_categorical_{index}"] = (10 * codes + index).astype(np.int64)
        kinds[f"extra_categorical_{index}"] = "categorical"
    frame = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)

    dictionary = pd.DataFrame({"name": list(kinds), "kind": list(kinds.values())})
    return frame, dictionary


def stratified_split(frame: pd.DataFrame, seed: int = 0, train: float = 0.6, val: float = 0.2) -> dict[str, pd.DataFrame]:
    """Split a toy packet table per device type into ``train``, ``val`` and ``test`` (the rest)."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for _, rows in frame.groupby("device_type"):
        order = rng.permutation(len(rows))
        cut_train, cut_val = int(train * len(rows)), int((train + val) * len(rows))
        parts["train"].append(rows.iloc[order[:cut_train]])
        parts["val"].append(rows.iloc[order[cut_train:cut_val]])
        parts["test"].append(rows.iloc[order[cut_val:]])
    return {name: pd.concat(chunks, ignore_index=True) for name, chunks in parts.items()}


def _device_rows(name: str, size: int, rng: np.random.Generator, index: int) -> pd.DataFrame:
    """Draw the rows of one device type; its protocol mix and sizes depend on ``index``."""
    mix = rng.dirichlet([4.0, 2.0, 0.5])
    protocol = rng.choice(np.array(list(PROTOCOLS.values())), size=size, p=mix)
    is_tcp, is_udp = protocol == 6, protocol == 17

    packet_size = np.clip(rng.normal(100 + 120 * index, 30 + 10 * index, size), 42, 1514)
    payload_size = np.clip(packet_size - 40 - rng.exponential(4, size), 0, None)
    entropy = np.clip(8 * payload_size / (payload_size + 200) + rng.normal(0, 0.3, size), 0, 8)
    port_probabilities = rng.dirichlet(np.ones(5) * 0.8)
    frame = pd.DataFrame({
        "capture": [f"{name}/capture-{row % 3}" for row in range(size)],
        "device": name,
        "device_type": name,
        "frame": np.arange(1, size + 1, dtype=np.int64),
        "packet_size": packet_size,
        "payload_size": payload_size,
        "payload_entropy": entropy,
        "is_tcp": is_tcp.astype(np.int64),
        "is_udp": is_udp.astype(np.int64),
        "ip_proto": protocol.astype(np.int64),
        "tcp_window": np.where(is_tcp, rng.integers(1000 * (index + 1), 1000 * (index + 3), size), 0),
        "tcp_flag_syn": (is_tcp & (rng.random(size) < 0.15)).astype(np.int64),
        "udp_length": np.where(is_udp, np.rint(payload_size + 8).astype(np.int64), 0),
        "ttl": TTL_VALUES[rng.choice(3, size=size, p=rng.dirichlet(np.ones(3)))],
        "port_class": rng.choice(5, size=size, p=port_probabilities).astype(np.int64),
        "latent": rng.normal(index * 0.5 - 1.0, 1.0, size),
    })
    return frame


def build_inputs(frame: pd.DataFrame, dictionary: pd.DataFrame,
                 settings: ConstraintSettings | None = None) -> ToyInputs:
    """Fit the preprocessor, build the feature graph and derive offline constraints from ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Training rows with ``device_type`` and every feature.
    dictionary : pandas.DataFrame
        Feature dictionary (``name``, ``kind``).
    settings : ConstraintSettings, optional
        Defaults to ``ConstraintSettings()``.
    """
    settings = settings or ConstraintSettings()
    preprocessor = Preprocessor().fit(frame, dictionary)
    graph = build_feature_graph(frame, dictionary)
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    ranges = {name: (float(frame[name].min()), float(frame[name].max())) for name in kinds}

    derived = derive_constraints(frame, kinds, ranges, graph.edges(), settings)
    sections = {}
    for device_type, found in derived.items():
        metadata = {"backend": "offline", "model": None, "prompt_hash": None,
                    "created": "1970-01-01T00:00:00+00:00", "n_rows": found["n_rows"]}
        sections[device_type] = {"metadata": metadata, **{key: found[key] for key in SECTIONS}}
    document = assemble_document(sections, kinds, ranges, settings, "offline", None)
    document["metadata"]["created"] = "1970-01-01T00:00:00+00:00"
    constraints = ConstraintSet.from_document(document, kinds, source="toy constraints")
    return ToyInputs(preprocessor, list(graph.names), graph.adjacency, constraints)
