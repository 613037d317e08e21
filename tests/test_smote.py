"""Tests of iotsynth.smote on a packet-like table with known structure."""

import numpy as np
import pandas as pd
import pytest

from iotsynth.gan.balance import balance_protocol, deficits
from iotsynth.gan.toydata import make_packet_table, stratified_split
from iotsynth.preprocess import Preprocessor
from iotsynth.smote import plan_calls, run_smote_stage, smote_rows, smote_split

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def table():
    frame, dictionary = make_packet_table(1200, n_device_types=4, seed=3, extra_discrete=2, extra_categorical=2)
    return frame, dictionary


@pytest.fixture(scope="module")
def splits(table):
    """Stratified 60/20/20 split of the toy table."""
    frame, _ = table
    return stratified_split(frame, seed=0)


@pytest.fixture(scope="module")
def preprocessor(table, splits):
    _, dictionary = table
    return Preprocessor().fit(splits["train"], dictionary)


def kinds_of(preprocessor, *kinds):
    return [entry["name"] for entry in preprocessor.layout_ if entry["kind"] in kinds]


def needed_for(frame):
    counts = frame["device_type"].value_counts()
    return (counts.max() - counts).to_dict()


@pytest.mark.parametrize("method", ["smote", "smotenc"])
def test_split_reaches_class_targets(splits, preprocessor, method):
    train = splits["train"]
    needed = needed_for(train)
    rows = smote_split(train, preprocessor, needed, "train", 5, method, seed=1)

    made = rows["device_type"].value_counts()
    for device_type, count in needed.items():
        assert made.get(device_type, 0) == count
    assert list(rows.columns) == ["device_type", *[entry["name"] for entry in preprocessor.layout_]]


@pytest.mark.parametrize("method", ["smote", "smotenc"])
def test_rows_decode_to_valid_values(splits, preprocessor, method):
    train = splits["train"]
    rows = smote_split(train, preprocessor, needed_for(train), "train", 5, method, seed=1)

    for name in kinds_of(preprocessor, "binary"):
        assert set(rows[name].unique()) <= {0, 1}, name
    for entry in preprocessor.layout_:
        if entry["kind"] == "discrete" or entry["dtype"] == "int64":
            assert rows[entry["name"]].dtype == np.int64, entry["name"]
    # Interpolation stays inside each device type's range, and each
    # categorical value is one its device type has in the real rows.
    for device_type, synthetic in rows.groupby("device_type"):
        real = train[train["device_type"] == device_type]
        for name in kinds_of(preprocessor, "continuous", "discrete"):
            assert synthetic[name].min() >= real[name].min() - 1e-9, (device_type, name)
            assert synthetic[name].max() <= real[name].max() + 1e-9, (device_type, name)
        for name in kinds_of(preprocessor, "categorical"):
            assert set(synthetic[name]) <= set(real[name]), (device_type, name)


def test_smote_interpolates_between_rows(splits, preprocessor):
    train = splits["train"]
    rows = smote_split(train, preprocessor, needed_for(train), "train", 5, "smote", seed=1)
    real_values = set(train["packet_size"].round(9))
    new_values = set(rows["packet_size"].round(9))
    assert len(new_values - real_values) > 0.9 * len(new_values)


