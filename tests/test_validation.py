"""The validation stage: offline scores, the forced LLM tool call against a local stub, and the outputs.

The anthropic tests run the real SDK against the Messages API stub of
:mod:`messages_stub` on 127.0.0.1; no test reaches a real API.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
from messages_stub import MODEL, clean_environment, message, repair_feedback, stub, stub_settings, tool_use  # noqa: F401
from test_constraints_data import make_dictionary, make_edges, make_frame

from iotsynth.constraints.build import build_constraints
from iotsynth.constraints.settings import ConstraintSettings
from iotsynth.llm.identifiers import find_identifiers
from iotsynth.llm.settings import LLMSettings
from iotsynth.preprocess import Preprocessor
from iotsynth.validation.anthropic_backend import ValidationBackendError, ValidationReplyError
from iotsynth.validation.offline import (
    closeness,
    distance_part,
    nearest_neighbours,
    relative_keep_score,
    score_device_type,
)
from iotsynth.validation.prompt import TOOL_NAME, build_validation_prompt, check_reply
from iotsynth.validation.sample import DeviceSample, device_samples
from iotsynth.validation.settings import ValidationSettings
from iotsynth.validation.stage import run_validation_stage, validate_generator
from iotsynth.validation.table import run_validation_table_stage

SEED = 42
# A session-identifying feature: its name and values must never reach a request.
SECRET = "ip_id"


def add_session_feature(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    frame = frame.copy()
    frame[SECRET] = np.random.default_rng(seed).integers(0, 65536, len(frame)).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Training rows, dictionary, offline constraint set and preprocessor shared by the tests."""
    train = add_session_feature(make_frame(300, seed=0), seed=0)
    dictionary = make_dictionary()
    extra = {"name": SECRET, "kind": "discrete", "layer": "packet", "description": "IPv4 identification", "session_identifying": True}
    dictionary = pd.concat([dictionary, pd.DataFrame([extra])], ignore_index=True)
    audit = tmp_path_factory.mktemp("constraints")
    constraint_set = build_constraints(
        train, dictionary, make_edges(train), LLMSettings(backend="offline"), ConstraintSettings(), audit
    )
    preprocessor = Preprocessor().fit(train, dictionary)
    return train, dictionary, constraint_set, preprocessor


def clean_rows(n_rows: int = 80, seed: int = 1) -> pd.DataFrame:
    return add_session_feature(make_frame(n_rows, seed=seed), seed=seed)


def broken_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """UDP packets with TCP fields set, which the protocol rules forbid."""
    rows = rows.copy()
    udp = rows["is_udp"] == 1
    rows.loc[udp, "tcp_flag_syn"] = 1
    rows.loc[udp, "tcp_window"] = 5000
    return rows


