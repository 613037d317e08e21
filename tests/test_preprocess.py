"""Tests of iotsynth.preprocess on a synthetic packet table shaped like the real one."""

import json

import jsonschema
import numpy as np
import pandas as pd
import pytest

from iotsynth.preprocess import SCHEMA_PATH, Preprocessor, fit_preprocessor

# name, kind, layer, description, session_identifying
FEATURES = [
    ("pck_size", "discrete", "packet", "frame length in bytes", False),
    ("ip_ttl", "discrete", "packet", "IP time to live; 0 without IP", False),
    ("tcp_window", "discrete", "packet", "TCP window size in bytes; 0 without TCP", False),
    ("llc_ctrl", "discrete", "packet", "LLC control field; 0 without LLC", False),
    ("payload_entropy", "continuous", "packet", "Shannon entropy of the payload in bits per byte", False),
    ("flow_duration", "continuous", "flow", "seconds since the flow's first packet", False),
    ("dhcp_lease_time", "continuous", "packet", "DHCP lease time in seconds; 0 without DHCP", False),
    ("is_tcp", "binary", "packet", "1 if the packet has a TCP layer", False),
    ("tcp_syn", "binary", "packet", "TCP SYN flag; 0 without TCP", False),
    ("eth_type", "categorical", "packet", "EtherType; -1 for 802.3 frames", False),
    ("ip_proto", "categorical", "packet", "IP protocol number; -1 without IP", False),
    ("dst_port_class", "categorical", "packet", "destination port class code; -1 without ports", False),
]
CONSTANT_FEATURES = {"llc_ctrl": 0, "dhcp_lease_time": 0.0}


def make_dictionary(features=FEATURES):
    return pd.DataFrame(
        features, columns=["name", "kind", "layer", "description", "session_identifying"]
    )


def make_packet_frame(n_rows=2000, seed=0):
    """Build packet rows whose features hang together as in real traffic."""
    rng = np.random.default_rng(seed)
    eth_type = rng.choice([2048, 2054, 34525, -1], n_rows, p=[0.8, 0.1, 0.08, 0.02])
    has_ip = np.isin(eth_type, [2048, 34525])
    ip_proto = np.where(has_ip, rng.choice([6, 17, 1], n_rows, p=[0.6, 0.3, 0.1]), -1)
    is_tcp = (ip_proto == 6).astype(np.int64)
    has_ports = np.isin(ip_proto, [6, 17])

    return pd.DataFrame(
        {
            "capture": rng.choice(["Aria/Setup-A-1-STA", "HueBridge/Setup-B-2-STA"], n_rows),
            "device": "Aria",
            "device_type": "Aria",
            "frame": np.arange(1, n_rows + 1, dtype=np.int64),
            "pck_size": rng.integers(60, 1515, n_rows),
            "ip_ttl": np.where(has_ip, rng.choice([1, 64, 128, 255], n_rows), 0),
            "tcp_window": np.where(is_tcp == 1, rng.integers(0, 65536, n_rows), 0),
            "llc_ctrl": np.zeros(n_rows, dtype=np.int64),
            "payload_entropy": rng.uniform(0.0, 8.0, n_rows),
            "flow_duration": rng.exponential(30.0, n_rows),
            "dhcp_lease_time": np.zeros(n_rows),
            "is_tcp": is_tcp,
            "tcp_syn": is_tcp * rng.integers(0, 2, n_rows),
            "eth_type": eth_type,
            "ip_proto": ip_proto,
            "dst_port_class": np.where(has_ports, rng.choice([1, 2, 3], n_rows), -1),
        }
    )


def names_of(kind):
    return [name for name, feature_kind, *_ in FEATURES if feature_kind == kind]


@pytest.fixture(scope="module")
def frame():
    return make_packet_frame()


@pytest.fixture(scope="module")
def fitted(frame):
    return Preprocessor().fit(frame, make_dictionary())