def test_same_seed_same_rows(splits, preprocessor):
    train = splits["train"]
    first = smote_split(train, preprocessor, needed_for(train), "train", 5, "smote", seed=7)
    again = smote_split(train, preprocessor, needed_for(train), "train", 5, "smote", seed=7)
    other = smote_split(train, preprocessor, needed_for(train), "train", 5, "smote", seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_small_classes_use_fewer_neighbours(splits, preprocessor):
    train = splits["train"]
    big = train[train["device_type"] == "device00"]
    three = train[train["device_type"] == "device01"].head(3)
    one = train[train["device_type"] == "device02"].head(1)
    frame = pd.concat([big, three, one], ignore_index=True)

    rows = smote_split(frame, preprocessor, {"device01": 10, "device02": 4}, "train", 5, "smote", seed=0)

    made = rows["device_type"].value_counts()
    assert made["device01"] == 10
    assert made["device02"] == 4
    single = rows[rows["device_type"] == "device02"].drop(columns="device_type").reset_index(drop=True)
    copies = pd.concat([one.drop(columns=["capture", "device", "device_type", "frame"])] * 4, ignore_index=True)
    pd.testing.assert_frame_equal(single, copies[single.columns], check_dtype=False)


def test_plan_groups_by_neighbour_count():
    counts = pd.Series({"a": 100, "b": 40, "c": 4, "d": 1, "e": 2})
    needed = pd.Series({"a": 0, "b": 60, "c": 96, "d": 99, "e": 98})
    assert plan_calls(counts, needed, 5) == [(5, ["b"]), (3, ["c"]), (1, ["e"]), (0, ["d"])]


def test_missing_device_type_raises(splits, preprocessor):
    with pytest.raises(ValueError, match="no real rows of"):
        smote_split(splits["train"], preprocessor, {"device99": 5}, "train")


@pytest.mark.parametrize("k, method", [(0, "smote"), (True, "smote"), (5, "adasyn")])
def test_invalid_settings_raise(splits, preprocessor, k, method):
    with pytest.raises(ValueError, match="smote"):
        smote_split(splits["train"], preprocessor, {}, "train", k, method)


def test_each_split_uses_its_own_rows(splits, preprocessor):
    # Shift the validation rows so that their range and the others' do not overlap.
    shifted = dict(splits)
    shifted["val"] = splits["val"].assign(packet_size=splits["val"]["packet_size"] + 10_000.0)
    rows = smote_rows(shifted, preprocessor, "max", seed=2)

    assert rows.loc[rows["split"] == "val", "packet_size"].min() >= 10_000.0
    assert rows.loc[rows["split"] == "train", "packet_size"].max() < 10_000.0
    assert rows.loc[rows["split"] == "test", "packet_size"].max() < 10_000.0


def test_rows_balance_both_protocols(splits, preprocessor):
    rows = smote_rows(splits, preprocessor, "max", seed=2)
    assert rows["synthetic"].all()
    assert set(rows["capture"]) == {f"synthetic:smote:{name}" for name in SPLITS}

    needed = deficits({name: splits[name]["device_type"] for name in SPLITS}, "max")
    for protocol in ("paper", "real_test"):
        balanced, counts = balance_protocol(splits, rows, protocol, "max")
        for name in SPLITS:
            sizes = balanced[name]["device_type"].value_counts()
            if name == "test" and protocol == "real_test":
                assert not balanced[name]["synthetic"].any()
            else:
                assert sizes.nunique() == 1, (protocol, name)
                assert sizes.iloc[0] == splits[name]["device_type"].value_counts().max()
        assert counts["synthetic"].sum() == (
            needed["synthetic"].sum() if protocol == "paper" else needed.loc[needed["split"] != "test", "synthetic"].sum()
        )


def test_stage_writes_parquet(tmp_path, splits, preprocessor):
    paths = {}
    for name in SPLITS:
        paths[name] = tmp_path / f"{name}.parquet"
        splits[name].to_parquet(paths[name], index=False)
    preprocessor.save(tmp_path / "preprocessor.json")

    output = tmp_path / "synthetic" / "smote.parquet"
    frame = run_smote_stage(paths, tmp_path / "preprocessor.json", output, 200, 5, "smote", seed=3)

    written = pd.read_parquet(output)
    assert len(written) == len(frame)
    per_pair = written.groupby(["split", "device_type"]).size()
    for name in SPLITS:
        real = splits[name]["device_type"].value_counts()
        for device_type, count in real.items():
            assert per_pair.get((name, device_type), 0) == max(0, 200 - count)
