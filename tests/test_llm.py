"""What both LLM stages send and cache, pinned by SHA-256 digests of fixed inputs.

The constraint and validation stages share their request, repair and cache
code (:mod:`iotsynth.llm`). These tests pin what reaches the Messages API
stub on 127.0.0.1 (every request body, repair messages included), the cache
keys and the cache files, so a change to that code cannot alter them
unnoticed. They also check the address check and error hint both stages
share. No test reaches a real API.

NOTE: prompts round statistics to 6 significant digits, so a NumPy upgrade
alone can change a digest. A failing assert shows the new digest; update
``EXPECTED`` only after checking that the change to the requests is intended.
"""

import hashlib
import json

import pandas as pd
import pytest
from messages_stub import MODEL, clean_environment, message, stub, stub_settings, tool_use  # noqa: F401
from test_constraints_data import FEATURES, make_dictionary, make_frame, make_ranges

from iotsynth.constraints import offline
from iotsynth.constraints.anthropic_backend import ConstraintBackendError
from iotsynth.constraints.build import build_constraints
from iotsynth.constraints.model import SECTIONS, ConstraintValidationError
from iotsynth.constraints.prompt import build_prompt
from iotsynth.constraints.settings import ConstraintSettings
from iotsynth.llm.settings import LLMSettings
from iotsynth.preprocess import Preprocessor
from iotsynth.validation.anthropic_backend import ValidationReplyError
from iotsynth.validation.prompt import build_validation_prompt
from iotsynth.validation.settings import ValidationSettings
from iotsynth.validation.stage import validate_generator

SEED = 42

EXPECTED = {
    "constraint_prompt": "2b5ad01cbbad8cb946590b5a19bd3ce4250106d92e193e63e38be8c6cdf41950",
    "constraint_cache_key": "e18b21c32a0e2e56f1b9e29ef12a67519ad4139ea82da6837172580d44acb7ca",
    "constraint_prompt_file": "405c0e93c46ecc41fdce0655d21abef5948dff2477cc47afce44b653d6c865ae",
    "constraint_requests": "f6f6cc7dd5d8e393c8671e5d8f02584c27eea4a78163ef39488d56c528faca74",
    "validation_prompt": "3f59db4bb702f63bfe84001a3feac36380ce0666aeba9579c9ef75a22ca7ac6e",
    "validation_cache_key": "d3ac12c3d1739125086264a696a854c26576619b745ae05c0d173a7d1b9fadae",
    "validation_stage_cache_key": "1a67eafa8ea665721e9d4d0afeaa76f0653e8556034ac5882624fce034ab7ed6",
    "validation_requests": "af0f8c4c1d7a1b98facdf71ae4db2e21913d96d5d84559cd8da94d2d57d15e03",
}


def digest(content: object) -> str:
    """Return the SHA-256 of ``content`` as canonical JSON."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fixed_edges() -> pd.DataFrame:
    """Return a small edge table with fixed weights, so no matrix product enters the prompt."""
    names = [name for name, kind in FEATURES if kind != "categorical"]
    pairs = list(zip(names[:-1], names[1:]))
    return pd.DataFrame(
        {
            "source": [first for first, _ in pairs],
            "target": [second for _, second in pairs],
            "pearson": [round(0.9 - 0.05 * index, 2) for index in range(len(pairs))],
            "weight": [round(0.9 - 0.05 * index, 2) for index in range(len(pairs))],
            "sign": [1 if index % 3 else -1 for index in range(len(pairs))],
        }
    )


def aria_frame(n_rows: int = 60, seed: int = 11) -> pd.DataFrame:
    frame = make_frame(n_rows, seed=seed)
    return frame[frame["device_type"] == "Aria"].reset_index(drop=True)


def repair_script(tool: str, invalid: dict) -> list[tuple]:
    """Return three replies: no tool call, two calls with an invalid input, then the invalid input again."""
    call = tool_use(tool, invalid)
    replies = [
        message([{"type": "text", "text": "No tool call here."}], "end_turn"),
        message([call, tool_use(tool, invalid, "toolu_02")]),
        message([call]),
    ]
    return [(200, reply, {}, 0) for reply in replies]


def llm_settings(stub, tmp_path) -> LLMSettings:
    return stub_settings(stub, tmp_path, max_tokens=1000, max_retries=0, max_repair_attempts=2)


def cached_record(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def validation_inputs() -> dict:
    train = make_frame(80, seed=5)
    synthetic = aria_frame(40, seed=6)
    return {
        "train": train,
        "synthetic": synthetic,
        "real": train[train["device_type"] == "Aria"].reset_index(drop=True),
        "dictionary": make_dictionary(),
    }


def test_constraint_prompt_unchanged():
    frame = aria_frame()

    prompt = build_prompt("Aria", frame, make_dictionary(), fixed_edges(), make_ranges(frame), ConstraintSettings())

    assert digest(prompt.to_json()) == EXPECTED["constraint_prompt"]
    assert prompt.cache_key(MODEL) == EXPECTED["constraint_cache_key"]


def test_constraint_requests_unchanged(stub, tmp_path):
    frame = aria_frame()
    invalid = {
        "numerical_constraints": {"ghost": {"min": 1, "max": 0, "typical": [0, 1]}},
        "feature_correlations": [],
        "protocol_rules": [],
    }
    stub.script = repair_script("record_constraints", invalid)

    with pytest.raises(ConstraintValidationError, match="after 3 requests"):
        build_constraints(
            frame, make_dictionary(), fixed_edges(), llm_settings(stub, tmp_path), ConstraintSettings(),
            tmp_path / "audit", environ={"ANTHROPIC_API_KEY": "test-key"},
        )

    prompt_file = json.loads((tmp_path / "audit" / "prompts" / "Aria.json").read_text(encoding="utf-8"))
    assert prompt_file["prompt_hash"] == EXPECTED["constraint_cache_key"]
    assert digest(prompt_file) == EXPECTED["constraint_prompt_file"]
    assert len(stub.requests) == 3
    assert digest([request["body"] for request in stub.requests]) == EXPECTED["constraint_requests"]


def test_validation_prompt_unchanged():
    inputs = validation_inputs()

    prompt = build_validation_prompt(
        "Aria", inputs["synthetic"], inputs["real"], len(inputs["synthetic"]), inputs["dictionary"], 5, 3, 10
    )

    content = {"system": prompt.system, "user": prompt.user, "tool": prompt.tool, "features": list(prompt.features)}
    assert digest(content) == EXPECTED["validation_prompt"]
    assert prompt.cache_key(MODEL) == EXPECTED["validation_cache_key"]


def validate(stub, tmp_path, **changes) -> dict:
    """Run the validation stage's anthropic backend on the fixed inputs against ``stub``."""
    inputs = validation_inputs()
    train, dictionary = inputs["train"], inputs["dictionary"]
    constraint_set = build_constraints(
        train, dictionary, fixed_edges(), LLMSettings(backend="offline"), ConstraintSettings(), tmp_path / "audit"
    )
    preprocessor = Preprocessor().fit(train, dictionary)
    synthetic = inputs["synthetic"].copy()
    synthetic.insert(0, "split", "train")
    settings = ValidationSettings(sample_rows=20, prompt_rows=3, reference_rows=50, **changes)
    return validate_generator(
        synthetic, train, dictionary, constraint_set, preprocessor, settings, llm_settings(stub, tmp_path),
        "wgan", SEED, 10, environ={"ANTHROPIC_API_KEY": "test-key"},
    )