@pytest.fixture()
def saved_document(fitted, tmp_path):
    path = tmp_path / "preprocessor.json"
    fitted.save(path)
    return json.loads(path.read_text())


def write_document(document, tmp_path):
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    return path


def test_round_trip_restores_values(fitted, frame):
    restored = fitted.inverse_transform(fitted.transform(frame))

    assert list(restored.columns) == [name for name, *_ in FEATURES]
    for name in names_of("discrete") + names_of("binary") + names_of("categorical"):
        assert restored[name].dtype == np.int64, name
        assert (restored[name].to_numpy() == frame[name].to_numpy()).all(), name
    for name in names_of("continuous"):
        assert restored[name].dtype == np.float64, name
        span = frame[name].max() - frame[name].min()
        np.testing.assert_allclose(restored[name], frame[name], rtol=0, atol=1e-6 * max(span, 1.0))


def test_transform_shape_and_range(fitted, frame):
    array = fitted.transform(frame)

    n_categories = sum(frame[name].nunique() for name in names_of("categorical"))
    assert array.dtype == np.float64
    assert array.shape == (len(frame), 9 + n_categories)
    assert array.min() == -1.0
    assert array.max() == 1.0


def test_scaled_features_hit_bounds(fitted, frame):
    array = fitted.transform(frame)
    for entry in fitted.layout_:
        if entry["kind"] not in ("continuous", "discrete") or entry["name"] in CONSTANT_FEATURES:
            continue
        column = array[:, entry["start"]]
        values = frame[entry["name"]]
        assert (column[values == values.min()] == -1.0).all(), entry["name"]
        assert (column[values == values.max()] == 1.0).all(), entry["name"]


def test_binary_maps_to_minus_one_and_one(fitted, frame):
    array = fitted.transform(frame)
    for entry in fitted.layout_:
        if entry["kind"] == "binary":
            expected = np.where(frame[entry["name"]] == 1, 1.0, -1.0)
            np.testing.assert_array_equal(array[:, entry["start"]], expected)


def test_categorical_one_hot(fitted, frame):
    array = fitted.transform(frame)
    for entry in fitted.layout_:
        if entry["kind"] != "categorical":
            continue
        block = array[:, entry["start"] : entry["stop"]]
        categories = np.array(entry["categories"])
        assert entry["categories"] == sorted(frame[entry["name"]].unique().tolist())
        assert set(np.unique(block)) == {0.0, 1.0}
        assert (block.sum(axis=1) == 1.0).all()
        np.testing.assert_array_equal(categories[block.argmax(axis=1)], frame[entry["name"]])


def test_constant_features_map_to_zero(fitted, frame):
    array = fitted.transform(frame)
    restored = fitted.inverse_transform(array)
    layout = {entry["name"]: entry for entry in fitted.layout_}

    for name, value in CONSTANT_FEATURES.items():
        assert (array[:, layout[name]["start"]] == 0.0).all(), name
        assert (restored[name] == value).all(), name
    # Any generator output decodes to the constant.
    noisy = fitted.inverse_transform(np.full_like(array[:5], 0.3))
    for name, value in CONSTANT_FEATURES.items():
        assert (noisy[name] == value).all(), name


def test_unseen_category_gives_zero_row(fitted, frame):
    rows = frame.iloc[:3].copy()
    rows["ip_proto"] = [47, 6, 17]  # GRE never occurs in training
    array = fitted.transform(rows)
    entry = next(entry for entry in fitted.layout_ if entry["name"] == "ip_proto")

    block = array[:, entry["start"] : entry["stop"]]
    assert (block[0] == 0.0).all()
    assert block[1].sum() == 1.0
    assert block[2].sum() == 1.0
    # The other features of the row are encoded as usual.
    np.testing.assert_array_equal(
        np.delete(array[0], np.arange(entry["start"], entry["stop"])),
        np.delete(fitted.transform(frame.iloc[:1])[0], np.arange(entry["start"], entry["stop"])),
    )
    # An all-zero group decodes to the first category.
    assert fitted.inverse_transform(array)["ip_proto"].tolist()[0] == entry["categories"][0]


