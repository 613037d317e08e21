"""The anthropic backend with the real SDK against a Messages API stub on 127.0.0.1.

The stub (:mod:`messages_stub`) returns responses from a script and records
every request. The tests then check what the SDK sent, how often it retried,
and what the backend sent back after an invalid reply. No test reaches a
real API.
"""

import copy
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from messages_stub import MODEL, clean_environment, message, repair_feedback, stub, stub_settings, tool_use  # noqa: F401
from test_constraints_data import make_dictionary, make_edges, make_frame, make_ranges

from iotsynth.constraints import offline
from iotsynth.constraints.anthropic_backend import ConstraintBackendError
from iotsynth.constraints.build import build_constraints
from iotsynth.constraints.model import SECTIONS, ConstraintValidationError
from iotsynth.constraints.prompt import TOOL_NAME, build_prompt
from iotsynth.constraints.settings import ConstraintSettings
from iotsynth.features import feature_dictionary
from iotsynth.llm.identifiers import find_identifiers, redact_identifiers


@pytest.fixture(scope="module")
def data():
    frame = make_frame(300, seed=3)
    frame = frame[frame["device_type"].isin(["Aria", "Withings"])].reset_index(drop=True)
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    edges = make_edges(frame)
    derived = offline.derive_constraints(frame, kinds, make_ranges(frame), edges, ConstraintSettings())
    return frame, dictionary, edges, derived


def tool_reply(sections, stop_reason="tool_use", text=None):
    content = []
    if text:
        content.append({"type": "text", "text": text})
    if sections is not None:
        content.append(tool_use(TOOL_NAME, sections))
    return message(content, stop_reason)


def ok(sections):
    return (200, tool_reply(sections), {}, 0)


def sections_of(derived, device_type):
    return {key: copy.deepcopy(derived[device_type][key]) for key in SECTIONS}


def build(frame, dictionary, edges, llm, tmp_path, environ=None):
    environ = {"ANTHROPIC_API_KEY": "test-key"} if environ is None else environ
    return build_constraints(frame, dictionary, edges, llm, ConstraintSettings(), tmp_path / "audit", environ=environ)


def test_valid_tool_reply(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))]

    constraint_set = build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    assert constraint_set.device_types == ["Aria", "Withings"]
    assert constraint_set.sections("Aria")["protocol_rules"] == derived["Aria"]["protocol_rules"]
    assert constraint_set.document["metadata"] == {**constraint_set.document["metadata"], "backend": "anthropic", "model": MODEL}
    metadata = constraint_set.sections("Aria")["metadata"]
    assert re.fullmatch(r"[0-9a-f]{64}", metadata["prompt_hash"])
    assert metadata["requests"] == 1
    assert metadata["from_cache"] is False


def test_request_carries_forced_tool_and_schema(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))]

    build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    request = stub.requests[0]
    body = request["body"]
    assert request["path"] == "/v1/messages"
    assert body["model"] == MODEL
    assert body["max_tokens"] == 4000
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["tools"][0]["input_schema"]["required"] == list(SECTIONS)
    assert "temperature" not in body
    assert "test-key" in request["headers"].get("Authorization", "") + request["headers"].get("X-Api-Key", "")


def test_auto_tool_choice_sent(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))]

    build(frame, dictionary, edges, stub_settings(stub, tmp_path, tool_choice="auto"), tmp_path)

    assert stub.requests[0]["body"]["tool_choice"] == {"type": "auto"}


def test_invalid_reply_then_corrected(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    broken = sections_of(derived, "Aria")
    broken["numerical_constraints"]["no_such_feature"] = {"min": 0, "max": 1, "typical": [0, 1]}
    broken["numerical_constraints"]["pkt_size"]["min"] = 5000
    stub.script = [ok(broken), ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))]

    constraint_set = build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    assert len(stub.requests) == 3
    result = repair_feedback(stub.requests[1])
    assert "no_such_feature" in result["content"]
    assert "inverted range" in result["content"]
    assert constraint_set.sections("Aria")["metadata"]["requests"] == 2
    replies = json.loads((tmp_path / "audit" / "replies" / "Aria.json").read_text())
    assert len(replies["replies"]) == 2