def far_rows(rows: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Rows pushed to the training maxima of flow and payload features."""
    rows = rows.copy()
    for name in ("payload_entropy", "flow_duration", "flow_bytes"):
        rows[name] = train[name].max()
    return rows


def offline_scores(world, synthetic: pd.DataFrame, **changes) -> dict:
    train, dictionary, constraint_set, preprocessor = world
    settings = ValidationSettings(sample_rows=100, reference_rows=400, **changes)
    names = list(dictionary["name"])
    samples, _ = device_samples(synthetic, train, names, settings.sample_rows, settings.reference_rows, SEED)
    return {sample.device_type: score_device_type(sample, constraint_set, preprocessor, settings) for sample in samples}


def as_synthetic(rows: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    rows = rows.copy()
    rows.insert(0, "split", split)
    rows["synthetic"] = True
    return rows


# Offline scoring


def test_offline_clean_above_broken(world):
    clean = offline_scores(world, clean_rows())
    broken = offline_scores(world, broken_rows(clean_rows()))

    for device_type in ("Aria", "HueBridge", "Withings"):
        assert clean[device_type].score > broken[device_type].score, device_type
        assert clean[device_type].score >= 0.9, device_type
        assert broken[device_type].row_score < 1.0, device_type


def test_offline_clean_above_far(world):
    train = world[0]
    clean = offline_scores(world, clean_rows())
    far = offline_scores(world, far_rows(clean_rows(), train))

    for device_type in clean:
        assert clean[device_type].score > far[device_type].score, device_type
        assert far[device_type].distance_score < clean[device_type].distance_score, device_type


def test_offline_scores_lie_in_unit_interval(world):
    for rows in (clean_rows(), broken_rows(clean_rows()), far_rows(clean_rows(), world[0])):
        for result in offline_scores(world, rows).values():
            for value in (result.score, result.constraint_score, result.distance_score):
                assert 0.0 <= value <= 1.0


def test_offline_doubts_broken_fields(world):
    results = offline_scores(world, broken_rows(clean_rows()), max_doubted_features=3)

    doubted = results["Withings"].doubted_features
    assert 1 <= len(doubted) <= 3
    assert {"tcp_flag_syn", "tcp_window"} & {item["feature"] for item in doubted}
    assert all(item["reason"] for item in doubted)
    assert "sampled rows" in doubted[0]["reason"]


def test_offline_clean_rows_not_doubted_for_distance(world):
    results = offline_scores(world, clean_rows())

    reasons = [item["reason"] for result in results.values() for item in result.doubted_features]
    assert not [reason for reason in reasons if reason.startswith("mean deviation")]


def test_violation_threshold_filters_doubts(world):
    strict = offline_scores(world, clean_rows(), min_excess_violation=0.0)
    lenient = offline_scores(world, clean_rows(), min_excess_violation=0.5)

    def rule_doubts(results):
        return [item for result in results.values() for item in result.doubted_features if item["reason"].startswith("breaks")]

    assert rule_doubts(strict)
    assert rule_doubts(lenient) == []


def test_real_reference_scores_one_on_itself(world):
    train, _, constraint_set, preprocessor = world
    real = train[train["device_type"] == "Aria"].drop(columns="device_type").reset_index(drop=True)
    sample = DeviceSample("Aria", real, len(real), real, real)

    result = score_device_type(sample, constraint_set, preprocessor, ValidationSettings())

    assert result.score == 1.0


def test_distance_part_far_rows(world):
    train, _, _, preprocessor = world
    real = train[train["device_type"] == "HueBridge"].drop(columns="device_type").reset_index(drop=True)
    copies = DeviceSample("HueBridge", real.head(50), 50, real, real)
    far = DeviceSample("HueBridge", far_rows(real.head(50), train), 50, real, real)

    copy_score, _, _ = distance_part(copies, preprocessor, 0.95)
    far_score, diagnostics, deviations = distance_part(far, preprocessor, 0.95)

    assert copy_score == 1.0
    assert far_score < 0.8
    assert diagnostics["median_distance"] > diagnostics["real_median_distance"]
    names = [entry["name"] for entry in preprocessor.layout_]
    excess = deviations[0] - deviations[1]
    top = {names[index] for index in np.argsort(-excess)[:3]}
    assert top & {"payload_entropy", "flow_duration", "flow_bytes"}


def test_distance_part_single_reference_row(world):
    train, _, _, preprocessor = world
    real = train[train["device_type"] == "Aria"].drop(columns="device_type").head(1).reset_index(drop=True)

    score, diagnostics, deviations = distance_part(DeviceSample("Aria", real, 1, real, real), preprocessor, 0.95)

    assert score is None
    assert deviations is None
    assert diagnostics["distance_threshold"] is None


@pytest.mark.parametrize(
    "synthetic, real, expected",
    [(0.0, 0.0, 1.0), (0.5, 0.0, 0.5), (0.1, 0.2, 1.0), (0.6, 0.2, 0.5), (1.0, 0.5, 0.0), (0.7, 1.0, 1.0)],
)
def test_relative_keep_score(synthetic, real, expected):
    assert relative_keep_score(synthetic, real) == pytest.approx(expected)


def test_closeness():
    np.testing.assert_allclose(closeness(np.array([0.0, 0.5, 1.0, 2.0, 4.0]), 1.0), [1.0, 1.0, 1.0, 0.5, 0.25])
    np.testing.assert_allclose(closeness(np.array([0.0, 3.0]), 0.0), [1.0, 0.0])


def test_nearest_neighbours_excludes_self_not_duplicates():
    reference = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [3.0, 5.0]])

    distances, indices = nearest_neighbours(reference, reference, exclude_self=True)

    np.testing.assert_allclose(distances, [0.0, 0.0, 1.0, 1.0], atol=1e-6)
    assert list(indices) == [1, 0, 3, 2]


def test_samples_follow_seed(world):
    train, dictionary = world[0], world[1]
    names = list(dictionary["name"])
    synthetic = clean_rows(300)
    synthetic = synthetic[synthetic["device_type"] != "Withings"]

    first, skipped = device_samples(synthetic, train, names, 50, 100, SEED)
    again, _ = device_samples(synthetic, train, names, 50, 100, SEED)
    other, _ = device_samples(synthetic, train, names, 50, 100, SEED + 1)

    assert [sample.device_type for sample in first] == ["Aria", "HueBridge"]
    assert skipped == {"Withings": "no synthetic rows in the checked split"}
    assert len(first[0].synthetic) == 50
    assert len(first[0].reference) == 100
    pd.testing.assert_frame_equal(first[0].synthetic, again[0].synthetic)
    assert not first[0].synthetic.equals(other[0].synthetic)


# Request and reply format


def test_reply_checks():
    features = ("pkt_size", "tcp_window")
    valid = {"score": 0.7, "doubted_features": [{"feature": "tcp_window", "reason": "too wide"}]}

    assert check_reply(valid, features, 3) == []
    assert check_reply({**valid, "score": 1.5}, features, 3) == ["score: 1.5 is greater than the maximum of 1"]
    unknown = {"score": 0.5, "doubted_features": [{"feature": "ghost", "reason": "x"}]}
    assert "unknown feature 'ghost'" in check_reply(unknown, features, 3)[0]
    twice = {"score": 0.5, "doubted_features": [{"feature": "pkt_size", "reason": "x"}] * 2}
    assert "listed twice" in check_reply(twice, features, 3)[0]
    assert check_reply({**twice}, features, 1)[0].startswith("doubted_features:")
    assert check_reply({"score": 0.5}, features, 3) == ["top level: 'doubted_features' is a required property"]


def test_prompt_leaves_out_session_features(world):
    train, dictionary = world[0], world[1]
    rows = clean_rows(40)
    aria = rows[rows["device_type"] == "Aria"]

    prompt = build_validation_prompt(
        "Aria", aria, train[train["device_type"] == "Aria"], len(aria), dictionary, 5, 5, 10
    )

    content = json.loads(prompt.user.split("\n", 1)[1])
    assert SECRET not in prompt.features
    assert SECRET not in prompt.user
    assert [f["name"] for f in content["features"]] == list(prompt.features)
    assert len(content["sample_rows"]["rows"]) == 5
    assert content["sample_rows"]["columns"] == list(prompt.features)
    assert content["real_training_packets"] == 300


def test_prompt_rejects_addresses(world):
    train, dictionary = world[0], world[1].copy()
    dictionary.loc[0, "description"] = "frame length, e.g. to 192.168.1.10"
    aria = train[train["device_type"] == "Aria"]

    prompt = build_validation_prompt("Aria", aria.head(5), aria, 5, dictionary, 2, 5, 10)

    assert find_identifiers(prompt.user) == []
    assert "<address>" in prompt.user


# Anthropic backend against the stub


def plausibility_reply(content, name=TOOL_NAME, stop_reason="tool_use"):
    return message([] if content is None else [tool_use(name, content)], stop_reason)


def ok(score=0.8, feature="tcp_window"):
    content = {"score": score, "doubted_features": [{"feature": feature, "reason": "values too evenly spread"}], "comment": "fine"}
    return (200, plausibility_reply(content), {}, 0)


def llm_settings(stub, tmp_path, **changes):
    return stub_settings(stub, tmp_path, **{"max_tokens": 2000, "max_retries": 1, "max_repair_attempts": 3, **changes})


def two_type_synthetic():
    rows = clean_rows(60)
    return as_synthetic(rows[rows["device_type"] != "Withings"])


def run_anthropic(world, llm, environ=None, synthetic=None, **changes):
    train, dictionary, constraint_set, preprocessor = world
    settings = ValidationSettings(sample_rows=30, prompt_rows=4, reference_rows=200, **changes)
    environ = {"ANTHROPIC_API_KEY": "test-key"} if environ is None else environ
    synthetic = two_type_synthetic() if synthetic is None else synthetic
    return validate_generator(
        synthetic, train, dictionary, constraint_set, preprocessor, settings, llm, "wgan", SEED, 10, environ=environ
    )


def test_forced_tool_choice_sent_and_parsed(stub, world, tmp_path):
    stub.script = [ok(0.8), ok(0.3, "pkt_size")]

    document = run_anthropic(world, llm_settings(stub, tmp_path))

    body = stub.requests[0]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["tools"][0]["name"] == TOOL_NAME
    assert body["tools"][0]["input_schema"]["required"] == ["score", "doubted_features"]
    assert body["model"] == MODEL
    assert len(stub.requests) == 2
    aria = document["device_types"]["Aria"]
    assert aria["score"] == 0.8
    assert aria["doubted_features"] == [{"feature": "tcp_window", "reason": "values too evenly spread"}]
    assert aria["backend"] == "anthropic"
    assert aria["model"] == MODEL
    assert aria["sample_size"] == 30
    assert re.fullmatch(r"[0-9a-f]{64}", aria["cache_key"])
    assert aria["requests"] == 1
    assert 0.0 <= aria["offline"]["score"] <= 1.0
    assert document["device_types"]["HueBridge"]["score"] == 0.3
    assert document["device_types"]["Withings"]["status"] == "skipped"
    assert document["summary"]["min_score"] == 0.3


def test_invalid_reply_gets_corrective_retry(stub, world, tmp_path):
    invalid = {"score": 1.7, "doubted_features": [{"feature": "ghost_field", "reason": "odd"}]}
    stub.script = [(200, plausibility_reply(invalid), {}, 0), ok(0.6), ok(0.7)]

    document = run_anthropic(world, llm_settings(stub, tmp_path))

    assert len(stub.requests) == 3
    feedback = repair_feedback(stub.requests[1])
    assert "1.7 is greater than the maximum of 1" in feedback["content"]
    assert stub.requests[1]["body"]["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert document["device_types"]["Aria"]["score"] == 0.6
    assert document["device_types"]["Aria"]["requests"] == 2


def test_unknown_feature_in_reply_sent_back(stub, world, tmp_path):
    invalid = {"score": 0.5, "doubted_features": [{"feature": "ghost_field", "reason": "odd"}]}
    stub.script = [(200, plausibility_reply(invalid), {}, 0), ok(0.6), ok(0.7)]

    run_anthropic(world, llm_settings(stub, tmp_path))

    assert "unknown feature 'ghost_field'" in stub.requests[1]["body"]["messages"][2]["content"][0]["content"]


def test_reply_without_tool_call_sent_back(stub, world, tmp_path):
    stub.script = [(200, plausibility_reply(None, stop_reason="end_turn"), {}, 0), ok(0.6), ok(0.7)]

    run_anthropic(world, llm_settings(stub, tmp_path))

    feedback = stub.requests[1]["body"]["messages"][2]["content"][0]
    assert feedback["type"] == "text"
    assert TOOL_NAME in feedback["text"]


def test_second_invalid_reply_fails(stub, world, tmp_path):
    invalid = (200, plausibility_reply({"score": -0.2, "doubted_features": []}), {}, 0)
    stub.script = [invalid, invalid]

    with pytest.raises(ValidationReplyError, match="after 2 requests") as caught:
        run_anthropic(world, llm_settings(stub, tmp_path))

    assert len(stub.requests) == 2
    assert "less than the minimum of 0" in caught.value.errors[0]


def test_rerun_reads_cache_without_key(stub, world, tmp_path):
    stub.script = [ok(0.8), ok(0.3)]
    llm = llm_settings(stub, tmp_path)
    first = run_anthropic(world, llm)

    second = run_anthropic(world, llm, environ={})

    assert len(stub.requests) == 2
    assert (tmp_path / "cache" / "validation" / f"{first['device_types']['Aria']['cache_key']}.json").is_file()
    for device_type in ("Aria", "HueBridge"):
        assert second["device_types"][device_type]["from_cache"] is True
        assert second["device_types"][device_type]["requests"] == 0
        assert second["device_types"][device_type]["score"] == first["device_types"][device_type]["score"]
        assert second["device_types"][device_type]["cache_key"] == first["device_types"][device_type]["cache_key"]


def test_cache_key_follows_sample(stub, world, tmp_path):
    stub.script = [ok(0.8), ok(0.3), ok(0.8), ok(0.3)]
    llm = llm_settings(stub, tmp_path)
    first = run_anthropic(world, llm)

    second = run_anthropic(world, llm, synthetic=as_synthetic(clean_rows(60, seed=5).query("device_type != 'Withings'")))

    assert len(stub.requests) == 4
    assert second["device_types"]["Aria"]["cache_key"] != first["device_types"]["Aria"]["cache_key"]


def test_session_features_not_in_request(stub, world, tmp_path):
    stub.script = [ok(0.8), ok(0.3)]

    run_anthropic(world, llm_settings(stub, tmp_path))

    for request in stub.requests:
        text = json.dumps(request["body"])
        assert SECRET not in text
        assert find_identifiers(text) == []
        statistics = json.loads(request["body"]["messages"][0]["content"].split("\n", 1)[1])
        assert statistics["device_type"] in ("Aria", "HueBridge")
        assert SECRET not in statistics["sample_rows"]["columns"]


def test_auto_tool_choice_follows_llm_setting(stub, world, tmp_path):
    stub.script = [ok(0.8), ok(0.3, "pkt_size")]

    run_anthropic(world, llm_settings(stub, tmp_path, tool_choice="auto"))

    assert stub.requests[0]["body"]["tool_choice"] == {"type": "auto"}


def test_rejected_forced_choice_names_fix(stub, world, tmp_path):
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "tool_choice type tool is not supported"}}
    stub.script = [(400, error, {}, 0)]

    with pytest.raises(ValidationBackendError, match="HTTP 400.*llm.tool_choice is forced"):
        run_anthropic(world, llm_settings(stub, tmp_path))

    assert len(stub.requests) == 1


def test_missing_key_without_cache_fails(stub, world, tmp_path):
    with pytest.raises(ValidationBackendError, match="ANTHROPIC_API_KEY is not set"):
        run_anthropic(world, llm_settings(stub, tmp_path), environ={})

    assert stub.requests == []


def test_auto_without_key_is_offline(stub, world, tmp_path):
    document = run_anthropic(world, llm_settings(stub, tmp_path, backend="anthropic"), environ={}, backend="auto")

    assert stub.requests == []
    assert document["backend"] == "offline"
    assert document["device_types"]["Aria"]["backend"] == "offline"
    assert document["device_types"]["Aria"]["cache_key"] is None


# Stage, table and settings


def write_inputs(world, tmp_path):
    train, dictionary, constraint_set, preprocessor = world
    paths = {
        "train": tmp_path / "train.parquet",
        "dictionary": tmp_path / "feature_dictionary.csv",
        "constraints": tmp_path / "constraints.json",
        "preprocessor": tmp_path / "preprocessor.json",
    }
    train.to_parquet(paths["train"], index=False)
    dictionary.to_csv(paths["dictionary"], index=False)
    constraint_set.save(paths["constraints"])
    preprocessor.save(paths["preprocessor"])
    return paths


def test_stage_writes_json_and_table(world, tmp_path):
    paths = write_inputs(world, tmp_path)
    clean = clean_rows(60)
    generators = {
        "good": pd.concat([as_synthetic(clean), as_synthetic(clean_rows(20, seed=9), "val")]),
        "bad": as_synthetic(broken_rows(clean[clean["device_type"] != "Aria"])),
    }
    section = {"backend": "offline", "sample_rows": 40, "reference_rows": 200}
    outputs = []
    for name, frame in generators.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
        outputs.append(tmp_path / "validation" / f"{name}.json")
        run_validation_stage(
            tmp_path / f"{name}.parquet", paths["train"], paths["preprocessor"], paths["constraints"],
            paths["dictionary"], outputs[-1], section, {"backend": "anthropic"}, name, SEED, 10,
        )

    good = json.loads(outputs[0].read_text())
    bad = json.loads(outputs[1].read_text())
    assert good["generator"] == "good"
    assert good["backend"] == "offline"
    assert good["split"] == "train"
    assert good["device_types"]["Aria"]["sample_size"] == 40
    assert good["device_types"]["Aria"]["synthetic_rows"] == 60
    assert bad["device_types"]["Aria"]["status"] == "skipped"
    assert bad["summary"]["device_types_skipped"] == 1
    assert good["summary"]["mean_score"] > bad["summary"]["mean_score"]

    table = run_validation_table_stage(outputs, tmp_path / "tables" / "validation")
    written = pd.read_csv(tmp_path / "tables" / "validation.csv")
    assert len(written) == 6
    assert list(written["generator"]) == ["good"] * 3 + ["bad"] * 3
    assert written.loc[written["generator"] == "bad", "doubted_features"].notna().sum() == 2
    assert np.isnan(table.loc[(table["generator"] == "bad") & (table["device_type"] == "Aria"), "score"]).all()
    assert "| generator" in (tmp_path / "tables" / "validation.md").read_text()


def test_stage_rejects_synthetic_without_split(world, tmp_path):
    paths = write_inputs(world, tmp_path)
    clean_rows(20).to_parquet(tmp_path / "nosplit.parquet", index=False)

    with pytest.raises(ValueError, match="nosplit.parquet lacks columns"):
        run_validation_stage(
            tmp_path / "nosplit.parquet", paths["train"], paths["preprocessor"], paths["constraints"],
            paths["dictionary"], tmp_path / "out.json", {"backend": "offline"}, {}, "x", SEED, 10,
        )


def test_table_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"format": "iotsynth-constraints"}')

    with pytest.raises(ValueError, match="not a validation file"):
        run_validation_table_stage([path], tmp_path / "table")


def test_settings_from_config():
    settings = ValidationSettings.from_config({"split": "val", "sample_rows": 10})

    assert settings.split == "val"
    assert settings.requested_backend("offline") == "offline"
    assert ValidationSettings(backend="auto").requested_backend("offline") == "auto"


@pytest.mark.parametrize(
    "section, message",
    [
        ({"sample_row": 10}, "unknown keys"),
        ({"split": "all"}, "validation.split"),
        ({"backend": "openai"}, "validation.backend"),
        ({"reference_rows": 1}, "reference_rows"),
        ({"distance_quantile": 0.0}, "distance_quantile"),
        ({"max_doubted_features": 0}, "max_doubted_features"),
        ({"min_excess_violation": 1.5}, "min_excess_violation"),
        ({"min_excess_deviation": -0.1}, "min_excess_deviation"),
        ({"max_repair_attempts": -1}, "max_repair_attempts"),
    ],
)
def test_settings_reject(section, message):
    with pytest.raises(ValueError, match=message):
        ValidationSettings.from_config(section)