def test_layout_is_contiguous(fitted, frame):
    layout = fitted.layout_

    assert [entry["name"] for entry in layout] == [name for name, *_ in FEATURES]
    assert layout[0]["start"] == 0
    for before, after in zip(layout, layout[1:]):
        assert after["start"] == before["stop"]
    assert fitted.n_columns_ == layout[-1]["stop"]
    pck_size = layout[0]
    assert pck_size["minimum"] == frame["pck_size"].min()
    assert pck_size["maximum"] == frame["pck_size"].max()
    assert "categories" not in pck_size
    is_tcp = next(entry for entry in layout if entry["name"] == "is_tcp")
    assert set(is_tcp) == {"name", "kind", "dtype", "start", "stop"}


def test_inverse_rounds_and_thresholds(frame):
    dictionary = make_dictionary(
        [
            ("hops", "discrete", "packet", "", False),
            ("flag", "binary", "packet", "", False),
            ("proto", "categorical", "packet", "", False),
        ]
    )
    train = pd.DataFrame({"hops": [0, 10], "flag": [0, 1], "proto": [6, 17]})
    preprocessor = Preprocessor().fit(train, dictionary)
    array = np.array(
        [
            [-0.05, 0.0, 0.2, 0.1],  # hops 4.75, flag at 0, proto 6 by arg-max
            [0.15, 0.01, -0.9, -0.3],  # hops 5.75, flag above 0, proto 17
            [0.9, -0.5, 0.4, 0.4],  # hops 9.5, flag below 0, tie goes to 6
        ]
    )

    restored = preprocessor.inverse_transform(array)

    assert restored["hops"].tolist() == [5, 6, 10]
    assert restored["flag"].tolist() == [0, 1, 0]
    assert restored["proto"].tolist() == [6, 17, 6]
    assert (restored.dtypes == np.int64).all()


def test_values_outside_training_range_not_clipped(fitted, frame):
    rows = frame.iloc[:1].copy()
    rows["pck_size"] = 3000
    array = fitted.transform(rows)

    assert array[0, 0] > 1.0
    assert fitted.inverse_transform(array)["pck_size"].tolist() == [3000]


def test_wide_discrete_round_trips_exactly():
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"tcp_seq": rng.integers(0, 2**32, 5000)})
    dictionary = make_dictionary([("tcp_seq", "discrete", "packet", "", True)])
    preprocessor = Preprocessor().fit(train, dictionary)

    restored = preprocessor.inverse_transform(preprocessor.transform(train))

    assert (restored["tcp_seq"] == train["tcp_seq"]).all()


def test_save_load_round_trip(fitted, frame, tmp_path):
    path = tmp_path / "nested" / "preprocessor.json"
    fitted.save(path)
    loaded = Preprocessor.load(path)

    assert loaded.layout_ == fitted.layout_
    np.testing.assert_array_equal(loaded.transform(frame), fitted.transform(frame))
    pd.testing.assert_frame_equal(
        loaded.inverse_transform(fitted.transform(frame)),
        fitted.inverse_transform(fitted.transform(frame)),
    )