def test_reply_without_tool_call_is_sent_back(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [
        (200, tool_reply(None, stop_reason="end_turn", text="Here are constraints."), {}, 0),
        ok(sections_of(derived, "Aria")),
        ok(sections_of(derived, "Withings")),
    ]

    build(frame, dictionary, edges, stub_settings(stub, tmp_path, tool_choice="auto"), tmp_path)

    feedback = stub.requests[1]["body"]["messages"][2]["content"][0]
    assert feedback["type"] == "text"
    assert TOOL_NAME in feedback["text"]


def test_invalid_replies_exhaust_repairs(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    broken = sections_of(derived, "Aria")
    broken["protocol_rules"].append({"id": "ghost", "if": [{"feature": "ghost_flag", "op": "==", "value": 1}], "then": [{"feature": "is_udp", "op": "==", "value": 0}]})
    stub.script = [ok(broken), ok(broken)]

    with pytest.raises(ConstraintValidationError, match="ghost_flag") as caught:
        build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    assert "after 2 requests" in str(caught.value)
    assert len(stub.requests) == 2


@pytest.mark.parametrize("status", [429, 500])
def test_sdk_retries_status(stub, data, tmp_path, status):
    frame, dictionary, edges, derived = data
    error = {"type": "error", "error": {"type": "rate_limit_error" if status == 429 else "api_error", "message": "try later"}}
    stub.script = [
        (status, error, {"retry-after-ms": "10"}, 0),
        ok(sections_of(derived, "Aria")),
        ok(sections_of(derived, "Withings")),
    ]

    constraint_set = build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    assert len(stub.requests) == 3
    assert stub.requests[0]["body"] == stub.requests[1]["body"]
    assert constraint_set.sections("Aria")["metadata"]["requests"] == 1


def test_status_error_after_retries(stub, data, tmp_path):
    frame, dictionary, edges, _ = data
    error = (503, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, {"retry-after-ms": "10"}, 0)
    stub.script = [error] * 3

    with pytest.raises(ConstraintBackendError, match="HTTP 503 after 2 retries"):
        build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    assert len(stub.requests) == 3


def test_timeout(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [(200, tool_reply(sections_of(derived, "Aria")), {}, 3.0)] * 2

    with pytest.raises(ConstraintBackendError, match="timed out"):
        build(frame, dictionary, edges, stub_settings(stub, tmp_path, timeout=0.3, max_retries=1), tmp_path)

    assert len(stub.requests) == 2


def test_reply_cut_at_max_tokens(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [(200, tool_reply(sections_of(derived, "Aria"), stop_reason="max_tokens"), {}, 0)]

    with pytest.raises(ConstraintBackendError, match="llm.max_tokens"):
        build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)


def test_rerun_reads_cache_without_key(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))]
    llm = stub_settings(stub, tmp_path)
    first = build(frame, dictionary, edges, llm, tmp_path)

    second = build(frame, dictionary, edges, llm, tmp_path / "rerun", environ={})

    assert len(stub.requests) == 2
    assert second.sections("Aria")["metadata"]["from_cache"] is True
    assert second.sections("Aria")["metadata"]["prompt_hash"] == first.sections("Aria")["metadata"]["prompt_hash"]
    for section in SECTIONS:
        assert second.sections("Withings")[section] == first.sections("Withings")[section]


def test_cache_key_changes_with_model(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    stub.script = [ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))] * 2
    build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    build(frame, dictionary, edges, stub_settings(stub, tmp_path, model="claude-other-model"), tmp_path / "other")

    assert len(stub.requests) == 4


def test_missing_key_without_cache_fails(stub, data, tmp_path):
    frame, dictionary, edges, _ = data

    with pytest.raises(ConstraintBackendError, match="ANTHROPIC_API_KEY is not set"):
        build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path, environ={})

    assert stub.requests == []


