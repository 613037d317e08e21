"""Offline backend: constraints hold on the training rows, catch broken rows, and repeat exactly."""

import json

import numpy as np
import pandas as pd
import pytest
from test_constraints_data import make_dictionary, make_edges, make_frame, make_ranges

from iotsynth.constraints import ConstraintSet
from iotsynth.constraints.build import build_constraints, feature_ranges, run_constraints_stage
from iotsynth.constraints.evaluate import correlation_checks, summarize_rates
from iotsynth.constraints.offline import correlation_candidates, derive_constraints
from iotsynth.constraints.report import run_violation_stage
from iotsynth.constraints.settings import ConstraintSettings, LLMSettings
from iotsynth.preprocess import Preprocessor

OFFLINE = LLMSettings(backend="offline")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    train = make_frame(800, seed=0)
    dictionary = make_dictionary()
    constraint_set = build_constraints(
        train, dictionary, make_edges(train), OFFLINE, ConstraintSettings(), tmp_path_factory.mktemp("audit")
    )
    return train, constraint_set


def rule_ids(constraint_set, device_type, section):
    return [rule.rule_id for rule in constraint_set.row_rules(device_type) if rule.section == section]


def test_every_section_filled(built):
    _, constraint_set = built
    counts = constraint_set.counts().set_index("device_type")

    assert (counts["numerical_constraints"] == len(make_dictionary())).all()
    assert (counts["feature_correlations"] > 0).all()
    assert (counts["protocol_rules"] > 0).all()


def test_constraints_hold_on_training_rows(built):
    train, constraint_set = built
    rates = constraint_set.violation_rates(train, train["device_type"].to_numpy())

    row_rules = rates[rates["section"] != "correlation"]
    assert row_rules["rate"].max() <= 0.01
    assert summarize_rates(rates).set_index("section").loc["correlation", "violation_rate"] == 0.0


def test_constraints_hold_on_new_rows(built):
    _, constraint_set = built
    fresh = make_frame(400, seed=11)

    rates = constraint_set.violation_rates(fresh, fresh["device_type"].to_numpy())

    summary = summarize_rates(rates).set_index("section")
    assert summary.loc["range", "violation_rate"] < 0.01
    assert summary.loc["protocol", "violation_rate"] < 0.01
    assert summary.loc["correlation", "violation_rate"] == 0.0


def test_udp_rule_forbids_tcp_flags(built):
    _, constraint_set = built
    rules = {rule.rule_id: rule for rule in constraint_set.row_rules("HueBridge")}
    udp_rule = rules["protocol:ip_proto_eq_17"]

    consequences = {(condition.feature, condition.op, condition.value) for condition in udp_rule.then}

    assert ("tcp_flag_syn", "==", 0.0) in consequences
    assert ("tcp_window", "==", 0.0) in consequences
    assert ("dport_class", "in", (0.0, 1.0, 2.0)) in consequences


def test_range_violation_caught(built):
    train, constraint_set = built
    row = train[train["device_type"] == "Withings"].head(1).copy()
    row["ip_ttl"] = 255

    broken = constraint_set.violations(row, "Withings")

    assert "range:ip_ttl" in broken.columns[broken.iloc[0]]
    assert not broken.drop(columns="range:ip_ttl").filter(like="range:").iloc[0].any()


def test_allowed_category_violation_caught(built):
    train, constraint_set = built
    row = train[(train["device_type"] == "Withings") & (train["is_udp"] == 1)].head(1).copy()
    row["ip_proto"] = 6

    broken = constraint_set.violations(row, "Withings")

    assert "range:ip_proto" in broken.columns[broken.iloc[0]]


def test_protocol_violation_caught(built):
    train, constraint_set = built
    row = train[(train["device_type"] == "Aria") & (train["is_udp"] == 1)].head(1).copy()
    row["tcp_flag_syn"] = 1

    broken = constraint_set.violations(row, "Aria")

    assert "protocol:ip_proto_eq_17" in broken.columns[broken.iloc[0]]
    assert "range:tcp_flag_syn" not in broken.columns[broken.iloc[0]]


def test_correlation_violation_caught(built):
    train, constraint_set = built
    rows = train[train["device_type"] == "Aria"].copy()
    rows["flow_duration"] = rows["flow_duration"].to_numpy()[::-1]

    checks = correlation_checks(constraint_set, rows, rows["device_type"].to_numpy()).set_index("rule_id")

    assert checks.loc["correlation:flow_packets|flow_duration", "violated"]
    assert not checks.loc["correlation:flow_packets|flow_bytes", "violated"]


