"""The constraint file schema and parser: what is accepted and what is rejected, by name."""

import copy
import json

import pytest
from test_constraints_data import make_dictionary, make_edges, make_frame, make_ranges

from iotsynth.constraints import ConstraintSet, ConstraintValidationError, check_document, load_schema, sections_schema
from iotsynth.constraints.build import assemble_document
from iotsynth.constraints.model import SECTIONS
from iotsynth.constraints.offline import derive_constraints
from iotsynth.constraints.settings import ConstraintSettings


@pytest.fixture(scope="module")
def document():
    frame = make_frame(300, seed=5)
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    ranges = make_ranges(frame)
    settings = ConstraintSettings()
    derived = derive_constraints(frame, kinds, ranges, make_edges(frame), settings)
    sections = {
        name: {
            "metadata": {"backend": "offline", "model": None, "prompt_hash": None, "created": "2026-01-01T00:00:00+00:00", "n_rows": part["n_rows"]},
            **{key: part[key] for key in SECTIONS},
        }
        for name, part in derived.items()
    }
    return assemble_document(sections, kinds, ranges, settings, "offline", None)


@pytest.fixture
def kinds():
    dictionary = make_dictionary()
    return dict(zip(dictionary["name"], dictionary["kind"]))


def rejected(document, kinds=None):
    with pytest.raises(ConstraintValidationError) as caught:
        ConstraintSet.from_document(document, kinds)
    return caught.value


def test_valid_document_passes(document, kinds):
    assert check_document(document, kinds) == []
    constraint_set = ConstraintSet.from_document(document, kinds)
    assert constraint_set.device_types == ["Aria", "HueBridge", "Withings"]


def test_schema_is_draft_2020_12():
    assert load_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_sections_schema_is_self_contained():
    text = json.dumps(sections_schema())
    assert "$ref" not in text
    assert sections_schema()["required"] == list(SECTIONS)


def test_unknown_numerical_feature_named(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["numerical_constraints"]["pkt_sise"] = {"min": 0, "max": 1, "typical": [0, 1]}
    error = rejected(broken)
    assert "device_types/Aria/numerical_constraints/pkt_sise: unknown feature 'pkt_sise'" in str(error)


def test_inverted_range_named(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Withings"]["numerical_constraints"]["ip_ttl"].update({"min": 200, "max": 100})
    error = rejected(broken)
    assert "Withings/numerical_constraints/ip_ttl: inverted range, min 200 is above max 100" in str(error)


def test_inverted_typical_range_named(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["numerical_constraints"]["pkt_size"]["typical"] = [900, 100]
    assert "pkt_size/typical: inverted range" in str(rejected(broken))


def test_typical_outside_range_named(document):
    broken = copy.deepcopy(document)
    constraint = broken["device_types"]["Aria"]["numerical_constraints"]["pkt_size"]
    constraint["typical"] = [constraint["min"], constraint["max"] + 1]
    assert "pkt_size/typical" in str(rejected(broken))


def test_rule_with_missing_feature_named(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["protocol_rules"].append(
        {"id": "bad", "if": [{"feature": "is_quic", "op": "==", "value": 1}], "then": [{"feature": "tcp_flags", "op": "==", "value": 0}]}
    )
    error = rejected(broken)
    assert "unknown feature 'is_quic'" in str(error)
    assert "unknown feature 'tcp_flags'" in str(error)
    assert len(error.errors) == 2


def test_correlation_with_unknown_feature_named(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["feature_correlations"].append({"features": ["pkt_size", "frame_len"], "direction": "positive", "strength": 0.9})
    assert "unknown feature 'frame_len'" in str(rejected(broken))


def test_categorical_correlation_rejected(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["feature_correlations"].append({"features": ["ip_proto", "pkt_size"], "direction": "positive", "strength": 0.4})
    assert "'ip_proto' is categorical" in str(rejected(broken))


def test_self_and_duplicate_pairs_rejected(document):
    broken = copy.deepcopy(document)
    pairs = broken["device_types"]["Aria"]["feature_correlations"]
    pairs.append({"features": ["pkt_size", "pkt_size"], "direction": "positive", "strength": 1.0})
    pairs.append({"features": list(reversed(pairs[0]["features"])), "direction": pairs[0]["direction"], "strength": 0.5})
    message = str(rejected(broken))
    assert "with itself" in message
    assert "listed twice" in message


def test_duplicate_rule_id_rejected(document):
    broken = copy.deepcopy(document)
    rules = broken["device_types"]["Aria"]["protocol_rules"]
    rules.append(copy.deepcopy(rules[0]))
    assert f"rule id {rules[0]['id']!r} is used twice" in str(rejected(broken))


def test_binary_value_two_rejected(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["protocol_rules"].append(
        {"id": "two", "if": [{"feature": "is_udp", "op": "==", "value": 2}], "then": [{"feature": "tcp_flag_syn", "op": "==", "value": 0}]}
    )
    assert "binary feature 'is_udp' takes only 0 and 1" in str(rejected(broken))


def test_inverted_between_rejected(document):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["protocol_rules"].append(
        {"id": "ports", "if": [], "then": [{"feature": "dport", "op": "between", "value": [1023, 0]}]}
    )
    assert "inverted range [1023, 0] for 'between'" in str(rejected(broken))


@pytest.mark.parametrize(
    "condition, fragment",
    [
        ({"feature": "dport", "op": "between", "value": 5}, "is not of type 'array'"),
        ({"feature": "dport", "op": "==", "value": [1, 2]}, "is not of type 'number'"),
        ({"feature": "dport", "op": "in", "value": []}, "should be non-empty"),
        ({"feature": "dport", "op": "<", "value": 3}, "is not one of"),
        ({"feature": "dport", "op": "==", "value": 3, "note": "x"}, "Additional properties"),
    ],
)
def test_malformed_condition_rejected(document, condition, fragment):
    broken = copy.deepcopy(document)
    broken["device_types"]["Aria"]["protocol_rules"].append({"id": "shape", "if": [], "then": [condition]})
    message = str(rejected(broken))
    assert "device_types/Aria/protocol_rules" in message
    assert fragment in message


def test_missing_section_rejected(document):
    broken = copy.deepcopy(document)
    del broken["device_types"]["HueBridge"]["feature_correlations"]
    assert "'feature_correlations' is a required property" in str(rejected(broken))


def test_dictionary_mismatch_rejected(document, kinds):
    changed = {**kinds, "pkt_size": "continuous"}
    message = str(rejected(document, changed))
    assert "differ from the feature dictionary" in message
    assert "pkt_size" in message


def test_every_error_listed(document):
    broken = copy.deepcopy(document)
    for name in ("Aria", "HueBridge", "Withings"):
        broken["device_types"][name]["numerical_constraints"]["ghost"] = {"min": 0, "max": 1, "typical": [0, 1]}
    error = rejected(broken)
    assert len(error.errors) == 3


def test_save_and_load_round_trip(document, tmp_path):
    constraint_set = ConstraintSet.from_document(document)
    path = tmp_path / "constraints.json"
    constraint_set.save(path)

    loaded = ConstraintSet.load(path, make_dictionary())

    assert loaded.document == constraint_set.document


def test_load_reports_invalid_json(tmp_path):
    path = tmp_path / "constraints.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        ConstraintSet.load(path)


def test_load_reports_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the constraints rule"):
        ConstraintSet.load(tmp_path / "absent.json")


def test_unknown_device_type_named(document):
    constraint_set = ConstraintSet.from_document(document)
    with pytest.raises(KeyError, match="'Nest'"):
        constraint_set.sections("Nest")