def test_auto_without_key_uses_offline(stub, data, tmp_path, caplog):
    frame, dictionary, edges, _ = data
    caplog.set_level(logging.INFO, logger="iotsynth.llm.settings")

    constraint_set = build(frame, dictionary, edges, stub_settings(stub, tmp_path, backend="auto"), tmp_path, environ={})

    assert stub.requests == []
    assert constraint_set.document["metadata"]["backend"] == "offline"
    lines = [record.getMessage() for record in caplog.records if "constraint backend" in record.getMessage()]
    assert lines == ["constraint backend: offline (llm.backend is auto and ANTHROPIC_API_KEY is not set)"]


def test_auto_with_key_uses_anthropic(stub, data, tmp_path, caplog):
    frame, dictionary, edges, derived = data
    stub.script = [ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))]
    caplog.set_level(logging.INFO, logger="iotsynth.llm.settings")

    constraint_set = build(frame, dictionary, edges, stub_settings(stub, tmp_path, backend="auto"), tmp_path)

    assert constraint_set.document["metadata"]["backend"] == "anthropic"
    assert any("constraint backend: anthropic" in record.getMessage() for record in caplog.records)


def test_prompts_hold_no_addresses(stub, data, tmp_path):
    frame, dictionary, edges, derived = data
    dictionary = dictionary.copy()
    dictionary.loc[0, "description"] = "Frame length; compare ff:ff:ff:ff:ff:ff and 192.168.1.10 and fe80::1"
    stub.script = [ok(sections_of(derived, "Aria")), ok(sections_of(derived, "Withings"))]

    build(frame, dictionary, edges, stub_settings(stub, tmp_path), tmp_path)

    for request in stub.requests:
        text = json.dumps(request["body"])
        assert find_identifiers(text) == []
        assert "<address>" in text
    for path in (tmp_path / "audit" / "prompts").glob("*.json"):
        assert find_identifiers(path.read_text()) == []


def test_prompt_has_statistics_not_rows(data):
    frame, dictionary, edges, _ = data
    rows = frame[frame["device_type"] == "Aria"]

    prompt = build_prompt("Aria", rows, dictionary, edges, make_ranges(frame), ConstraintSettings())

    content = json.loads(prompt.user.split("\n", 1)[1])
    assert content["n_packets"] == len(rows)
    assert {f["name"] for f in content["features"]} == set(dictionary["name"])
    assert len(content["graph_edges"]) == 40
    assert all(set(edge["features"]) <= set(dictionary["name"]) for edge in content["graph_edges"])
    assert len(prompt.user) < 40_000


@pytest.mark.parametrize(
    "text, expected",
    [
        ("dst ff:ff:ff:ff:ff:ff here", ["ff:ff:ff:ff:ff:ff"]),
        ("mac 00-1A-2b-3C-4d-5E", ["00-1A-2b-3C-4d-5E"]),
        ("cisco 001a.2b3c.4d5e", ["001a.2b3c.4d5e"]),
        ("to 10.0.0.255 now", ["10.0.0.255"]),
        ("v6 2001:db8::7 end", ["2001:db8::7"]),
        ("numbers 1.5 and 0.25 and 3.14159 and q25", []),
        ("version 999.1.2.3", []),
        ('"min": 0, "max": 1514', []),
    ],
)
def test_find_identifiers(text, expected):
    assert find_identifiers(text) == expected


def test_redact_identifiers():
    assert redact_identifiers("Destination MAC is ff:ff:ff:ff:ff:ff") == "Destination MAC is <address>"


def test_real_feature_descriptions_redacted():
    dictionary = feature_dictionary()
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({name: rng.integers(0, 2, 50) for name in dictionary["name"]})
    ranges = {name: (0.0, 1.0) for name in dictionary["name"]}
    edges = pd.DataFrame(columns=["source", "target", "weight", "sign"])

    prompt = build_prompt("Aria", rows, dictionary, edges, ranges, ConstraintSettings())

    assert find_identifiers(dictionary["description"].str.cat(sep=" "))
    assert find_identifiers(prompt.system + prompt.user) == []