def test_offline_is_deterministic():
    train = make_frame(300, seed=2)
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    arguments = (train, kinds, make_ranges(train), make_edges(train), ConstraintSettings())

    first = derive_constraints(*arguments)
    second = derive_constraints(*arguments)

    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_ranges_clipped_to_training_range():
    train = make_frame(300, seed=2)
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    ranges = make_ranges(train)

    derived = derive_constraints(train, kinds, ranges, make_edges(train), ConstraintSettings(range_margin=5.0))

    for sections in derived.values():
        for name, constraint in sections["numerical_constraints"].items():
            assert ranges[name][0] <= constraint["min"] <= constraint["max"] <= ranges[name][1]


def test_correlation_candidates_skip_categorical():
    train = make_frame(100)
    kinds = dict(zip(make_dictionary()["name"], make_dictionary()["kind"]))

    pairs = correlation_candidates(make_edges(train), kinds, 500)

    assert pairs
    assert all(kinds[a] != "categorical" and kinds[b] != "categorical" for a, b in pairs)


def test_rule_limit_respected():
    train = make_frame(300, seed=2)
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    settings = ConstraintSettings(rule_max_per_device_type=2, correlation_max_per_device_type=1)

    derived = derive_constraints(train, kinds, make_ranges(train), make_edges(train), settings)

    assert all(len(part["protocol_rules"]) <= 2 for part in derived.values())
    assert all(len(part["feature_correlations"]) <= 1 for part in derived.values())


def test_preprocessor_range_mismatch_named():
    train = make_frame(100)
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    layout = Preprocessor().fit(make_frame(100, seed=8), dictionary).layout_

    with pytest.raises(ValueError, match="fit both on the same training split"):
        feature_ranges(train, kinds, layout)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"ranges": {"quantiles": [0.9, 0.1]}}, "constraints.ranges.quantiles"),
        ({"correlations": {"fraction": 0}}, "constraints.correlations.fraction"),
        ({"rules": {"min_support": 0}}, "constraints.rules.min_support"),
        ({"extra": {}}, "unknown keys"),
    ],
)
def test_settings_rejected(section, message):
    with pytest.raises(ValueError, match=message):
        ConstraintSettings.from_config(section)


def test_llm_settings_rejected():
    with pytest.raises(ValueError, match="llm.backend"):
        LLMSettings.from_config({"backend": "openai"})
    with pytest.raises(ValueError, match="unknown keys"):
        LLMSettings.from_config({"temperature": 0})


def test_stage_writes_outputs(tmp_path):
    train = make_frame(300, seed=1)
    val = make_frame(80, seed=6)
    dictionary = make_dictionary()
    paths = {name: tmp_path / name for name in ("train.parquet", "val.parquet", "dictionary.csv", "edges.csv", "preprocessor.json")}
    train.to_parquet(paths["train.parquet"])
    val.to_parquet(paths["val.parquet"])
    dictionary.to_csv(paths["dictionary.csv"], index=False)
    make_edges(train).to_csv(paths["edges.csv"], index=False)
    Preprocessor().fit(train, dictionary).save(paths["preprocessor.json"])
    out = tmp_path / "constraints"

    run_constraints_stage(
        train=paths["train.parquet"], dictionary=paths["dictionary.csv"], preprocessor=paths["preprocessor.json"],
        edges=paths["edges.csv"], constraints=out / "constraints.json", counts=out / "counts.csv", audit_dir=out,
        llm_section={"backend": "offline", "cache_dir": str(tmp_path / "cache")}, constraints_section={},
    )
    summary = run_violation_stage(out / "constraints.json", paths["dictionary.csv"], paths["val.parquet"],
                                  out / "val_rates.csv", out / "val_summary.csv")

    constraint_set = ConstraintSet.load(out / "constraints.json", dictionary)
    assert constraint_set.document["metadata"]["backend"] == "offline"
    assert len(pd.read_csv(out / "counts.csv")) == 3
    assert sorted(path.name for path in (out / "prompts").iterdir()) == ["Aria.json", "HueBridge.json", "Withings.json"]
    assert json.loads((out / "prompts" / "Aria.json").read_text())["sent"] is False
    assert json.loads((out / "replies" / "Aria.json").read_text())["replies"] == []
    assert list(summary["section"]) == ["range", "protocol", "correlation", "range_or_protocol"]
    assert np.isfinite(summary["violation_rate"]).all()
    row_rules = summary.set_index("section").loc[["range", "protocol", "range_or_protocol"]]
    assert (row_rules["rows_violated"] <= len(val)).all()
    assert row_rules.loc["range_or_protocol", "rows_violated"] >= row_rules["rows_violated"].iloc[:2].max()
    assert not (tmp_path / "cache").exists()