def test_schema_is_valid_draft_2020_12():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_load_rejects_unknown_top_level_key(saved_document, tmp_path):
    saved_document["scaler"] = "minmax"
    with pytest.raises(ValueError, match=r"top level.*'scaler' was unexpected"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_unknown_feature_key(saved_document, tmp_path):
    saved_document["features"][2]["mean"] = 1.0
    with pytest.raises(ValueError, match=r"features/2.*'mean' was unexpected"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_wrong_type(saved_document, tmp_path):
    saved_document["features"][1]["start"] = "1"
    with pytest.raises(ValueError, match=r"features/1/start.*not of type 'integer'"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_other_version(saved_document, tmp_path):
    saved_document["format_version"] = 2
    with pytest.raises(ValueError, match="format_version"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_key_of_other_kind(saved_document, tmp_path):
    categorical = next(
        index
        for index, entry in enumerate(saved_document["features"])
        if entry["kind"] == "categorical"
    )
    saved_document["features"][categorical]["minimum"] = 0
    with pytest.raises(ValueError, match=f"features/{categorical}/minimum: this key does not belong"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_missing_range(saved_document, tmp_path):
    del saved_document["features"][0]["maximum"]
    with pytest.raises(ValueError, match=r"features/0.*'maximum' is a required property"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_inconsistent_columns(saved_document, tmp_path):
    saved_document["features"][3]["stop"] += 1
    with pytest.raises(ValueError, match="features/3 has start 3 and stop 5"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_wrong_n_columns(saved_document, tmp_path):
    saved_document["n_columns"] += 1
    with pytest.raises(ValueError, match="n_columns"):
        Preprocessor.load(write_document(saved_document, tmp_path))


def test_load_rejects_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": ')
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        Preprocessor.load(path)


def test_load_rejects_nan(saved_document, tmp_path):
    path = write_document(saved_document, tmp_path)
    path.write_text(path.read_text().replace('"maximum": 1514', '"maximum": NaN', 1))
    with pytest.raises(ValueError, match="NaN is not a valid number"):
        Preprocessor.load(path)


def test_fit_rejects_unknown_kind(frame):
    dictionary = make_dictionary()
    dictionary.loc[4, "kind"] = "real"
    with pytest.raises(ValueError, match="'payload_entropy' has kind 'real'"):
        Preprocessor().fit(frame, dictionary)


def test_fit_rejects_missing_column(frame):
    with pytest.raises(ValueError, match="missing 1 feature columns.*'tcp_window'"):
        Preprocessor().fit(frame.drop(columns="tcp_window"), make_dictionary())


def test_fit_rejects_bad_values(frame):
    not_binary = frame.assign(tcp_syn=frame["tcp_syn"] * 2)
    with pytest.raises(ValueError, match="binary feature 'tcp_syn'.*2"):
        Preprocessor().fit(not_binary, make_dictionary())

    missing = frame.assign(flow_duration=frame["flow_duration"].where(frame.index > 0))
    with pytest.raises(ValueError, match="'flow_duration' has 1 missing"):
        Preprocessor().fit(missing, make_dictionary())

    fractional = frame.assign(eth_type=frame["eth_type"] + 0.5)
    with pytest.raises(ValueError, match="'eth_type' contains non-integer codes"):
        Preprocessor().fit(fractional, make_dictionary())


def test_transform_rejects_binary_out_of_range(fitted, frame):
    with pytest.raises(ValueError, match="transform: binary feature 'is_tcp'"):
        fitted.transform(frame.assign(is_tcp=3))


def test_inverse_rejects_bad_array(fitted):
    with pytest.raises(ValueError, match=f"shape \\(n_rows, {fitted.n_columns_}\\)"):
        fitted.inverse_transform(np.zeros((2, fitted.n_columns_ - 1)))
    bad = np.zeros((2, fitted.n_columns_))
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity in columns \[4\]"):
        fitted.inverse_transform(bad)


def test_unfitted_preprocessor_raises(frame):
    with pytest.raises(RuntimeError, match="not fitted"):
        Preprocessor().transform(frame)


def test_fit_preprocessor_writes_json(frame, tmp_path):
    train_path = tmp_path / "train.parquet"
    dictionary_path = tmp_path / "feature_dictionary.csv"
    output_path = tmp_path / "preprocess" / "preprocessor.json"
    frame.to_parquet(train_path, index=False)
    make_dictionary().to_csv(dictionary_path, index=False)

    preprocessor = fit_preprocessor(train_path, dictionary_path, output_path)

    assert Preprocessor.load(output_path).layout_ == preprocessor.layout_
    np.testing.assert_array_equal(
        preprocessor.transform(frame), Preprocessor().fit(frame, make_dictionary()).transform(frame)
    )