def test_validation_requests_unchanged(stub, tmp_path):
    stub.script = repair_script("record_plausibility", {"score": 1.5, "doubted_features": [{"feature": "ghost", "reason": "odd"}]})

    with pytest.raises(ValidationReplyError, match="after 3 requests"):
        validate(stub, tmp_path, max_repair_attempts=2)

    assert len(stub.requests) == 3
    assert digest([request["body"] for request in stub.requests]) == EXPECTED["validation_requests"]


def test_constraint_cache_file_unchanged(stub, tmp_path):
    frame = aria_frame()
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    derived = offline.derive_constraints(frame, kinds, make_ranges(frame), fixed_edges(), ConstraintSettings())
    sections = {key: derived["Aria"][key] for key in SECTIONS}
    stub.script = [(200, message([tool_use("record_constraints", sections)]), {}, 0)]

    constraint_set = build_constraints(
        frame, dictionary, fixed_edges(), llm_settings(stub, tmp_path), ConstraintSettings(), tmp_path / "audit",
        environ={"ANTHROPIC_API_KEY": "test-key"},
    )

    key = EXPECTED["constraint_cache_key"]
    assert constraint_set.sections("Aria")["metadata"]["prompt_hash"] == key
    record = cached_record(tmp_path / "cache" / "constraints" / f"{key}.json")
    assert list(record) == ["key", "device_type", "model", "created", "requests", "sections", "replies"]
    assert record["key"] == key
    assert record["sections"] == sections
    assert record["requests"] == 1


def test_validation_cache_file_unchanged(stub, tmp_path):
    reply = {"score": 0.5, "doubted_features": [{"feature": "pkt_size", "reason": "too wide"}]}
    stub.script = [(200, message([tool_use("record_plausibility", reply)]), {}, 0)]

    document = validate(stub, tmp_path)

    key = document["device_types"]["Aria"]["cache_key"]
    assert key == EXPECTED["validation_stage_cache_key"]
    record = cached_record(tmp_path / "cache" / "validation" / f"{key}.json")
    assert list(record) == ["key", "device_type", "model", "created", "requests", "reply", "replies"]
    assert record["reply"] == reply
    assert record["requests"] == 1


def test_constraint_prompt_rejects_address():
    frame = aria_frame()

    with pytest.raises(ValueError, match=r"the prompt for device type 'Aria 10\.0\.0\.1' contains address-shaped text"):
        build_prompt("Aria 10.0.0.1", frame, make_dictionary(), fixed_edges(), make_ranges(frame), ConstraintSettings())


def test_validation_prompt_rejects_address():
    inputs = validation_inputs()
    synthetic = inputs["synthetic"]

    with pytest.raises(ValueError, match=r"validation request for device type 'Aria 10\.0\.0\.1' .*may carry statistics"):
        build_validation_prompt("Aria 10.0.0.1", synthetic, inputs["real"], len(synthetic), inputs["dictionary"], 5, 3, 10)


def test_forced_choice_hint_in_constraint_stage(stub, tmp_path):
    frame = aria_frame()
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "tool_choice type tool is not supported"}}
    stub.script = [(400, error, {}, 0)]

    with pytest.raises(ConstraintBackendError, match="HTTP 400.*llm.tool_choice is forced"):
        build_constraints(
            frame, make_dictionary(), fixed_edges(), llm_settings(stub, tmp_path), ConstraintSettings(),
            tmp_path / "audit", environ={"ANTHROPIC_API_KEY": "test-key"},
        )

    assert len(stub.requests) == 1
