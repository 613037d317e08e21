"""Tests of iotsynth.split on a synthetic packet table shaped like the real one."""

import numpy as np
import pandas as pd
import pytest

from iotsynth.split import (
    SPLIT_NAMES,
    assign_capture_groups,
    count_split_rows,
    cut_counts,
    split_packet_table,
    split_packets,
    validate_shares,
)

SHARES = {"train": 0.64, "val": 0.16, "test": 0.20}

# Device folder -> (device type, number of captures). Twins share a type, as
# EdimaxCam1 and EdimaxCam2 do in IoT Sentinel.
DEVICES = {
    "Aria": ("Aria", 20),
    "EdimaxCam1": ("EdimaxCam", 12),
    "EdimaxCam2": ("EdimaxCam", 8),
    "HueBridge": ("HueBridge", 20),
    "WeMoSwitch2": ("WeMoSwitch2", 5),
}


def make_packet_table(devices=DEVICES, seed=0):
    """Build a packet table with capture, device, device_type, frame and three features."""
    rng = np.random.default_rng(seed)
    parts = []
    for device, (device_type, n_captures) in devices.items():
        for number in range(1, n_captures + 1):
            n_packets = int(rng.integers(20, 300))
            parts.append(
                pd.DataFrame(
                    {
                        "capture": f"{device}/Setup-A-{number}-STA",
                        "device": device,
                        "device_type": device_type,
                        "frame": np.arange(1, n_packets + 1, dtype=np.int64),
                        "pck_size": rng.integers(60, 1515, n_packets),
                        "payload_entropy": rng.uniform(0, 8, n_packets),
                        "is_tcp": rng.integers(0, 2, n_packets),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def row_keys(frame):
    return set(zip(frame["capture"], frame["frame"]))


@pytest.fixture(scope="module")
def table():
    return make_packet_table()


def test_shares_not_summing_to_one_rejected():
    with pytest.raises(ValueError, match=r"train=0\.6, val=0\.2, test=0\.3.*not 1"):
        validate_shares({"train": 0.6, "val": 0.2, "test": 0.3})


def test_shares_within_tolerance_accepted():
    shares = validate_shares({"train": 0.7, "val": 0.2, "test": 0.1})
    assert shares.tolist() == [0.7, 0.2, 0.1]


def test_shares_zero_or_missing_rejected():
    with pytest.raises(ValueError, match="val=0.0"):
        validate_shares({"train": 0.8, "val": 0.0, "test": 0.2})
    with pytest.raises(ValueError, match=r"missing \['test'\]"):
        validate_shares({"train": 0.8, "val": 0.2})


def test_cut_counts_published_totals():
    counts = cut_counts(105_835, validate_shares(SHARES))
    assert counts.tolist() == [67_734, 16_934, 21_167]


def test_cut_counts_small_groups_fill_every_split():
    shares = validate_shares(SHARES)
    for n_rows in range(3, 40):
        counts = cut_counts(n_rows, shares)
        assert counts.sum() == n_rows
        assert (counts >= 1).all(), (n_rows, counts)


@pytest.mark.parametrize("mode", ["stratified", "by_capture"])
def test_splits_partition_rows(table, mode):
    splits = split_packets(table, mode=mode, shares=SHARES, seed=42)

    keys = [row_keys(splits[name]) for name in SPLIT_NAMES]
    assert sum(len(splits[name]) for name in SPLIT_NAMES) == len(table)
    assert set().union(*keys) == row_keys(table)
    assert not keys[0] & keys[1]
    assert not keys[0] & keys[2]
    assert not keys[1] & keys[2]
    for name in SPLIT_NAMES:
        assert list(splits[name].columns) == list(table.columns)
        assert (splits[name].dtypes == table.dtypes).all()
        assert set(splits[name]["device_type"]) == set(table["device_type"])


def test_stratified_counts_per_device_type(table):
    splits = split_packets(table, mode="stratified", shares=SHARES, seed=42)
    counts = count_split_rows(splits).set_index("device_type")

    for device_type, n_rows in table["device_type"].value_counts().items():
        expected = cut_counts(n_rows, validate_shares(SHARES))
        assert counts.loc[device_type, list(SPLIT_NAMES)].tolist() == expected.tolist()


def test_splits_keep_table_order(table):
    splits = split_packets(table, mode="stratified", shares=SHARES, seed=42)
    position = {key: index for index, key in enumerate(zip(table["capture"], table["frame"]))}

    for name in SPLIT_NAMES:
        positions = [position[key] for key in zip(splits[name]["capture"], splits[name]["frame"])]
        assert positions == sorted(positions)


@pytest.mark.parametrize("mode", ["stratified", "by_capture"])
def test_same_seed_same_split(table, mode):
    first = split_packets(table, mode=mode, shares=SHARES, seed=7)
    second = split_packets(table, mode=mode, shares=SHARES, seed=7)
    other = split_packets(table, mode=mode, shares=SHARES, seed=8)

    for name in SPLIT_NAMES:
        pd.testing.assert_frame_equal(first[name], second[name])
    assert row_keys(first["test"]) != row_keys(other["test"])


def test_by_capture_keeps_captures_whole(table):
    splits = split_packets(table, mode="by_capture", shares=SHARES, seed=42)
    captures = [set(splits[name]["capture"]) for name in SPLIT_NAMES]

    assert not captures[0] & captures[1]
    assert not captures[0] & captures[2]
    assert not captures[1] & captures[2]
    for name in SPLIT_NAMES:
        in_split = splits[name]["capture"].value_counts()
        in_table = table["capture"].value_counts()[in_split.index]
        assert (in_split == in_table).all()


def test_by_capture_row_shares_near_targets(table):
    splits = split_packets(table, mode="by_capture", shares=SHARES, seed=42)
    counts = count_split_rows(splits).set_index("device_type").drop(index="total")
    captures = table.groupby("capture").agg(
        device_type=("device_type", "first"), n_rows=("frame", "size")
    )
    largest_capture = captures.groupby("device_type")["n_rows"].max()

    for device_type, row in counts.iterrows():
        for name in SPLIT_NAMES:
            target = SHARES[name] * row["total"]
            # The greedy assignment ends at most one capture above a target
            # and two below it.
            assert row[name] - target <= largest_capture[device_type]
            assert target - row[name] <= 2 * largest_capture[device_type]


def test_capture_groups_fill_every_split():
    shares = validate_shares(SHARES)
    rng = np.random.default_rng(0)
    # One large capture and two small ones: by row deficit alone, both small
    # ones would go to the test split whenever the large one comes first.
    sizes = np.array([1000, 5, 5])
    for _ in range(20):
        assignment = assign_capture_groups(sizes, shares, rng)
        assert sorted(assignment.tolist()) == [0, 1, 2]


def test_by_capture_too_few_captures_named():
    small = make_packet_table({"Aria": ("Aria", 20), "WeMoLink": ("WeMoLink", 2)})
    with pytest.raises(ValueError, match="'WeMoLink' has 2 captures"):
        split_packets(small, mode="by_capture", shares=SHARES, seed=0)


def test_stratified_too_few_rows_named():
    table = pd.DataFrame(
        {"capture": ["a/1", "a/1", "b/1"], "device_type": ["A", "A", "B"], "frame": [1, 2, 1]}
    )
    with pytest.raises(ValueError, match="'A' has 2 rows"):
        split_packets(table, mode="stratified", shares=SHARES, seed=0)


def test_unknown_mode_rejected(table):
    with pytest.raises(ValueError, match="'random'"):
        split_packets(table, mode="random", shares=SHARES, seed=0)


def test_table06_counts(table):
    splits = split_packets(table, mode="stratified", shares=SHARES, seed=42)
    counts = count_split_rows(splits)

    assert list(counts.columns) == ["device_type", "train", "val", "test", "total"]
    assert counts["device_type"].tolist() == sorted(table["device_type"].unique()) + ["total"]
    body = counts.iloc[:-1]
    total = counts.iloc[-1]
    for name in SPLIT_NAMES:
        assert total[name] == len(splits[name])
        assert total[name] == body[name].sum()
    assert total["total"] == len(table)
    assert (body["train"] + body["val"] + body["test"] == body["total"]).all()


def test_split_packet_table_writes_files(table, tmp_path):
    packets_path = tmp_path / "features" / "packets.parquet"
    packets_path.parent.mkdir()
    table.to_parquet(packets_path, index=False)
    outputs = {name: tmp_path / "splits" / f"{name}.parquet" for name in SPLIT_NAMES}
    stem = tmp_path / "tables" / "table06_split"

    splits = split_packet_table(packets_path, outputs, stem, "by_capture", SHARES, 42)

    for name in SPLIT_NAMES:
        pd.testing.assert_frame_equal(pd.read_parquet(outputs[name]), splits[name])
    written = pd.read_csv(tmp_path / "tables" / "table06_split.csv")
    pd.testing.assert_frame_equal(written, count_split_rows(splits))
    markdown = (tmp_path / "tables" / "table06_split.md").read_text()
    assert markdown.splitlines()[0].split("|")[1].strip() == "device_type"
    assert len(markdown.splitlines()) == len(written) + 2
